"""search, browse and user_packages over the fake index (spec §1.1 #5-#6, §1.2 search, §4 cases 14, 23, 39),
and pip search end to end."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterator
from typing import Any

import pytest

from shim.app import create_app
from shim.catalog.writes import CatalogWriter
from shim.upstream.urls import UpstreamURL
from testkit.fakeindex import FakeIndex
from testkit.servers import serve_in_thread

from .feed import Feed, started
from .helpers import fault_of, make_settings
from .ranking_fixture import without_fts5

E = "Environment :: Other Environment"
D = "Development Status :: 5 - Production/Stable"
P = "Programming Language :: Python"


def add_project(fake: FakeIndex, name: str, version: str, **info: Any) -> None:
    fake.add_release(name, version, info=info, files=[])


@contextlib.contextmanager
def discovery_service(**options: Any) -> Iterator[Feed]:
    """A service whose catalog has read every project (what the crawler does); `options` go to create_app."""
    fake = FakeIndex()
    add_project(fake, "tracker", "2.0", summary="A bug tracker", classifiers=[E])
    add_project(fake, "issue-tracker-lite", "0.3", summary="Lite issue tracking", keywords="bugs,tracker")
    add_project(fake, "bugzilla-bridge", "1.0", summary="Talk to a tracker", classifiers=[E, D, P])
    add_project(fake, "dev-status", "3.1", summary="Status", classifiers=[D, P])
    running = Feed(fake, make_settings(), **options)
    with running.client:
        started(running)
        yield running


@pytest.fixture
def discovery() -> Iterator[Feed]:
    with discovery_service() as running:
        yield running


def names(hits: list[dict[str, Any]]) -> list[str]:
    return [hit["name"] for hit in hits]


# search: PyPI's argument rules


def test_a_hit_is_pypis_four_keys(discovery: Feed) -> None:
    (hit,) = discovery.rpc("search", {"name": "roundup"})
    assert list(hit) == ["name", "summary", "version", "_pypi_ordering"]
    assert hit == {
        "name": "roundup",
        "summary": "A simple-to-use and -install issue-tracking system.",
        "version": "1.6.1",
        "_pypi_ordering": False,
    }


def test_an_unknown_operator_is_pypis_fault(discovery: Feed) -> None:
    assert fault_of(discovery.rpc, "search", {"name": "foo"}, "lol nope") == (
        -32500,
        "ValueError: Invalid operator, must be one of 'and' or 'or'.",
    )


def test_unknown_keys_and_empty_values_are_ignored_and_a_string_is_a_list(discovery: Feed) -> None:
    plain = discovery.rpc("search", {"name": "tracker"})
    assert discovery.rpc("search", {"name": ["tracker"], "colour": "blue", "summary": "", "keywords": []}) == plain
    assert discovery.rpc("search", {"colour": "blue"}) == []
    assert discovery.rpc("search", {}) == []


def test_values_of_one_field_are_ored_and_fields_combine_by_the_operator(discovery: Feed) -> None:
    assert names(discovery.rpc("search", {"name": ["roundup", "httpx"]})) == ["httpx", "roundup"]
    both = discovery.rpc("search", {"name": "tracker", "summary": "bug"})
    assert names(both) == ["tracker"]  # `and`: the name and the summary
    either = names(discovery.rpc("search", {"name": "tracker", "summary": "bug"}, "or"))
    assert either[0] == "tracker" and set(either) == {"tracker", "issue-tracker-lite"}


def test_ranking_exact_name_then_name_matches_then_text_matches(discovery: Feed) -> None:
    # What pip search sends for one word.
    hits = discovery.rpc("search", {"name": ["tracker"], "summary": ["tracker"]}, "or")
    assert names(hits) == ["tracker", "issue-tracker-lite", "bugzilla-bridge"]


def test_keywords_and_description_are_searched_word_by_word(discovery: Feed) -> None:
    assert names(discovery.rpc("search", {"keywords": "bugs"})) == ["issue-tracker-lite"]
    # Equal weight: the shorter name first.
    assert names(discovery.rpc("search", {"summary": "issue track"})) == ["roundup", "issue-tracker-lite"]


def test_version_in_the_spec_gives_one_hit_per_requested_version(discovery: Feed) -> None:
    hits = discovery.rpc("search", {"name": "roundup", "version": ["1.6.0", "1.5.1", "9.9"]})
    assert [(h["name"], h["version"]) for h in hits] == [("roundup", "1.5.1"), ("roundup", "1.6.0")]
    assert discovery.rpc("search", {"name": "roundup", "version": "9.9"}) == []


def test_summaries_are_cleaned_as_pypi_cleaned_them(discovery: Feed) -> None:
    (hit,) = discovery.rpc("search", {"name": "unicode-chaos"})
    assert hit["summary"] == "Hello&#8230; &#26085;&#26412;&#35486; [31mred[0m tab\there"


@pytest.mark.heavy  # hundreds of projects: a second or more
def test_at_most_100_hits() -> None:
    fake = FakeIndex()
    for i in range(130):
        add_project(fake, f"many-{i:03d}", "1.0", summary=f"Project {i}")
    running = Feed(fake, make_settings())
    with running.client:
        started(running)
        hits = running.rpc("search", {"name": "many"})
    assert len(hits) == 100 and names(hits) == [f"many-{i:03d}" for i in range(100)]


def test_without_the_crawler_name_matches_are_filled_from_their_json() -> None:
    fake = FakeIndex()
    running = Feed(fake, make_settings())
    with running.client:
        hits = running.rpc("search", {"name": ["roundup"], "summary": ["roundup"]}, "or")
    assert hits == [
        {
            "name": "roundup",
            "summary": "A simple-to-use and -install issue-tracking system.",
            "version": "1.6.1",
            "_pypi_ordering": False,
        }
    ]


# browse (spec §4 case 23, on what the index knows: each project's latest release)


def test_browse_needs_every_classifier(discovery: Feed) -> None:
    assert discovery.rpc("browse", [E]) == [["bugzilla-bridge", "1.0"], ["tracker", "2.0"]]
    assert discovery.rpc("browse", [E, D]) == [["bugzilla-bridge", "1.0"]]
    assert discovery.rpc("browse", [E, D, P]) == [["bugzilla-bridge", "1.0"]]
    # defusedxml's recorded latest release carries both as well.
    assert discovery.rpc("browse", [D, P]) == [
        ["bugzilla-bridge", "1.0"],
        ["defusedxml", "0.7.1"],
        ["dev-status", "3.1"],
    ]


def test_browse_covers_every_release_the_catalog_has_read_not_only_the_latest(discovery: Feed) -> None:
    fake = discovery.fake
    add_project(fake, "tracker", "3.0", summary="A bug tracker", classifiers=[E, D])
    discovery.refresh()  # the catalog reads tracker's JSON again: its latest release is 3.0 now
    assert discovery.rpc("browse", [E]) == [["bugzilla-bridge", "1.0"], ["tracker", "2.0"], ["tracker", "3.0"]]
    assert discovery.rpc("browse", [E, D]) == [["bugzilla-bridge", "1.0"], ["tracker", "3.0"]]
    # A release removed upstream leaves browse with it.
    fake.project("tracker").releases = [r for r in fake.project("tracker").releases if r.version != "2.0"]
    fake.bump_serial("tracker")
    discovery.refresh()
    assert discovery.rpc("browse", [E]) == [["bugzilla-bridge", "1.0"], ["tracker", "3.0"]]


@pytest.mark.parametrize("classifiers", [[], ["Not :: A :: Classifier"], [E, E], [E, "Not :: A :: Classifier"]])
def test_browse_edge_cases_are_empty(discovery: Feed, classifiers: list[str]) -> None:
    assert discovery.rpc("browse", classifiers) == []


# user_packages (spec §4 case 14)


def test_user_packages_owner_roles_first_then_by_project(discovery: Feed) -> None:
    fake = discovery.fake
    fake.project("dev-status").roles = [{"role": "Maintainer", "user": "Zed"}]
    fake.project("tracker").roles = [{"role": "Owner", "user": "zed"}]
    fake.bump_serial("dev-status")
    fake.bump_serial("tracker")
    discovery.refresh()
    # Zed maintains case-owners (a fixture) and dev-status, and (as "zed") owns tracker.
    expected = [["Owner", "tracker"], ["Maintainer", "case-owners"], ["Maintainer", "dev-status"]]
    assert discovery.rpc("user_packages", "ZED") == expected
    assert discovery.rpc("user_packages", "nobody") == []


# pip search, the real thing


@pytest.fixture(scope="module")
def pip_service() -> Iterator[str]:
    fake = FakeIndex()
    with serve_in_thread(fake) as index_url:
        fake.set_urls(index_url + "/")
        settings = make_settings(upstream=UpstreamURL.parse(index_url + "/"))
        with serve_in_thread(create_app(settings), lifespan="on") as shim_url:
            with xmlrpc.client.ServerProxy(shim_url + "/pypi") as proxy:
                proxy.changelog_since_serial(0)  # the index is loaded
            yield shim_url


def pip_search(index: str, *words: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    environ["PIP_CONFIG_FILE"] = os.devnull
    return subprocess.run(
        [sys.executable, "-m", "pip", "search", "--disable-pip-version-check", "-i", index, *words],
        env=environ, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.e2e
@pytest.mark.parametrize("suffix", ["/pypi", ""], ids=["pypi", "bare host (/RPC2)"])
def test_pip_search_one_word(pip_service: str, suffix: str) -> None:
    done = pip_search(pip_service + suffix, "roundup")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(None, 2)[:2] == ["roundup", "(1.6.1)"]
    assert "A simple-to-use and -install issue-tracking system." in done.stdout


@pytest.mark.e2e
def test_pip_search_several_words(pip_service: str) -> None:
    done = pip_search(pip_service + "/pypi", "roundup", "httpx")
    assert done.returncode == 0, done.stderr
    found = {line.split()[0] for line in done.stdout.splitlines() if line and not line.startswith(" ")}
    assert {"roundup", "httpx"} <= found


@pytest.mark.e2e
def test_pip_search_with_nothing_found_exits_23(pip_service: str) -> None:
    done = pip_search(pip_service + "/pypi", "zzz-no-such-project")
    assert (done.returncode, done.stdout) == (23, "")


def test_a_slow_upstream_leaves_unfilled_hits_out_within_the_deadline() -> None:
    fake = FakeIndex()
    fake.slow("/pypi/roundup/json", 5)
    running = Feed(fake, make_settings(search_fill_timeout=0.2))
    with running.client:
        started = time.monotonic()
        hits = running.rpc("search", {"name": ["roundup", "httpx"]})
        elapsed = time.monotonic() - started
    assert names(hits) == ["httpx"]  # roundup's JSON did not come in time
    assert elapsed < 4  # the deadline, not the slow upstream, set the pace


def search_table(running: Feed) -> str:
    """How the catalog's `search` table was made (its CREATE statement)."""
    catalog: CatalogWriter = running.client.app.state.refresher.catalog  # type: ignore[attr-defined]
    (sql,) = catalog.connect().execute("SELECT sql FROM sqlite_master WHERE name = 'search'").fetchone()
    assert catalog.get_meta("fts") == ("0" if sql.startswith("CREATE TABLE") else "1")
    return str(sql)


TEXT_SEARCHES = [
    {"summary": "issue track"},
    {"keywords": "bugs"},
    {"summary": ["tracker", "status"]},
    {"summary": "issue", "keywords": "tracker"},
    {"description": "nothing-says-this"},
]


def test_without_fts5_text_fields_are_matched_by_substring(discovery: Feed) -> None:
    assert search_table(discovery).startswith("CREATE VIRTUAL TABLE search USING fts5")
    with discovery_service(catalog_connection_factory=without_fts5) as plain:
        # SQLite itself refused the FTS5 table: the catalog fell back to a plain one, scanned with LIKE.
        assert search_table(plain).startswith("CREATE TABLE search (normalized TEXT PRIMARY KEY, summary")
        assert names(plain.rpc("search", {"summary": "issue track"})) == ["roundup", "issue-tracker-lite"]
        assert names(plain.rpc("search", {"keywords": "bugs"})) == ["issue-tracker-lite"]
        for spec in TEXT_SEARCHES:  # the same hits as through FTS5
            assert plain.rpc("search", spec) == discovery.rpc("search", spec), spec
