"""The change feed's fast path: with default settings a change upstream reaches changelog_since_serial, changelog and
changelog_last_serial within a minute, from the site RSS feeds and the project's JSON, long before the Simple index
is read again; on a fake clock that drives the service's catalog work."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from shim.catalog.poller import MAX_TRIES
from shim.catalog.reads import CatalogReader
from testkit.fakeindex import FakeIndex
from testkit.servers import serve_in_thread
from testkit.wheels import wheel_file

from .feed import Polled, index_copy, iso, posix
from .helpers import shim_environ
from .transports import Lagging

WHEEL = "roundup-1.7.0-py3-none-any.whl"


def test_a_release_reaches_the_three_feed_methods_within_a_minute_with_default_settings() -> None:
    fake = FakeIndex()
    with Polled(fake) as polled:
        start = polled.rpc("changelog_last_serial")
        assert start == fake.state.serial
        simple_reads = fake.count("/simple/")
        fake.add_release("roundup", "1.7.0", created=iso(5), files=[wheel_file("roundup", "1.7.0", upload=iso(6))])
        serial = fake.project("roundup").last_serial
        rows = polled.until(lambda: polled.rpc("changelog_since_serial", start), within=60)
        assert rows == [
            ["roundup", "1.7.0", posix(iso(5)), "new release", serial],
            ["roundup", "1.7.0", posix(iso(6)), "add py3 file roundup-1.7.0-py3-none-any.whl", serial],
        ]
        assert polled.rpc("changelog", posix(iso(0))) == [row[:4] for row in rows]
        assert polled.rpc("changelog_last_serial") == serial == fake.state.serial
        # The Simple index was not read again for it: its next turn is minutes away.
        assert fake.count("/simple/") == simple_reads


def test_a_new_project_the_catalog_never_read_is_created_within_a_minute() -> None:
    fake = FakeIndex()
    with Polled(fake) as polled:
        start = polled.rpc("changelog_last_serial")
        fake.add_release("Brand-New", "0.1", created=iso(5), files=[wheel_file("brand-new", "0.1", upload=iso(6))])
        serial = fake.project("brand-new").last_serial
        rows = polled.until(lambda: polled.rpc("changelog_since_serial", start), within=60)
        assert rows == [
            ["Brand-New", None, posix(iso(5)), "create", serial],
            ["Brand-New", "0.1", posix(iso(5)), "new release", serial],
            ["Brand-New", "0.1", posix(iso(6)), "add py3 file brand_new-0.1-py3-none-any.whl", serial],
        ]
        assert polled.rpc("changelog", posix(iso(0))) == [row[:4] for row in rows]
        assert polled.rpc("changelog_last_serial") == serial
        # A mirror told of it reads it at once, though the Simple index the service holds does not list it yet.
        page = polled.client.get("/pypi/brand-new/json")
        assert page.status_code == 200 and int(page.headers["x-pypi-last-serial"]) == serial
        assert polled.client.get("/simple/brand-new/").status_code == 200
        assert polled.client.get("/pypi/never-was/json").status_code == 404


def test_the_files_of_a_release_the_feed_shows_created_since_are_new_whatever_their_upload_time() -> None:
    fake = FakeIndex()
    with Polled(fake) as polled:
        start = polled.rpc("changelog_last_serial")
        # An upload time behind the catalog's own clock (the upstream's clock a little behind, or the same second).
        fake.add_release("roundup", "1.7.0", created=iso(5), files=[wheel_file("roundup", "1.7.0", upload=iso(-60))])
        rows = polled.until(lambda: polled.rpc("changelog_since_serial", start), within=60)
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("1.7.0", posix(iso(5)), "new release"),
        ("1.7.0", posix(iso(-60)), f"add py3 file {WHEEL}"),
    ]


def test_a_project_read_for_a_call_just_before_its_release_is_read_again_for_it() -> None:
    fake = FakeIndex()
    with Polled(fake) as polled:
        start = polled.rpc("changelog_last_serial")
        assert polled.rpc("package_releases", "roundup")  # its JSON is cached now, fresh for minutes
        fake.add_release("roundup", "1.7.0", created=iso(5), files=[])
        rows = polled.until(lambda: polled.rpc("changelog_since_serial", start), within=60)
        assert [(r[1], r[3], r[4]) for r in rows] == [("1.7.0", "new release", fake.project("roundup").last_serial)]
        assert "1.7.0" in polled.rpc("package_releases", "roundup")


def test_an_item_given_up_on_is_not_taken_up_again_while_the_feeds_still_show_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="shim.catalog.poller")
    fake = FakeIndex()
    with TestClient(fake, base_url="https://upstream.test") as upstream:
        before = upstream.get("/pypi/roundup/json")
    lagging = Lagging(fake, "/pypi/roundup/json", before, times=0)
    with Polled(fake, lagging) as polled:
        fake.add_release("roundup", "1.7.0", created=iso(5), files=[])
        lagging.times = 10**6  # a CDN copy that never catches up: given up on after MAX_TRIES polls
        for _ in range(3 * MAX_TRIES):
            polled.advance(30)  # the feeds still show the release all along
    given_up = [m for m in caplog.messages if m == "roundup 1.7.0: left to the Simple index's next read"]
    assert len(given_up) == 1  # left to the Simple index's reads, never polled for again


def test_a_json_copy_that_lags_the_feed_or_fails_is_asked_again_at_the_next_poll() -> None:
    fake = FakeIndex()
    with TestClient(fake, base_url="https://upstream.test") as upstream:
        before = upstream.get("/pypi/roundup/json")
    lagging = Lagging(fake, "/pypi/roundup/json", before, times=0)
    with Polled(fake, lagging) as polled:
        start = polled.rpc("changelog_last_serial")
        fake.add_release("roundup", "1.7.0", created=iso(5), files=[])
        lagging.times = 1  # the first poll's read gets the CDN's copy from before the release
        fake.fail("/pypi/oddversions/json", status=503, times=1)
        fake.add_release("oddversions", "4.0", created=iso(6), files=[])
        polled.advance(30)
        assert polled.rpc("changelog_since_serial", start) == [
            ["oddversions", "4.0", posix(iso(6)), "new release", fake.project("oddversions").last_serial]
        ]  # its read failed once, and the poll's next try (the guard's retry) read it
        polled.advance(30)
        rows = polled.rpc("changelog_since_serial", start)
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("roundup", "1.7.0", "new release"),
        ("oddversions", "4.0", "new release"),
    ]
    assert fake.count("/pypi/roundup/json") == 2  # one read a poll


def test_an_idle_upstream_costs_two_conditional_feed_requests_a_poll_and_no_json() -> None:
    fake = FakeIndex()
    with Polled(fake) as polled:
        fake.requests.clear()
        for _ in range(20):  # ten minutes
            polled.advance(30)
    paths = [r.path for r in fake.requests]
    assert {path: paths.count(path) for path in paths} == {
        "/rss/updates.xml": 20,
        "/rss/packages.xml": 20,
        "/simple/": 2,
    }
    # The first poll read both feeds whole; every other request was conditional, and answered 304.
    assert all(r.headers.get("if-none-match") for r in fake.requests[2:])
    assert all("gzip" in r.headers["accept-encoding"] for r in fake.requests)


@pytest.mark.heavy  # a second of real waiting: with the end-to-end stage
def test_without_rss_feeds_every_change_waits_for_the_simple_index(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeIndex(rss=False)
    with Polled(fake) as polled:
        start = polled.rpc("changelog_last_serial")
        fake.add_release("roundup", "1.7.0", created=iso(5), files=[wheel_file("roundup", "1.7.0", upload=iso(6))])
        polled.advance(60)
        assert polled.rpc("changelog_since_serial", start) == []
        rows = polled.until(lambda: polled.rpc("changelog_since_serial", start), within=300)
    assert [(r[1], r[3]) for r in rows] == [("1.7.0", "new release"), ("1.7.0", f"add py3 file {WHEEL}")]
    assert polled.elapsed >= 300  # the Simple index's next read
    # Asked for the feeds at the first poll, then at the Simple index's interval only; said once.
    assert fake.count("/rss/updates.xml") == 2
    told = [r.getMessage() for r in caplog.records if "has no RSS feeds" in r.getMessage()]
    assert told == [
        "the upstream has no RSS feeds (https://upstream.test/rss/updates.xml answers 404): every change waits for "
        "the Simple index's next read (SHIM_INDEX_REFRESH, every 300 s); asked for them again at that interval"
    ]


def test_the_simple_index_still_records_what_the_feeds_do_not_show_and_the_last_serial_never_goes_back() -> None:
    fake = FakeIndex()
    lagging = Lagging(fake, "/simple/", index_copy(fake), times=0)
    with Polled(fake, lagging) as polled:
        start = polled.rpc("changelog_last_serial")
        unseen = fake.bump_serial("oddversions")  # a change no feed shows (a yank, a role, a file added late)
        lagging.stale, lagging.times = index_copy(fake), 100  # the copy a CDN node goes on serving from now on
        fake.add_release("roundup", "1.7.0", created=iso(5), files=[])
        fake.add_release("brand-new", "0.1", created=iso(6), files=[])
        newest = fake.state.serial
        polled.until(lambda: polled.rpc("changelog_last_serial") == newest, within=60)
        assert polled.rpc("changelog_since_serial", newest) == []  # a mirror syncs up to `newest` now
        polled.advance(300 - polled.elapsed)  # the Simple index's next read: the copy, behind the feeds
        rows = polled.rpc("changelog_since_serial", start)
        assert polled.rpc("changelog_last_serial") == newest
        # Recorded below a serial already given: given again to whoever asks since a serial it could have missed.
        assert polled.rpc("changelog_since_serial", newest) == [rows[0]]
        assert polled.rpc("changelog_since_serial", newest + 1) == []
    # The copy was read for what the feeds never showed; the project it predates was not taken as removed.
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [
        ("oddversions", None, "update", unseen),
        ("roundup", "1.7.0", "new release", fake.project("roundup").last_serial),
        ("brand-new", None, "create", newest),
        ("brand-new", "0.1", "new release", newest),
    ]
    # Restarted on the same catalog, behind the same copy: the same rows, the same last serial.
    with Polled(fake, lagging, catalog_path=polled.settings.catalog_path) as restarted:
        assert restarted.rpc("changelog_since_serial", start) == rows
        assert restarted.rpc("changelog_last_serial") == newest


@pytest.mark.e2e
def test_the_catalog_refresh_process_polls_the_feeds_too(tmp_path: Path) -> None:
    fake = FakeIndex()
    catalog = CatalogReader(tmp_path / "catalog.sqlite3")
    with serve_in_thread(fake) as index_url:
        fake.set_urls(index_url + "/")
        # A poll each second: the Simple index's next read is the default 300 s away.
        environ = shim_environ(index_url + "/", catalog.path, tmp_path, SHIM_FEED_POLL="1")
        process = subprocess.Popen([sys.executable, "-m", "shim", "catalog", "refresh"], env=environ)
        try:
            assert eventually(lambda: catalog.get_meta("index_serial") is not None), "no first pass"
            start = fake.state.serial
            fake.add_release("roundup", "1.7.0", files=[])
            assert eventually(lambda: catalog.rows_since(start)), "not recorded from the feeds"
        finally:
            process.terminate()
            process.wait(timeout=10)
            catalog.close()
    assert fake.count("/simple/") == 1


def eventually(seen: Callable[[], object], timeout: float = 30.0) -> bool:
    """Whether `seen()` turns truthy within `timeout` seconds of real time (a child process's pace)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if seen():
            return True
        time.sleep(0.1)
    return False


def test_a_project_removed_before_the_simple_index_copy_stays_404_without_asking_the_upstream() -> None:
    fake = FakeIndex()
    with Polled(fake) as polled:
        del fake.state.projects["roundup"]
        fake.state.serial += 1
        polled.advance(300)  # the Simple index's next read records the removal
        assert [r[3] for r in polled.rpc("changelog_since_serial", 0) if r[0] == "roundup"][-1] == "remove project"
        asked = fake.count("/pypi/roundup/json")
        assert polled.client.get("/pypi/roundup/json").status_code == 404
        assert fake.count("/pypi/roundup/json") == asked


def test_a_catalog_from_before_the_feed_poller_is_followed_from_its_first_refresh_on() -> None:
    fake = FakeIndex()
    with Polled(fake) as first:
        start = first.rpc("changelog_last_serial")
    with sqlite3.connect(first.settings.catalog_path) as connection:  # as an older version left it
        connection.execute("DELETE FROM meta WHERE key = 'index_serial'")
    connection.close()
    with Polled(fake, catalog_path=first.settings.catalog_path) as polled:
        fake.add_release("roundup", "1.7.0", created=iso(5), files=[])
        rows = polled.until(lambda: polled.rpc("changelog_since_serial", start), within=60)
    assert [(r[0], r[1], r[3]) for r in rows] == [("roundup", "1.7.0", "new release")]
