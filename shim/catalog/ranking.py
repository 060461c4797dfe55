"""Search's ranking: one function of ours over what any catalog can give, so that every catalog engine (SQLite's
FTS5, a plain table, a later PostgreSQL) ranks alike. The engine only finds candidates; this module scores them.

What it reads, per field of the search and per query term: the projects whose field holds the term and how often
(its postings); and how many projects the index lists (N). The score is PyPI's Elasticsearch `match`, kept simple:
each query term a project's field holds adds

    boost(field) * idf * tf * (K1 + 1) / (tf + K1),    idf = ln(1 + (N - n + 0.5) / (n + 0.5))

(BM25 with Lucene's K1, and no length normalisation, b = 0: a summary is a line, and a longer one is no worse a
match), n being how many projects' field holds the term. Boosts are PyPI's: name 10; summary, description and
keywords 5; every other field 1. A field's terms are ORed (one is enough); fields combine by the operator (`and`:
each must match; `or`: any) and their scores add up. Order: the exact name first, then the score, then the shorter
name, then the name. Scores are summed in one fixed order (fields, then terms, sorted), so equal inputs give equal
floats and equal ranks on every engine.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Mapping, Sequence

__all__ = ["BOOSTS", "FieldScores", "best", "term_weight"]

BOOSTS = {"name": 10.0, "summary": 5.0, "description": 5.0, "keywords": 5.0}
K1 = 1.2


def term_weight(field: str, frequency: float, holders: int, total: int) -> float:
    """What one query term adds to a project's score: `frequency` times in its `field`, held by `holders` of the
    `total` projects."""
    total = max(total, holders)
    idf = math.log(1 + (total - holders + 0.5) / (holders + 0.5))
    return BOOSTS.get(field, 1.0) * idf * frequency * (K1 + 1) / (frequency + K1)


class FieldScores:
    """One field of a search: the projects it matched and what they scored, one query term at a time."""

    def __init__(self, field: str, total: int) -> None:
        self.field = field
        self.total = total  # the projects the index lists: N
        self.scores: dict[str, float] = {}

    def add(self, postings: Mapping[str, float]) -> None:
        """One query term (add them in sorted order): each project whose field holds it, with how often."""
        weights: dict[float, float] = {}  # most projects hold a term once: one weight per frequency
        for project, frequency in postings.items():
            weight = weights.get(frequency)
            if weight is None:
                weight = weights[frequency] = term_weight(self.field, frequency, len(postings), self.total)
            self.scores[project] = self.scores.get(project, 0.0) + weight


def best(fields: Sequence[FieldScores], exact: Collection[str], operator: str, limit: int) -> list[str]:
    """The `limit` best projects, best first: matched by each field (`and`) or by any (`or`)."""
    ordered = sorted(fields, key=lambda f: f.field)
    if not ordered:
        return []
    if len(ordered) == 1:  # a sum of one score is that score (fsum of one float is exact)
        return _top(ordered[0].scores, exact, limit)
    if operator == "and":
        chosen = set(ordered[0].scores).intersection(*(f.scores.keys() for f in ordered[1:]))
        totals = {name: math.fsum(f.scores[name] for f in ordered) for name in chosen}
    else:
        # A project one field matched keeps that score as it is (taken in C); only those several fields matched
        # are summed. `pip search` asks two fields for the same word: a quarter of a million names may hold it.
        totals = {}
        shared: set[str] = set()
        for scores in ordered:
            shared |= totals.keys() & scores.scores.keys()
            totals.update(scores.scores)
        for name in shared:
            totals[name] = math.fsum(f.scores.get(name, 0.0) for f in ordered)
    return _top(totals, exact, limit)


def _top(totals: Mapping[str, float], exact: Collection[str], limit: int) -> list[str]:
    """`best`'s order over one field's scores, without a key per match: a search's matches take few distinct
    scores, and lengths, so whole groups are taken or passed and only the last group taken is sorted by name."""
    found = sorted((name for name in exact if name in totals), key=lambda name: (-totals[name], len(name), name))
    by_score: dict[float, list[str]] = {}
    for name, score in totals.items():
        by_score.setdefault(score, []).append(name)
    top = found[:limit]
    for score in sorted(by_score, reverse=True):
        if len(top) >= limit:
            break
        by_length: dict[int, list[str]] = {}
        for name in by_score[score]:
            by_length.setdefault(len(name), []).append(name)
        for length in sorted(by_length):
            group = [name for name in by_length[length] if name not in exact] if found else by_length[length]
            wanted = limit - len(top)
            top += sorted(group) if len(group) <= wanted else heapq.nsmallest(wanted, group)
            if len(top) >= limit:
                break
    return top
