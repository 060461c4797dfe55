"""The change feed: changelog_since_serial and changelog over a fake index whose serials move between
refreshes, the catalog behind them (restart, corruption, the 50 000 cap) and the crawler's rate."""

from __future__ import annotations

import asyncio
import time
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from starlette.testclient import TestClient

from shim.app import create_app
from shim.catalog.crawler import Crawler
from shim.catalog.refresher import Refresher
from shim.catalog.rows import ListedProject
from shim.catalog.schema import MAX_ROWS
from shim.catalog.writes import CatalogWriter
from shim.upstream.urls import UpstreamURL
from testkit.fakeindex import FakeIndex
from testkit.servers import serve_in_thread
from testkit.wheels import wheel_file

from .feed import Feed, posix, started
from .helpers import call, make_settings, run_shim_json, shim_environ
from .transports import Lagging


@pytest.fixture
def feed() -> Iterator[Feed]:
    fake = FakeIndex()
    running = Feed(fake, make_settings())
    with running.client:
        started(running)
        yield running


def test_the_first_look_is_the_starting_point(feed: Feed) -> None:
    start = feed.fake.state.serial
    assert feed.since(start) == []
    first_look = feed.since(0)  # a row per project, timed when the first look saw it
    assert feed.rpc("changelog", 0) == [row[:4] for row in first_look]  # the same rows, by time
    assert feed.rpc("changelog", max(row[2] for row in first_look)) == []  # nothing newer than the first look


def test_a_new_release_gives_warehouses_rows_with_the_real_serial(feed: Feed) -> None:
    start = feed.fake.state.serial
    feed.fake.add_release("roundup", "1.7.0", created="2026-01-02T03:04:05Z", files=[wheel_file("roundup", "1.7.0")])
    assert feed.refresh() == 1
    serial = feed.fake.project("roundup").last_serial
    assert feed.since(start) == [
        ["roundup", "1.7.0", posix("2026-01-02T03:04:05Z"), "new release", serial],  # the RSS pubDate
        ["roundup", "1.7.0", posix("2026-01-02T03:05:00Z"), "add py3 file roundup-1.7.0-py3-none-any.whl", serial],
    ]
    assert feed.since(serial) == []
    assert feed.rpc("changelog_last_serial") == serial
    # The site-wide feed named the release: no per-project feed was needed.
    paths = [r.path for r in feed.fake.requests]
    assert paths.count("/rss/updates.xml") == 1 and "/rss/project/roundup/releases.xml" not in paths


def test_without_feeds_a_release_is_timed_by_its_first_upload() -> None:
    fake = FakeIndex(rss=False)
    running = Feed(fake, make_settings())
    with running.client:
        started(running)
        start = fake.state.serial
        fake.add_release("roundup", "1.7.0", created="2026-01-02T03:04:05Z", files=[wheel_file("roundup", "1.7.0")])
        running.refresh()
        rows = running.since(start)
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("1.7.0", posix("2026-01-02T03:05:00Z"), "new release"),
        ("1.7.0", posix("2026-01-02T03:05:00Z"), "add py3 file roundup-1.7.0-py3-none-any.whl"),
    ]


def test_a_change_not_recorded_is_tried_again_even_when_the_simple_index_has_not_moved(feed: Feed) -> None:
    start = feed.fake.state.serial
    feed.fake.add_release("roundup", "1.7.0", files=[])
    feed.fake.fail("/pypi/roundup/json", status=503, times=3)  # every try of this pass fails
    assert feed.refresh() == 0
    simple = [r for r in feed.fake.requests if r.path == "/simple/"]
    assert feed.refresh() == 1  # the Simple index answers 304 now; the change is still owed
    assert [r for r in feed.fake.requests if r.path == "/simple/"][len(simple) :][0].headers.get("if-none-match")
    assert [(r[1], r[3]) for r in feed.since(start)] == [("1.7.0", "new release")]
    assert feed.refresh() == 0  # settled: nothing more to do


def test_a_json_copy_older_than_the_simple_index_is_not_recorded_until_it_catches_up() -> None:
    fake = FakeIndex()
    with TestClient(fake, base_url="https://upstream.test") as upstream:
        before = upstream.get("/pypi/roundup/json")
    fake.requests.clear()
    lagging = Lagging(fake, "/pypi/roundup/json", before, times=0)
    running = Feed(fake, make_settings(), lagging)
    with running.client:
        started(running)
        start = fake.state.serial
        fake.add_release("roundup", "1.7.0", files=[])
        lagging.times = 2  # the CDN serves the old copy to both tries of this pass
        assert running.refresh() == 0
        assert running.since(start) == []
        assert running.refresh() == 1  # it has caught up
        assert [(r[1], r[3]) for r in running.since(start)] == [("1.7.0", "new release")]


def test_files_added_late_yanks_and_removed_releases(feed: Feed) -> None:
    fake = feed.fake
    start = fake.state.serial
    project = fake.project("oddversions")
    release = next(r for r in project.releases if r.version == "3.0.0")
    from testkit.fakeindex import FileRecord

    release.files.append(FileRecord.from_state(wheel_file("oddversions", "3.0.0", upload="2026-02-01T00:00:00Z")))
    fake.bump_serial("oddversions")
    feed.refresh()
    added = fake.project("oddversions").last_serial
    release.yanked = True
    fake.bump_serial("oddversions")
    feed.refresh()
    yanked = fake.project("oddversions").last_serial
    project.releases = [r for r in project.releases if r.version != "2.0rc1"]
    fake.bump_serial("oddversions")
    feed.refresh()
    removed = fake.project("oddversions").last_serial
    rows = feed.since(start)
    assert [row[1:] for row in rows if row[4] == added] == [
        ["3.0.0", posix("2026-02-01T00:00:00Z"), "add py3 file oddversions-3.0.0-py3-none-any.whl", added]
    ]
    assert [(row[1], row[3], row[4]) for row in rows if row[4] in (yanked, removed)] == [
        ("3.0.0", "yank release", yanked),
        ("2.0rc1", "remove release", removed),
    ]
    assert all(row[0] == "oddversions" for row in rows)


def test_a_created_and_a_removed_project(feed: Feed) -> None:
    fake = feed.fake
    start = fake.state.serial
    fake.add_release("brand-new", "0.1", created="2026-03-01T00:00:00Z", files=[wheel_file("brand-new", "0.1")])
    del fake.state.projects["empty-project"]
    fake.state.serial += 1
    feed.refresh()
    rows = feed.since(start)
    new_serial = fake.project("brand-new").last_serial
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [
        ("brand-new", None, "create", new_serial),
        ("brand-new", "0.1", "new release", new_serial),
        ("brand-new", "0.1", "add py3 file brand_new-0.1-py3-none-any.whl", new_serial),
        # The removal's own serial is gone with the project: the index's serial when it was seen gone.
        ("empty-project", None, "remove project", fake.state.serial),
    ]
    assert rows[0][2] == posix("2026-03-01T00:00:00Z")


def test_a_project_never_read_before_its_change_gives_what_its_upload_times_prove() -> None:
    fake = FakeIndex()
    running = Feed(fake, make_settings())
    with running.client:
        running.rpc("changelog_since_serial", 0)  # the first look; no project's JSON read yet
        start = fake.state.serial
        soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        fake.add_release("roundup", "1.7.0", created=soon, files=[wheel_file("roundup", "1.7.0", upload=soon)])
        fake.bump_serial("httpx")
        running.refresh()
        rows = [(r[0], r[1], r[3]) for r in running.since(start)]
    # Files uploaded after the previous serial was seen are new; otherwise only "something changed".
    assert rows == [
        ("roundup", "1.7.0", "new release"),
        ("roundup", "1.7.0", "add py3 file roundup-1.7.0-py3-none-any.whl"),
        ("httpx", None, "update"),
    ]


def test_a_change_the_documents_do_not_show_is_one_update_row(feed: Feed) -> None:
    start = feed.fake.state.serial
    serial = feed.fake.bump_serial("roundup")  # say, a role or a description changed
    feed.refresh()
    (row,) = feed.since(start)
    assert (row[0], row[1], row[3], row[4]) == ("roundup", None, "update", serial)
    assert isinstance(row[2], int)


def test_rows_come_in_serial_order_with_ints_and_nil_on_the_wire(feed: Feed) -> None:
    fake = feed.fake
    start = fake.state.serial
    for name in ("starlette", "roundup", "httpx"):
        fake.bump_serial(name)
    feed.refresh()
    body = xmlrpc.client.dumps((start,), methodname="changelog_since_serial").encode()
    response = feed.client.post("/pypi", content=body, headers={"Content-Type": "text/xml"})
    assert b"<nil/>" in response.content and b"<i8>" not in response.content
    rows = cast(list[list[Any]], xmlrpc.client.loads(response.content)[0][0])
    assert [r[0] for r in rows] == ["starlette", "roundup", "httpx"]
    assert [r[4] for r in rows] == sorted(r[4] for r in rows)


def test_changelog_gives_4_or_5_tuples_newer_than_a_time(feed: Feed) -> None:
    feed.fake.add_release("roundup", "1.7.0", created="2026-01-02T03:04:05Z", files=[])
    feed.refresh()
    serial = feed.fake.project("roundup").last_serial
    when = posix("2026-01-02T03:04:05Z")

    def roundup(rows: list[list[Any]]) -> list[list[Any]]:
        # The first look's rows (one per other project, timed when it was taken) come too, as in the serial feed.
        return [row for row in rows if row[0] == "roundup"]

    assert roundup(feed.rpc("changelog", when - 1)) == [["roundup", "1.7.0", when, "new release"]]
    assert roundup(feed.rpc("changelog", when - 1, True)) == [["roundup", "1.7.0", when, "new release", serial]]
    assert roundup(feed.rpc("changelog", when)) == []  # strictly newer, as PyPI


def test_an_old_serial_gets_a_row_per_project_above_it(feed: Feed) -> None:
    fake = feed.fake
    fake.add_release("roundup", "1.7.0", files=[])
    feed.refresh()
    rows = feed.since(5_000_000)
    # bandersnatch's rule: the highest serial per project.
    latest: dict[str, int] = {}
    for name, _, _, _, serial in rows:
        latest[name] = max(serial, latest.get(name, 0))
    listed = feed.rpc("list_packages_with_serial")
    assert latest == {name: serial for name, serial in listed.items() if serial > 5_000_000}
    assert [r[4] for r in rows] == sorted(r[4] for r in rows)


def test_the_catalog_survives_a_restart_and_catches_up(tmp_path: Path) -> None:
    fake = FakeIndex()
    settings = make_settings(catalog_path=tmp_path / "catalog.sqlite3")
    first = Feed(fake, settings)
    with first.client:
        started(first)
        start = first.rpc("changelog_last_serial")
        fake.add_release("roundup", "1.7.0", files=[])
        first.refresh()
    fake.add_release("httpx", "1.0.0", files=[])  # while the service was down
    second = Feed(fake, settings)
    with second.client:
        second.rpc("changelog_since_serial", 0)
        actions = [(r[0], r[1], r[3]) for r in second.since(start)]
    assert actions == [("roundup", "1.7.0", "new release"), ("httpx", "1.0.0", "new release")]


def test_a_corrupt_catalog_is_moved_aside_and_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    fake = FakeIndex()
    running = Feed(fake, make_settings(catalog_path=path))
    with running.client:
        started(running)
        start = running.rpc("changelog_last_serial")
        fake.add_release("roundup", "1.7.0", files=[])
        running.refresh()
        assert [r[3] for r in running.since(start)] == ["new release"]
    (aside,) = tmp_path.glob("catalog.sqlite3.corrupt-*")
    assert aside.read_bytes().startswith(b"this is not a database")


def test_a_reader_of_a_damaged_catalog_answers_a_fault_and_keeps_serving(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    path.write_bytes(b"damaged" * 1000)
    settings = make_settings(catalog_path=path, catalog_writer=False)
    with TestClient(create_app(settings, transport=httpx.ASGITransport(app=FakeIndex()))) as client:
        with pytest.raises(xmlrpc.client.Fault) as caught:
            call(client, "changelog_since_serial", 0)
        assert call(client, "package_releases", "roundup") == ["1.6.1"]
    assert (caught.value.faultCode, caught.value.faultString) == (
        -32500,
        "RuntimeError: The catalog cannot be read right now; its writer rebuilds it.",
    )
    assert path.read_bytes().startswith(b"damaged")  # a reader never touches the file


def test_no_serials_upstream_the_feed_says_why() -> None:
    app = create_app(make_settings(), transport=httpx.ASGITransport(app=FakeIndex(json_simple=False)))
    with TestClient(app) as client, pytest.raises(xmlrpc.client.Fault) as caught:
        call(client, "changelog_since_serial", 0)
    assert caught.value.faultString == (
        "RuntimeError: The upstream's Simple index has no per-project serials (it answers HTML only); the change "
        "feed needs a JSON Simple index (PEP 691) with serials: each project's _last-serial, and X-PyPI-Last-Serial, "
        "as Warehouse serves."
    )


@pytest.mark.heavy
def test_at_most_50000_rows_the_lowest_serials_first(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    meta = CatalogWriter(path)
    meta.baseline([ListedProject("p", "p", 1)], 1, 0)
    with meta.transaction() as connection:
        connection.executemany(
            "INSERT INTO events VALUES (?, 'p', 0, '1.0', 0, 'new release')",
            [(serial,) for serial in range(MAX_ROWS + 10, 1, -1)],
        )
    meta.close()
    settings = make_settings(catalog_path=path, catalog_writer=False)
    with TestClient(create_app(settings, transport=httpx.ASGITransport(app=FakeIndex()))) as client:
        rows = call(client, "changelog_since_serial", 1)
    assert len(rows) == MAX_ROWS
    assert (rows[0][4], rows[-1][4]) == (2, MAX_ROWS + 1)


def test_the_crawler_reads_every_project_at_its_rate_and_resumes(tmp_path: Path) -> None:
    fake = FakeIndex()
    settings = make_settings(catalog_path=tmp_path / "catalog.sqlite3")
    runs: list[list[tuple[float, str]]] = [[], []]
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds  # a fake clock: the bound is checked exactly, whatever the machine's load

    async def scenario() -> tuple[int, int, int, int]:
        from shim.wiring import build_services

        services, client = build_services(settings, httpx.ASGITransport(app=fake))
        meta = CatalogWriter(settings.catalog_path)
        await Refresher(meta, services.store, services.index).refresh()  # the first look: nothing read
        original = services.store.project
        run = 0

        async def counted(normalized: str, *, by_catalog: bool) -> Any:
            runs[run].append((now[0], normalized))
            return await original(normalized, by_catalog=by_catalog)

        # A stand-in taking only what the crawler passes (no stale_ok), so its signature differs from the method's.
        services.store.project = counted  # type: ignore[method-assign, assignment]
        first = await Crawler(meta, services.store, rate=5, clock=lambda: now[0], sleep=sleep).run(limit=6)
        run = 1  # a restart: a new crawler, from the saved cursor
        rest = await Crawler(meta, services.store, rate=5, clock=lambda: now[0], sleep=sleep).run()
        coverage = meta.coverage()
        await client.aclose()
        meta.close()
        return first, rest, coverage.with_metadata, coverage.projects

    first, rest, known, projects = asyncio.run(scenario())
    assert (first, first + rest, known) == (6, len(fake.state.projects), projects)
    for run in runs:
        times = [when for when, _ in run]
        # Never more than 5 requests in any second of the clock.
        assert all(times[i + 5] - times[i] >= 1.0 - 1e-9 for i in range(len(times) - 5))
    names = [name for run in runs for _, name in run]
    assert len(names) == len(set(names)) == len(fake.state.projects)  # resumed, nothing read twice


@pytest.mark.e2e
def test_the_refresher_and_the_service_as_separate_processes(tmp_path: Path) -> None:
    fake = FakeIndex()
    catalog_path = tmp_path / "catalog.sqlite3"
    with serve_in_thread(fake) as index_url:
        fake.set_urls(index_url + "/")
        environ = shim_environ(index_url + "/", catalog_path, tmp_path)

        def index_process(*action: str) -> dict[str, Any]:
            return run_shim_json("catalog", *action, env=environ)

        def refresh_process() -> dict[str, Any]:
            return index_process("refresh", "--once")

        assert refresh_process() == {"recorded": 0}  # the first look
        assert index_process("crawl", "--crawl-rate", "200") == {"crawled": len(fake.state.projects)}
        start = fake.state.serial
        fake.add_release("roundup", "1.7.0", files=[])
        assert refresh_process() == {"recorded": 1}
        settings = make_settings(
            upstream=UpstreamURL.parse(index_url + "/"), catalog_path=catalog_path, catalog_writer=False
        )
        with TestClient(create_app(settings)) as client:
            rows = call(client, "changelog_since_serial", start)
            page = client.get("/pypi/roundup/json")
        coverage = run_shim_json("catalog", "status", env=environ)
    assert [(r[0], r[1], r[3]) for r in rows] == [("roundup", "1.7.0", "new release")]
    assert int(page.headers["x-pypi-last-serial"]) >= rows[0][4]
    assert coverage["projects"] == len(fake.state.projects) and coverage["oldest_serial"] == start
