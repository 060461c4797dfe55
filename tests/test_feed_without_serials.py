"""An upstream whose Simple index gives no per-project serials (HTML only, or JSON without `_last-serial`) has no
change feed: its faults and its log line say what is missing and what would make it work, never that the feed
starts at the next refresh (it never would)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from testkit.fakeindex import FakeIndex

from .helpers import after_first_pass, fault_of, in_app, refresh_index, rpc_for, sampled_health, served

HTML_ONLY = (
    "The upstream's Simple index has no per-project serials (it answers HTML only); the change feed needs a JSON "
    "Simple index (PEP 691) with serials: each project's _last-serial, and X-PyPI-Last-Serial, as Warehouse serves."
)
NO_LAST_SERIAL = (
    "The upstream's Simple index has no per-project serials (its JSON gives no _last-serial); the change feed needs "
    "a JSON Simple index (PEP 691) with serials: each project's _last-serial, and X-PyPI-Last-Serial, as Warehouse "
    "serves."
)
INDEXES = [
    pytest.param(lambda: FakeIndex(json_simple=False), HTML_ONLY, id="HTML only"),
    pytest.param(lambda: FakeIndex(serial_headers=False), NO_LAST_SERIAL, id="JSON without _last-serial"),
]


@pytest.mark.parametrize("writer", [True, False], ids=["writer here", "writer elsewhere"])
@pytest.mark.parametrize(("index", "message"), INDEXES)
def test_the_feeds_faults_say_what_is_missing_and_what_would_give_it(
    index: Callable[[], FakeIndex], message: str, writer: bool
) -> None:
    with served(index(), catalog_writer=writer) as client:
        if writer:
            after_first_pass(client)
        else:  # this process holds its own copy of the Simple index
            refresh_index(client)
        rpc = rpc_for(client)
        faults = [
            fault_of(rpc, "changelog_since_serial", 0),
            fault_of(rpc, "changelog", 0),
            fault_of(rpc, "changelog", 0, True),
        ]
    assert faults == [(-32500, f"RuntimeError: {message}")] * 3


@pytest.mark.parametrize(("index", "message"), INDEXES)
def test_the_refresher_logs_it_once(
    index: Callable[[], FakeIndex], message: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO), served(index()) as client:
        after_first_pass(client)
        in_app(client, client.app.state.refresher.refresh)  # type: ignore[attr-defined]  # a second pass
        fault_of(rpc_for(client), "changelog_since_serial", 0)
    said = [r.getMessage() for r in caplog.records if "serial" in r.getMessage() and r.levelno >= logging.WARNING]
    assert said == [message[0].lower() + message[1:].removesuffix(".")]  # the fault's words
    assert not any("first refresh" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("index", "message"), INDEXES)
def test_what_calls_read_still_reaches_the_catalog(index: Callable[[], FakeIndex], message: str) -> None:
    fake = index()
    fake.add_release("rolesy", "1.0", info={"summary": "Roles for everyone", "classifiers": ["Framework :: Rolesy"]})
    fake.project("rolesy").roles = [{"role": "Owner", "user": "alice"}]
    with served(fake, crawl_rate=0) as client:
        rpc = rpc_for(client)
        after_first_pass(client)
        assert rpc("package_roles", "rolesy") == [["Owner", "alice"]]
        assert rpc("user_packages", "alice") == [["Owner", "rolesy"]]
        assert [hit["name"] for hit in rpc("search", {"summary": "everyone"})] == ["rolesy"]
        assert rpc("browse", ["Framework :: Rolesy"]) == [["rolesy", "1.0"]]
        assert fault_of(rpc, "changelog_since_serial", 0) == (-32500, f"RuntimeError: {message}")


@pytest.mark.parametrize(("index", "message"), INDEXES)
def test_a_project_listed_later_is_listed_in_the_catalog_and_only_it_is_written(
    index: Callable[[], FakeIndex], message: str
) -> None:
    fake = index()
    with served(fake, crawl_rate=0) as client:
        after_first_pass(client)
        refresher = client.app.state.refresher  # type: ignore[attr-defined]
        writer, written = refresher.catalog, []
        list_projects = writer.list_projects

        def listing(projects: list[tuple[str, str]], now: int) -> None:
            written.append(projects)
            list_projects(projects, now)

        writer.list_projects = listing
        fake.add_release("later-pkg", "1.0")
        in_app(client, refresher.refresh)
        coverage = sampled_health(client)["catalog"]
    assert written == [[("later-pkg", "later-pkg")]]  # the one name the last listing lacked
    assert coverage["projects"] == len(fake.state.projects)
