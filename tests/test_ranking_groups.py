"""A search over several fields ranks its best hundred by groups of equal score and length, exactly as every
chosen project's sum ranked one key each would."""

from __future__ import annotations

import heapq
import math
import random

import pytest

from shim.catalog.ranking import FieldScores, best


def _reference(fields: list[FieldScores], exact: set[str], operator: str, limit: int) -> list[str]:
    """best()'s order by its definition: every chosen project's fields summed in field order, one key each."""
    ordered = sorted(fields, key=lambda f: f.field)
    chosen = set(ordered[0].scores)
    for scores in ordered[1:]:
        chosen = chosen & scores.scores.keys() if operator == "and" else chosen | scores.scores.keys()
    totals = {name: math.fsum(f.scores.get(name, 0.0) for f in ordered) for name in chosen}
    return heapq.nsmallest(limit, totals, key=lambda name: (name not in exact, -totals[name], len(name), name))


@pytest.mark.parametrize("seed", range(8))
def test_several_fields_best_hundred_is_every_projects_sum_ranked(seed: int) -> None:
    rng = random.Random(seed)
    fields = []
    for field in rng.sample(["name", "summary", "keywords", "author"], rng.randint(2, 3)):
        scores = FieldScores(field, 5_000)
        for _ in range(rng.randint(1, 2)):
            names = {"".join(rng.choices("ab-", k=rng.randint(1, 5))) for _ in range(rng.choice((5, 300)))}
            scores.add({name: rng.choice((0.5, 1.0, 2.0)) for name in names})
        fields.append(scores)
    exact = {"ab", "not-matched"}
    for operator in ("and", "or"):
        for limit in (1, 7, 100):
            assert best(fields, exact, operator, limit) == _reference(fields, exact, operator, limit)
