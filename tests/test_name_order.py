"""A one-word name search takes its best hundred from the names in search's order, and ranks them exactly as the
full ranking of every name holding the word does."""

from __future__ import annotations

import random
import threading

import pytest

from shim.catalog.ranking import FieldScores, best
from shim.methods.discovery import _name_postings
from shim.upstream.compact import NameList
from shim.upstream.name_order import NameOrder
from testkit.fakeindex import FakeIndex

from .helpers import call, served

PARTS = ["py", "pyx", "numpy", "django", "dj", "rest", "py3", "a", "x-py", "tool", "yp", "pypy"]


def ranked(names: list[str], word: str, limit: int) -> list[str]:
    """The full ranking: every name's postings scored, the best taken."""
    scores = FieldScores("name", len(set(names)))
    scores.add(_name_postings(NameList.of(names), word, threading.Event()))
    return best([scores], {word}, "and", limit)


def random_names(rng: random.Random, count: int) -> list[str]:
    return ["-".join(rng.choice(PARTS) for _ in range(rng.randint(1, 4))) for _ in range(count)]


@pytest.mark.parametrize("seed", range(12))
def test_the_best_names_in_search_order_are_the_full_rankings(seed: int) -> None:
    rng = random.Random(seed)
    names = random_names(rng, rng.choice([5, 50, 400]))
    order = NameOrder(names)
    for word in ["py", "dj", "rest", "x-py", "py-py", "y", "-", "nothing", "a"]:
        for limit in (1, 3, 100):
            assert order.best(word, limit) == ranked(names, word, limit), (word, limit)


def test_the_exact_name_comes_first_and_each_name_once() -> None:
    names = ["aa-py", "py", "py-py", "py", "b-py-c-py", "numpy", "py-b"]
    assert NameOrder(names).best("py", 100) == ["py", "py-b", "aa-py", "py-py", "b-py-c-py", "numpy"]
    assert NameOrder(names).best("py", 100) == ranked(names, "py", 100)


def test_a_word_no_name_holds_finds_none() -> None:
    assert NameOrder(["a", "b"]).best("c", 100) == []
    assert NameOrder([]).best("py", 100) == []


def test_past_a_hundred_names_holding_the_word_inside_a_part_the_whole_part_names_are_still_found() -> None:
    names = ["pyx", "pyz", "pya", "numpy", "zz-py", "yy-py", "zz-numpy"]  # three inside a part before any whole one
    assert NameOrder(names).best("py", 2) == ["yy-py", "zz-py"] == ranked(names, "py", 2)
    assert NameOrder(names).best("py", 3) == ["yy-py", "zz-py", "pya"] == ranked(names, "py", 3)


def test_a_value_with_a_separator_at_an_end_ranks_its_own_exact_form_first_as_the_full_ranking_does() -> None:
    fake = FakeIndex()
    for name in ("foo", "foo-", "foo-bar"):
        fake.add_release(name, "1.0")
    with served(fake) as client:
        assert [hit["name"] for hit in call(client, "search", {"name": "foo."})] == ["foo-", "foo", "foo-bar"]
        assert [hit["name"] for hit in call(client, "search", {"name": "foo"})] == ["foo", "foo-", "foo-bar"]
