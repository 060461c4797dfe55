"""The Simple index's names in little memory: one string of names and an array of where each starts, and a lookup
from a normalised name to its position made of two arrays (sorted hashes, positions). At the real index's size
(close to a million projects) a list of str and a dict cost hundreds of megabytes; these cost a few tens, and no
Python object is kept per project.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, compress, repeat
from operator import and_, lshift, lt, or_, sub
from typing import overload

from packaging.utils import canonicalize_name

__all__ = ["NO_SERIAL", "Lookup", "NameList", "normalized_names"]

# What an array of serials holds for a project whose serial is malformed or absent (a serial is never negative).
NO_SERIAL = -1
SEP = "\n"
CHUNK = 4096  # names handled at once where a pass goes over all of them
_FOLD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ_.", b"abcdefghijklmnopqrstuvwxyz--")
_hash = hash  # a test forces colliding hashes through this


class NameList(Sequence[str]):
    """Names in order, in one string joined by SEP; `starts[i]` is where name i begins (and `starts[-1]` is one past
    the end of the string plus one, so that name i is `text[starts[i] : starts[i + 1] - 1]`)."""

    __slots__ = ("plain", "starts", "text")

    def __init__(self, text: str, starts: array[int]) -> None:
        self.text = text
        self.starts = starts
        # No name holds SEP (every real one): a run of names can be split out of the text in one call.
        self.plain = text.count(SEP) == max(len(starts) - 2, 0)

    @classmethod
    def of(cls, names: Sequence[str]) -> NameList:
        return cls(SEP.join(names), _starts(names))

    def __len__(self) -> int:
        return len(self.starts) - 1

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("name index out of range")
        return self.text[self.starts[index] : self.starts[index + 1] - 1]

    def span(self, start: int, stop: int) -> list[str]:
        """Names start to stop (exclusive)."""
        if start >= stop:
            return []
        if self.plain:
            return self.text[self.starts[start] : self.starts[stop] - 1].split(SEP)
        return [self[i] for i in range(start, stop)]

    def chunks(self, size: int = CHUNK) -> Iterator[tuple[int, list[str]]]:
        """(first position, names) in runs of `size`: a pass over every name without a list of them all."""
        for start in range(0, len(self), size):
            yield start, self.span(start, min(start + size, len(self)))

    def __iter__(self) -> Iterator[str]:
        for _, names in self.chunks():
            yield from names

    def position_at(self, offset: int) -> int:
        """The position of the name the text holds at `offset`."""
        return bisect_left(self.starts, offset + 1) - 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NameList) and self.text == other.text and self.starts == other.starts

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"NameList({len(self)} names)"


def _starts(names: Iterable[str]) -> array[int]:
    # All in C: each name's length plus its separator, summed as it goes.
    return array("q", accumulate(map((1).__add__, map(len, names)), initial=0))


def normalized_names(names: NameList) -> NameList:
    """Every name's PEP 503 form, in the same order; the same NameList when every name is normalised already."""
    if names.plain and names.text.isascii():
        # packaging's canonicalize_name over the whole buffer at once, in C: lower case, and each run of -_. one -
        # (runs never cross SEP).
        data = names.text.encode("ascii").translate(_FOLD)
        while b"--" in data:
            data = data.replace(b"--", b"-")
        text = data.decode("ascii")
        if text == names.text:
            return names
        # No run shortened: every name keeps its length, and its place.
        return NameList(text, names.starts if len(text) == len(names.text) else _starts(text.split(SEP)))
    normalized = [canonicalize_name(name) for name in names]
    return names if normalized == list(names) else NameList.of(normalized)


class Lookup:
    """Normalised name -> position: one sorted array of `hash << bits | position` (`bits` enough for every
    position, the hash cut to the rest of 53, so that each entry is a float held exactly: floats sort twice as fast
    as big ints), searched by bisection; a name is checked at the position found, so that hashes that collide cost
    a comparison, never a wrong answer. Where a name is listed twice, the later position answers (as a dict built
    in order would).

    Sorted once, on first use (or by `build`, in a worker thread, as soon as the snapshot is taken): the index's
    first answers, list_packages', need no lookup, and do not wait for one. A thread that needs it while another
    sorts waits for that one."""

    __slots__ = ("_entries", "_lock", "_shadowed", "bits", "names")

    def __init__(self, names: NameList) -> None:
        self.names = names
        self.bits = max(len(names).bit_length(), 1)
        self._lock = threading.Lock()
        self._entries: array[float] | None = None
        self._shadowed: frozenset[int] = frozenset()

    @property
    def _mask(self) -> int:
        return (1 << max(53 - self.bits, 1)) - 1

    @property
    def built(self) -> bool:
        return self._entries is not None

    def build(self) -> None:
        """Sort the hashes, unless done already."""
        if self._entries is not None:
            return
        with self._lock:
            if self._entries is None:
                entries = self._sorted()
                self._shadowed = frozenset(self._shadowed_in(entries))
                self._entries = entries  # last: a reader that sees it sees the rest

    @property
    def entries(self) -> array[float]:
        if self._entries is None:
            self.build()
        assert self._entries is not None
        return self._entries

    @property
    def shadowed(self) -> frozenset[int]:
        """Positions whose name is listed again later (the dict this replaces kept one entry per name)."""
        if self._entries is None:
            self.build()
        return self._shadowed

    @property
    def distinct(self) -> int:
        return len(self.names) - len(self.shadowed)

    def _sorted(self) -> array[float]:
        bits, mask = self.bits, self._mask
        entries: list[float] = []
        for start, chunk in self.names.chunks():
            # All in C: each hash cut, shifted and joined with its position; a run sorted at a time (the thread
            # gives way to the event loop's between runs), and the runs merged by the last sort.
            cut = map(and_, map(_hash, chunk), repeat(mask))
            run = list(map(float, map(or_, map(lshift, cut, repeat(bits)), range(start, start + len(chunk)))))
            run.sort()
            entries += run
        entries.sort()
        return array("d", entries)

    def _shadowed_in(self, entries: array[float]) -> Iterator[int]:
        # Neighbours of the same hash are less than one hash step apart: the few that are found in C, then checked.
        bits, mask = self.bits, (1 << self.bits) - 1
        near = compress(range(1, len(entries)), map(lt, map(sub, entries[1:], entries[:-1]), repeat(float(1 << bits))))
        for i in near:
            key = int(entries[i]) >> bits
            later = self.names[int(entries[i]) & mask]
            for j in range(i - 1, -1, -1):
                if int(entries[j]) >> bits != key:
                    break
                if self.names[int(entries[j]) & mask] == later:
                    yield int(entries[j]) & mask

    def position(self, name: str) -> int | None:
        entries, bits = self.entries, self.bits
        key = _hash(name) & self._mask
        i = bisect_left(entries, float(key << bits))
        found = None
        mask = (1 << bits) - 1
        while i < len(entries) and int(entries[i]) >> bits == key:
            position = int(entries[i]) & mask
            if self.names[position] == name:
                found = position  # the later listing of a name listed twice
            i += 1
        return found

    def live(self, position: int) -> bool:
        """Whether `position` is the one its name is looked up at."""
        return position not in self.shadowed
