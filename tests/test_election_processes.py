"""The election with real processes: with `--workers 2`, and with two services on one catalog file, exactly one
writes the change feed, the other stands by (its log and /healthz say so) and takes over when the writer is killed
(SIGKILL), with no change row written twice; what a standby reads for a call reaches the catalog too."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from shim.catalog.election import lock_path
from testkit.fakeindex import FakeIndex
from testkit.servers import serve_in_thread
from testkit.shimprocess import Running, command
from testkit.wheels import wheel_file

from .helpers import rolesy_index

pytestmark = pytest.mark.e2e

T = TypeVar("T")


def service(index_url: str, catalog: Path, **extra: str) -> contextlib.AbstractContextManager[Running]:
    return command(
        {
            "SHIM_UPSTREAM": index_url + "/",
            "SHIM_CATALOG_PATH": str(catalog),
            "SHIM_INDEX_REFRESH": "1",  # a pass every second: each change is recorded at once
            "SHIM_CATALOG_TAKEOVER": "0.5",
            **extra,
        }
    )


def catalog_of(shim: Running) -> dict[str, Any]:
    """/healthz's catalog part."""
    found: dict[str, Any] = shim.health()["catalog"]
    return found


def eventually(find: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = find()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.1)


def changes(catalog: Path) -> list[tuple[str, int]]:
    """Every serial change recorded: a change recorded twice would be here twice."""
    with contextlib.closing(sqlite3.connect(catalog, timeout=30)) as connection:
        rows = connection.execute("SELECT normalized, new_serial FROM serial_changes ORDER BY id").fetchall()
    return [(str(name), int(serial)) for name, serial in rows]


def released(fake: FakeIndex, version: str) -> int:
    fake.add_release("rolesy", version, files=[wheel_file("rolesy", version)])
    return fake.project("rolesy").last_serial


def in_feed(shim: Running, serial: int) -> Callable[[], list[Any] | None]:
    def find() -> list[Any] | None:
        rows = shim.rpc("changelog_since_serial", serial - 1)
        return rows or None

    return find


def roles_by_pid(shim: Running, count: int) -> dict[int, dict[str, Any]]:
    """What each of `count` workers says of its role, asked over new connections until each has answered."""
    seen: dict[int, dict[str, Any]] = {}

    def find() -> dict[int, dict[str, Any]] | None:
        catalog = catalog_of(shim)
        seen[catalog["pid"]] = catalog
        return dict(seen) if len(seen) >= count else None

    return eventually(find, f"{count} workers answering /healthz")


def new_writer(shim: Running, killed: int) -> int | None:
    """The pid of the worker that writes now, once it is not the one killed."""
    found = catalog_of(shim)
    return int(found["pid"]) if found["role"] == "writer" and found["pid"] != killed else None


def test_with_two_workers_one_writes_the_other_stands_by_and_takes_over_when_it_is_killed(tmp_path: Path) -> None:
    fake = rolesy_index()
    catalog = tmp_path / "catalog.sqlite3"
    with serve_in_thread(fake) as index_url:
        fake.set_urls(index_url + "/")
        with service(index_url, catalog, SHIM_WORKERS="2") as shim:
            roles = roles_by_pid(shim, 2)
            (writer,) = [pid for pid, found in roles.items() if found["role"] == "writer"]
            (standby,) = [pid for pid, found in roles.items() if found["role"] == "standby"]
            assert roles[standby]["writer_pid"] == writer
            assert lock_path(catalog).read_text() == f"{writer}\n"
            first = released(fake, "2.0")
            eventually(in_feed(shim, first), "the first release in the feed")
            os.kill(writer, signal.SIGKILL)
            # The standby takes over; the supervisor's new worker finds the role taken and stands by.
            assert eventually(lambda: new_writer(shim, writer), "a new writer") == standby
            second = released(fake, "3.0")
            eventually(in_feed(shim, second), "the second release in the feed")
            recorded = changes(catalog)
            shim.process.send_signal(signal.SIGTERM)
            code = shim.process.wait(timeout=60)
            output = shim.output()
    assert recorded == [("rolesy", first), ("rolesy", second)]  # each change once, across the takeover
    assert code == 0, output
    assert output.count(f"standing by: pid {writer} writes the catalog") == 1, output
    assert f"taking over: this process (pid {standby}) now writes the catalog" in output


def test_two_services_on_one_file_one_writes_and_what_the_standby_reads_reaches_the_catalog(tmp_path: Path) -> None:
    fake = rolesy_index()
    catalog = tmp_path / "catalog.sqlite3"
    with serve_in_thread(fake) as index_url:
        fake.set_urls(index_url + "/")
        with service(index_url, catalog) as first, service(index_url, catalog) as second:
            assert catalog_of(first)["role"] == "writer"
            assert (catalog_of(second)["role"], catalog_of(second)["writer_pid"]) == ("standby", first.process.pid)
            eventually(lambda: first.rpc("changelog_since_serial", 0) or None, "the first pass")
            # Read by the standby for a call, rolesy's roles reach the catalog the writer keeps.
            assert second.rpc("package_roles", "rolesy") == [["Owner", "alice"], ["Maintainer", "bob"]]
            assert second.rpc("user_packages", "alice") == [["Owner", "rolesy"]]
            assert first.rpc("user_packages", "alice") == [["Owner", "rolesy"]]
            change = released(fake, "2.0")
            eventually(in_feed(second, change), "the release in the standby's feed")
            first.process.kill()  # SIGKILL
            first.process.wait(timeout=10)
            eventually(lambda: catalog_of(second)["role"] == "writer" or None, "the standby taking over")
            later = released(fake, "3.0")
            eventually(in_feed(second, later), "the release after the takeover")
            recorded = changes(catalog)
    assert recorded == [("rolesy", change), ("rolesy", later)]
