"""The Simple index at the real index's size (927,088 projects, generated): held in a few buffers and arrays, not a
Python object per project; every lookup right; the whole answers and name search as the dict version gave them."""

from __future__ import annotations

import gc
import heapq
import math
import sys
import threading
import tracemalloc
import types
from functools import cache

import pytest
from packaging.utils import canonicalize_name

from shim.catalog.ranking import FieldScores, best
from shim.methods import discovery
from shim.upstream.parsers import parse_simple_index
from shim.upstream.simple_index import IndexSnapshot

from .big_names import REAL_SIZE, big_names, simple_json

pytestmark = pytest.mark.heavy

JSON = "application/vnd.pypi.simple.v1+json"


def serial_of(i: int) -> int:
    return -1 if i % 1000 == 7 else 1_000 + 17 * i  # one in a thousand malformed


@cache
def body() -> bytes:
    return simple_json(big_names(), serial_of)


@cache
def snapshot() -> IndexSnapshot:
    listing = parse_simple_index(body(), JSON, None)
    held = IndexSnapshot.build(listing, None, 0.0, True)
    held.lookup.build()  # sorted as the service's worker thread sorts it, so that its arrays are counted too
    return held


def held_objects(root: object) -> tuple[int, int]:
    """How many objects `root` holds, and their bytes (each once; classes, modules and functions aside)."""
    seen: set[int] = set()
    count = size = 0
    stack = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(item))
        count += 1
        size += sys.getsizeof(item)
        stack.extend(gc.get_referents(item))
    return count, size


def test_a_snapshot_of_the_real_index_size_is_a_few_buffers_and_arrays() -> None:
    held = snapshot()
    count, size = held_objects(held)
    # Two strings of 18 MB (display and normalised names), arrays of 7 MB, and the malformed serials named (one
    # project in a thousand here); the dict of str it replaces held close to three million objects and 250 MB.
    assert count < 100 + 2 * len(held.listing.malformed), f"{count} objects"
    assert size < 80 * 2**20, f"{size / 2**20:.0f} MB"
    assert held.distinct == len(held.listing.names) == REAL_SIZE


def test_every_name_is_found_with_its_serial_and_no_other_spelling_is() -> None:
    held = snapshot()
    wrong = []
    for i, name in enumerate(big_names()):
        normalized = canonicalize_name(name)
        expected = None if i % 1000 == 7 else 1_000 + 17 * i
        if held.serial_of(normalized) != expected or normalized not in held:
            wrong.append(name)
        if name != normalized and name in held:  # a display spelling is not a normalised name
            wrong.append(name)
    assert wrong == []
    assert held.serial_of("no-such-project-anywhere") is None


def old_search(names: list[str], words: list[str], exact: set[str]) -> list[str]:
    """Name search as it was over the dict: a substring scan of every name per word, every match ranked."""
    scores = FieldScores("name", len(names))
    for word in words:
        whole = f"-{word}-"
        scores.add({name: 1.0 if whole in f"-{name}-" else 0.5 for name in names if word in name})
    totals = {name: math.fsum([score]) for name, score in scores.scores.items()}
    return heapq.nsmallest(100, totals, key=lambda name: (name not in exact, -totals[name], len(name), name))


@pytest.mark.parametrize("words", [["django"], ["py"], ["flask", "api"], ["zzzq"], ["sql-kit"], ["kit"]])
def test_name_search_over_the_real_index_size_ranks_as_the_dict_version(words: list[str]) -> None:
    held = snapshot()
    scores = FieldScores("name", held.distinct)
    discovery._score_names(scores, held.normalized, words, threading.Event())
    exact = {words[0]}
    assert best([scores], exact, "and", 100) == old_search(list(held.normalized), words, exact)


def test_reading_the_real_index_size_makes_no_dict_per_project() -> None:
    data = simple_json(big_names())  # as Warehouse writes it: every serial a plain integer
    gc.collect()
    tracemalloc.start()
    try:
        listing = parse_simple_index(data, JSON, None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # json.loads of this body peaks past 300 MB (a dict per project); Warehouse's plain shape is read in its bytes.
    assert peak < 200 * 2**20, f"{peak / 2**20:.0f} MB at the peak"
    assert len(listing.names) == REAL_SIZE and not listing.malformed
