"""How search turns text into terms: the same analysis for what the catalog stores and for what a search asks.

PyPI's Elasticsearch analysed summary, description and keywords with its `snowball` analyzer (lower-cased words,
English stop words dropped, the Snowball English stemmer: `testing` and `tests` are both `test`), and the e-mail
fields much alike; the other text fields with the `standard` analyzer (lower-cased words). Words here are runs of
letters and digits: `issue-tracking` is two words, `libxml2` one.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

import snowballstemmer

__all__ = ["STEMMED", "analyze", "query_terms"]

# The fields PyPI analysed with stop words and stemming.
STEMMED = frozenset({"summary", "description", "keywords", "author_email", "maintainer_email"})

# Lucene's English stop words, the `stop` filter's default in Elasticsearch's snowball analyzer.
STOP_WORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of",
    "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with",
})  # fmt: skip

_WORD = re.compile(r"[^\W_]+")
_STEMMER = snowballstemmer.stemmer("english")
_STEMMER_LOCK = threading.Lock()  # a stemmer keeps its word in itself while it works: one word at a time


@lru_cache(maxsize=100_000)
def _stem(word: str) -> str:
    with _STEMMER_LOCK:
        return str(_STEMMER.stemWord(word))


def analyze(field: str, text: str) -> list[str]:
    """The terms of `text` as `field` indexes them, in order, repeated as often as they occur."""
    words = _WORD.findall(text.lower())
    if field not in STEMMED:
        return words
    return [_stem(word) for word in words if word not in STOP_WORDS]


def query_terms(field: str, values: list[str]) -> list[str]:
    """The distinct terms of a search's values for `field` (Elasticsearch's `match` analyses its query as the
    field is analysed), sorted: each counts once however many values hold it."""
    return sorted({term for value in values for term in analyze(field, value)})
