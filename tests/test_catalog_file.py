"""The catalog's file when the service cannot write it (permissions, a read-only or full disk): left as it is,
named in the log and on /healthz, read where it can be, tried again later; only a file SQLite calls corrupt is
moved aside.

Tests run as root, whom file modes do not stop: the errors are SQLite's own, injected through the catalog's
connection factory (a connection SQLite opened read-only, or one whose file may not grow), or the OS's, from
a wrapped `Path.mkdir`."""

from __future__ import annotations

import asyncio
import errno
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from shim.app import create_app
from shim.catalog.crawler import Crawler
from shim.catalog.refresher import Refresher
from shim.catalog.schema import open_sqlite
from shim.catalog.writes import CatalogWriter
from shim.wiring import build_services
from testkit.fakeindex import FakeIndex
from testkit.wheels import wheel_file

from .feed import Feed
from .helpers import fault_of, make_settings, rpc_for, sampled_health, served

READ_ONLY = "is read-only to the service (the file, its directory or its file system)"
FIX = "fix that, or set SHIM_CATALOG_PATH to a file the service can write"


def read_only(path: Path) -> sqlite3.Connection:
    """What SQLite gives a process that may read the file but not write it: every write is SQLITE_READONLY."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)


class Switch:
    """A connection factory that opens the file read-only until the operator fixes it (`fixed = True`)."""

    def __init__(self) -> None:
        self.fixed = False

    def __call__(self, path: Path) -> sqlite3.Connection:
        return open_sqlite(path) if self.fixed else read_only(path)


def recorded(path: Path, fake: FakeIndex) -> list[list[Any]]:
    """A catalog at `path` that has recorded change rows over `fake`; returns every row it holds."""
    running = Feed(fake, make_settings(catalog_path=path))
    with running.client:
        running.rpc("changelog_since_serial", 0)
        fake.add_release("roundup", "1.7.0", files=[wheel_file("roundup", "1.7.0")])
        assert running.refresh() == 1
        return running.since(0)


def event_count(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        (count,) = connection.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(count)
    finally:
        connection.close()


def test_a_catalog_the_writer_cannot_write_is_kept_read_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "catalog.sqlite3"
    fake = FakeIndex()
    rows = recorded(path, fake)
    events = event_count(path)
    assert events > 0
    with caplog.at_level("ERROR", logger="shim"):
        running = Feed(fake, make_settings(catalog_path=path), catalog_connection_factory=read_only)
        with running.client:
            assert running.since(0) == rows  # the change feed answers from what is there
            catalog = sampled_health(running.client)["catalog"]
    problem = f"the catalog {path} {READ_ONLY} (SQLITE_READONLY: attempt to write a readonly database): {FIX}"
    assert (catalog["writable"], catalog["problem"], catalog["events"]) == (False, problem, events)
    assert f"the catalog's writer waits: {problem}; it tries again in 300 s" in caplog.messages
    assert list(tmp_path.glob("*.corrupt-*")) == []  # never moved aside, never rebuilt empty
    assert event_count(path) == events


def test_a_writer_that_cannot_write_says_why_the_feed_is_empty_and_tries_again(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    sqlite3.connect(path).close()  # an empty file, never written by the service
    switch = Switch()
    running = Feed(FakeIndex(), make_settings(catalog_path=path), catalog_connection_factory=switch)
    with running.client:
        assert fault_of(running.rpc, "changelog_since_serial", 0) == (
            -32500,
            f"RuntimeError: The catalog {READ_ONLY}, so it has no change rows yet; "
            "the change feed starts once an operator fixes that.",
        )
        assert running.rpc("package_releases", "roundup") == ["1.6.1"]
        switch.fixed = True  # the operator gives the service its file
        assert running.refresh() == 0  # the first look: the starting point
        catalog = sampled_health(running.client)["catalog"]
        assert (catalog["writable"], catalog["problem"], catalog["projects"]) == (True, None, 13)
        assert running.since(running.rpc("changelog_last_serial")) == []
    assert list(tmp_path.glob("*.corrupt-*")) == []


def test_a_catalog_on_a_read_only_file_system_is_named_and_the_rest_keeps_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The systemd unit's case before it had a StateDirectory: ProtectSystem=strict makes the default path read-only.
    path = tmp_path / "state" / "catalog.sqlite3"
    mkdir = Path.mkdir

    def read_only_mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.is_relative_to(tmp_path):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only_mkdir)
    with served(FakeIndex(), catalog_path=path) as client:
        rpc = rpc_for(client)
        assert fault_of(rpc, "changelog_since_serial", 0) == (
            -32500,
            "RuntimeError: The catalog is on a read-only file system; "
            "the service answers from it again once an operator fixes that.",
        )
        assert fault_of(rpc, "changelog", 0)[1] == fault_of(rpc, "changelog_since_serial", 0)[1]
        assert rpc("package_releases", "roundup") == ["1.6.1"]
        health = client.get("/healthz")
    assert health.status_code == 200
    problem = f"the catalog {path} is on a read-only file system ([Errno 30] Read-only file system: '{path.parent}'): "
    assert health.json()["catalog"]["writable"] is False
    assert health.json()["catalog"]["problem"] == problem + FIX


def test_a_reader_that_cannot_open_the_catalog_says_so(tmp_path: Path) -> None:
    path = tmp_path / "missing.sqlite3"  # SQLite may not create it: SQLITE_CANTOPEN
    settings = make_settings(catalog_path=path, catalog_writer=False)
    app = create_app(settings, transport=httpx.ASGITransport(app=FakeIndex()), catalog_connection_factory=read_only)
    with TestClient(app) as client:
        assert fault_of(rpc_for(client), "changelog_since_serial", 0) == (
            -32500,
            "RuntimeError: The catalog cannot be opened (a missing or unwritable directory, or no permission on "
            "the file); the service answers from it again once an operator fixes that.",
        )
        catalog = sampled_health(client)["catalog"]
    assert catalog["writable"] is None  # no writer in this process
    assert catalog["problem"].startswith(f"the catalog {path} cannot be opened")
    assert not path.exists()


def test_a_full_disk_stops_the_writer_without_losing_the_catalog(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    fake = FakeIndex()
    rows = recorded(path, fake)

    def no_room(path: Path) -> sqlite3.Connection:
        connection = open_sqlite(path)
        (pages,) = connection.execute("PRAGMA page_count").fetchone()
        connection.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: SQLITE_FULL
        return connection

    running = Feed(fake, make_settings(catalog_path=path), catalog_connection_factory=no_room)
    with running.client:
        running.rpc("changelog_since_serial", 0)
        fake.add_release("roundup", "1.8.0", info={"description": "a long description " * 20_000})
        with pytest.raises(sqlite3.OperationalError):
            running.refresh()
        catalog = sampled_health(running.client)["catalog"]
        assert running.since(0) == rows  # nothing half-written, nothing lost
    assert catalog["writable"] is False
    assert catalog["problem"] == (
        f"the catalog {path} cannot be written: the disk is full (SQLITE_FULL: database or disk is full): {FIX}"
    )
    assert list(tmp_path.glob("*.corrupt-*")) == []


def test_the_crawler_waits_for_a_catalog_it_cannot_write_then_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeIndex()
    settings = make_settings(catalog_path=tmp_path / "catalog.sqlite3")
    switch = Switch()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        switch.fixed = True  # the operator fixes it meanwhile

    async def scenario() -> int:
        services, client = build_services(settings, httpx.ASGITransport(app=fake))
        first = CatalogWriter(settings.catalog_path)
        await Refresher(first, services.store, services.index).refresh()  # the first look: nothing read
        first.close()
        writer = CatalogWriter(settings.catalog_path, connection_factory=switch)
        try:
            return await Crawler(writer, services.store, rate=1000, clock=lambda: 0.0, sleep=sleep).run()
        finally:
            writer.close()
            await client.aclose()

    with caplog.at_level("ERROR", logger="shim"):
        crawled = asyncio.run(scenario())
    assert crawled == len(fake.state.projects)
    assert waits[0] == 60
    problem = f"the catalog {settings.catalog_path} {READ_ONLY} (SQLITE_READONLY: attempt to write a readonly database)"
    assert f"the crawler waits: {problem}: {FIX}; it tries again in 60 s" in caplog.messages


def test_a_corrupt_catalog_the_writer_cannot_move_aside_is_left_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "catalog.sqlite3"
    path.write_bytes(b"this is not a database" * 100)

    def refused(self: Path, target: Any) -> Path:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "rename", refused)
    with served(FakeIndex(), catalog_path=path) as client:
        assert fault_of(rpc_for(client), "changelog_since_serial", 0) == (
            -32500,
            "RuntimeError: The catalog is corrupt and cannot be moved aside: permission denied; "
            "the service answers from it again once an operator fixes that.",
        )
        catalog = sampled_health(client)["catalog"]
    assert catalog["writable"] is False
    assert catalog["problem"] == (
        f"the catalog {path} is corrupt and cannot be moved aside: permission denied "
        f"([Errno 13] Permission denied: '{path}'): {FIX}"
    )
    assert path.read_bytes().startswith(b"this is not a database")


def test_the_refresh_command_on_a_catalog_it_cannot_write_names_the_problem_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from shim import cli, wiring

    path = tmp_path / "catalog.sqlite3"
    fake = FakeIndex()
    recorded(path, fake)
    settings = make_settings(catalog_path=path)
    real_build, real_open = wiring.build_services, wiring.open_catalog_writer
    monkeypatch.setattr(wiring, "build_services", lambda s: real_build(s, httpx.ASGITransport(app=fake)))
    monkeypatch.setattr(
        wiring, "open_catalog_writer", lambda s, services: real_open(s, services, connection_factory=read_only)
    )
    fake.add_release("roundup", "1.8.0", files=[])
    assert asyncio.run(cli._catalog(settings, "refresh", once=True, limit=None)) == 1
    err = capsys.readouterr().err
    assert err.startswith("pypi-xmlrpc-shim: ") and READ_ONLY in err and "Traceback" not in err
    assert path.exists()
