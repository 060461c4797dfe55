"""search ranked as PyPI's Elasticsearch ranked it (spec §1.2 search), pinned on a table of queries over a catalog of
223 projects with known summaries (tests/ranking_fixture.py); each query's hits in order. The table is run twice:
over SQLite's full-text engine and over a plain table scanned instead, which find the candidates differently and
must rank them exactly alike (the ranking is one function of ours, shim.catalog.ranking)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from .feed import Feed, started
from .helpers import make_settings
from .ranking_fixture import ranking_index, without_fts5

pytestmark = pytest.mark.heavy  # a corpus of 223 projects, analysed and ranked: seconds in all

MORE = ...  # the hits go on past those listed

Spec = dict[str, str | list[str]]

RANKING: list[tuple[str, Spec, str, list[Any]]] = [
    # The words of a value are ORed: both words first (the one with each twice first of all), then "client"
    # alone, the rarer word, then "http" alone; equal scores by the shorter name.
    (
        "words ORed, both first",
        {"summary": "http client"},
        "and",
        ["http-client-tools", "treq", "httpx", "aiohttp", "httplib2", "client-sdk", "urllib3", "requests"],
    ),
    # Words are stemmed and case-folded as the snowball analyzer did: "HTTP clients" is "http client".
    (
        "stemmed",
        {"summary": "HTTP clients"},
        "and",
        ["http-client-tools", "treq", "httpx", "aiohttp", "httplib2", "client-sdk", "urllib3", "requests"],
    ),
    # "testing" matches "test" (tox) and "testing".
    ("testing is test", {"summary": "testing"}, "and", ["tox", "nose", "pytest", "hypothesis", "http-client-tools"]),
    # A rare word weighs more than a common one: "xml" alone before "library" alone (the fillers say "library").
    (
        "rare words weigh more",
        {"summary": "xml library"},
        "and",
        ["lxml", "parsel", "untangle", "xmltodict", "defusedxml", "markupsafe", "pycurl", "urllib3", MORE],
    ),
    # Two values of one field are ORed as two words are.
    (
        "values ORed",
        {"summary": ["html", "xml"]},
        "and",
        ["parsel", "markupsafe", "html-parser", "lxml", "untangle", "xmltodict", "defusedxml"],
    ),
    # Stop words are no words: nothing matches "the".
    ("stop words", {"summary": "the"}, "and", []),
    # The exact name first; a name holding the word whole before one holding it inside a word.
    ("exact name, whole word, inside", {"name": "requests"}, "and", ["requests", "requests-oauthlib", "grequests"]),
    ("normalised exact name", {"name": "Requests_OAuthlib"}, "and", ["requests-oauthlib"]),
    # pip search's spec: the exact name first even though others score more; then name and summary.
    (
        "exact name first",
        {"name": ["tools"], "summary": ["tools"]},
        "or",
        ["tools", "parser-tools", "http-client-tools", "tox", MORE],
    ),
    (
        "pip search, two words",
        {"name": ["http", "client"], "summary": ["http", "client"]},
        "or",
        ["http-client-tools", "client-sdk", "httpx", "aiohttp", "httplib2", "treq", "pytest-httpx", "urllib3", MORE],
    ),
    # Boosts: the name (10) before the summary (5), the word as rare in each.
    (
        "name 10, summary 5",
        {"name": "parser", "summary": "parser"},
        "or",
        ["html-parser", "yaml-parser", "parser-tools", "pyyaml"],
    ),
    # `and`: every field must match, each by any of its words.
    ("and: every field", {"name": "parser", "summary": "parser"}, "and", ["html-parser", "yaml-parser"]),
    ("and: summary and keywords", {"summary": "xml", "keywords": "bomb"}, "and", ["defusedxml"]),
    # `or`: any field; "bomb" is rarer among keywords than "xml" among summaries.
    (
        "or: any field",
        {"summary": "xml", "keywords": "bomb"},
        "or",
        ["defusedxml", "bomb-squad", "lxml", "parsel", "untangle", "xmltodict", "markupsafe"],
    ),
    # A word the description holds four times weighs more than one it holds twice, and more than the summary's
    # once (equal boosts, and "parser" is rarer among descriptions).
    (
        "term frequency",
        {"summary": "parser", "description": "parser"},
        "or",
        ["parser-tools", "parsel", "pyyaml", "html-parser", "yaml-parser"],
    ),
    # Other fields weigh 1, and are matched word by word too.
    ("author", {"author": "armin"}, "and", ["flask", "jinja2", "markupsafe"]),
    ("author and summary", {"author": "armin", "summary": "template"}, "and", ["jinja2"]),
    ("license words", {"license": "bsd"}, "and", ["django", "starlette"]),
]


@pytest.fixture(scope="module", params=["fts5", "plain table"])
def ranked(request: pytest.FixtureRequest) -> Iterator[Feed]:
    options: dict[str, Any] = {"catalog_connection_factory": without_fts5} if request.param == "plain table" else {}
    running = Feed(ranking_index(), make_settings(), **options)
    with running.client:
        started(running)
        yield running


@pytest.mark.parametrize(("spec", "operator", "expected"), [row[1:] for row in RANKING], ids=[r[0] for r in RANKING])
def test_search_ranks_like_pypis_elasticsearch(ranked: Feed, spec: Spec, operator: str, expected: list[Any]) -> None:
    found = [hit["name"] for hit in ranked.rpc("search", spec, operator)]
    if expected and expected[-1] is MORE:
        assert found[: len(expected) - 1] == expected[:-1]
        assert len(found) >= len(expected)
    else:
        assert found == expected


def test_the_fixture_is_big_enough(ranked: Feed) -> None:
    assert len(ranked.rpc("list_packages")) >= 200


def test_a_catalog_written_before_ranking_has_its_search_terms_rewritten_when_opened() -> None:
    settings = make_settings()
    fake = ranking_index()
    first = Feed(fake, settings)
    with first.client:
        started(first)
    # As the version before this one left the file: the search table holds the text as it was, no form recorded.
    with contextlib.closing(sqlite3.connect(settings.catalog_path)) as connection, connection:
        for field in ("summary", "keywords"):
            connection.execute(
                f"UPDATE search SET {field} = COALESCE((SELECT json_extract(metadata, '$.{field}') FROM projects "
                "WHERE projects.normalized = search.normalized), '')"
            )
        connection.execute("DELETE FROM meta WHERE key = 'search_form'")
    second = Feed(fake, settings)
    with second.client:
        second.refresh()  # the writer opens the file
        hits = second.rpc("search", {"summary": "testing"})
        assert [hit["name"] for hit in hits] == ["tox", "nose", "pytest", "hypothesis", "http-client-tools"]
