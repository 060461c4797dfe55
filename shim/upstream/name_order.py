"""The normalised names in search's order, shortest first, then by name: where a one-word name search finds its
best hundred without looking at every name that holds the word.

One word searched in the name field ranks its matches (shim.catalog.ranking) by: the exact name first, then the
names holding the word as whole parts (`py` in `py-yaml`) before those holding it inside one (`py` in `numpy`), then
the shorter name, then the name. In this order the best hundred of each kind are the first met: the scan stops
there, however many names hold the word (a quarter of a million hold `py`). One `str.find` pass over one string
goes from each name holding the word to the next, keeping the first hundred of each kind; once it holds a hundred
inside a part, the whole-part names left are finds of `\nword\n`, `\nword-`, `-word\n` and `-word-`, merged. Built
once per snapshot of the index, when a search first needs it (about a second at the real index's size, and one more
string as large as the names: 15 MB).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from shim.upstream.compact import SEP

__all__ = ["NameOrder"]


class NameOrder:
    __slots__ = ("text",)

    def __init__(self, names: Iterable[str]) -> None:
        ordered = sorted(set(names))
        ordered.sort(key=len)  # stable: by length, then by name
        self.text = SEP + SEP.join(ordered) + SEP  # every name between two separators

    def _whole(self, word: str, start: int, count: int) -> list[str]:
        """The first `count` names from offset `start` on holding `word` as whole parts, in order, each once: four
        finds over the string, merged, never a look at a name that holds the word only inside a part."""
        text = self.text
        patterns = [SEP + word + SEP, SEP + word + "-", "-" + word + SEP, "-" + word + "-"]
        heap = [(found, i) for i, pattern in enumerate(patterns) if (found := text.find(pattern, start)) != -1]
        heapq.heapify(heap)
        names: list[str] = []
        last = -1
        while heap and len(names) < count:
            offset, i = heapq.heappop(heap)
            begins = text.rfind(SEP, 0, offset + 1) + 1  # the name past the separator or hyphen the pattern begins with
            if begins != last:
                last = begins
                names.append(text[begins : text.find(SEP, begins)])
            following = text.find(patterns[i], offset + 1)
            if following != -1:
                heapq.heappush(heap, (following, i))
        return names

    def best(self, word: str, limit: int) -> list[str]:
        """The `limit` best names for a search of the one normalised `word` in the name field, best first.

        One pass over the names holding the word, in order, keeps the first `limit` of each kind; once it holds
        `limit` of those inside a part, the whole-part names left are found by their own patterns."""
        if not word or SEP in word:
            return []
        text = self.text
        whole: list[str] = []
        inside: list[str] = []
        offset = text.find(word)
        while offset != -1 and len(whole) < limit:
            start, end = text.rfind(SEP, 0, offset) + 1, text.find(SEP, offset)
            name = text[start:end]
            if f"-{word}-" in f"-{name}-":
                whole.append(name)
            elif len(inside) < limit:
                inside.append(name)
            else:
                whole += self._whole(word, start - 1, limit - len(whole))
                break
            offset = text.find(word, end)
        whole.sort(key=lambda name: name != word)  # the exact name first (stable: the rest stay in order)
        return (whole + inside)[:limit]
