"""One writer of the change feed per catalog file: every process that may write takes part in an election (a lock
beside the catalog); the others stand by, say so, answer from the writer's file, and take over when it goes, with
no change row written twice. Here in one process (each app is a process's part); tests/test_election_processes.py
does it with real processes and SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from shim.app import create_app
from shim.catalog.election import Election, lock_path
from testkit.fakeindex import FakeIndex
from testkit.wheels import wheel_file

from .helpers import after_first_pass, in_app, make_settings, rpc_for


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.02)


def recorded_changes(path: Path) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return connection.execute("SELECT normalized, new_serial FROM serial_changes ORDER BY id").fetchall()


def refresh_where_writing(*clients: TestClient) -> None:
    """A refresh pass, brought forward, in every process that writes the change feed."""
    for client in clients:
        refresher = getattr(client.app.state, "refresher", None)  # type: ignore[attr-defined]
        if refresher is not None:
            in_app(client, refresher.refresh)


def role(client: TestClient) -> dict[str, Any]:
    catalog: dict[str, Any] = client.get("/healthz").json()["catalog"]
    return {key: catalog[key] for key in ("role", "pid", "writer_pid")}


def test_the_lock_goes_to_one_and_passes_when_it_is_released(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.sqlite3"
    first, second = Election(catalog, retry=0.1), Election(catalog, retry=0.1)
    assert first.try_acquire() and first.role == "writer"
    assert not second.try_acquire() and not second.try_acquire()
    assert (second.role, second.writer_pid) == ("standby", os.getpid())  # the pid in the lock file
    assert lock_path(catalog).read_text() == f"{os.getpid()}\n"
    first.close()
    assert second.try_acquire() and second.role == "writer"
    second.close()


def test_two_services_on_one_catalog_one_writes_the_other_stands_by_and_takes_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeIndex()
    settings = make_settings(catalog_takeover=0.1)
    apps = [create_app(settings, transport=httpx.ASGITransport(app=fake)) for _ in range(2)]
    with caplog.at_level(logging.INFO, logger="shim.catalog.election"), contextlib.ExitStack() as writing:
        writer = writing.enter_context(TestClient(apps[0]))
        after_first_pass(writer)
        start = rpc_for(writer)("changelog_last_serial")
        # Read for a call, roundup's releases are known to the catalog: its changes are diffed exactly.
        assert rpc_for(writer)("package_releases", "roundup") == ["1.6.1"]
        assert rpc_for(writer)("changelog_since_serial", start) == []
        with TestClient(apps[1]) as standby:
            assert role(writer) == {"role": "writer", "pid": os.getpid(), "writer_pid": os.getpid()}
            # Started second, it found the role taken: it stands by, and its change feed answers from the file.
            assert role(standby) == {"role": "standby", "pid": os.getpid(), "writer_pid": os.getpid()}
            fake.add_release("roundup", "1.7.0", files=[wheel_file("roundup", "1.7.0")])
            first = fake.project("roundup").last_serial
            refresh_where_writing(standby, writer)
            assert rpc_for(standby)("changelog_since_serial", start)[0][:2] == ["roundup", "1.7.0"]
            assert recorded_changes(settings.catalog_path) == [("roundup", first)]
            writing.close()  # the writer stops: the standby takes over, from the serials the catalog holds
            eventually(lambda: role(standby)["role"] == "writer")
            fake.add_release("roundup", "1.8.0", files=[wheel_file("roundup", "1.8.0")])
            second = fake.project("roundup").last_serial
            refresh_where_writing(standby)
            assert recorded_changes(settings.catalog_path) == [("roundup", first), ("roundup", second)]  # each once
            rows = rpc_for(standby)("changelog_since_serial", start)
    assert [(r[1], r[3], r[4]) for r in rows] == [
        ("1.7.0", "new release", first),
        ("1.7.0", "add py3 file roundup-1.7.0-py3-none-any.whl", first),
        ("1.8.0", "new release", second),
        ("1.8.0", "add py3 file roundup-1.8.0-py3-none-any.whl", second),
    ]
    standing = [r.getMessage() for r in caplog.records if r.getMessage().startswith("standing by")]
    assert standing == [
        f"standing by: pid {os.getpid()} writes the catalog ({lock_path(settings.catalog_path)}); "
        "this process takes over when it stops"
    ]  # once
    assert f"taking over: this process (pid {os.getpid()}) now writes the catalog" in caplog.messages


def test_a_standbys_change_feed_answers_at_once_from_the_writers_file() -> None:
    fake = FakeIndex()
    settings = make_settings(catalog_takeover=60)
    with TestClient(create_app(settings, transport=httpx.ASGITransport(app=fake))) as writer:
        after_first_pass(writer)
        with TestClient(create_app(settings, transport=httpx.ASGITransport(app=fake))) as standby:
            rpc = rpc_for(standby)
            started = time.monotonic()
            assert rpc("changelog_since_serial", fake.state.serial) == []
            assert rpc("changelog_last_serial") == fake.state.serial
            assert time.monotonic() - started < 10  # never waits for a first pass of its own, that never comes


def test_a_process_that_never_writes_takes_no_part() -> None:
    settings = make_settings(catalog_writer=False)
    with TestClient(create_app(settings, transport=httpx.ASGITransport(app=FakeIndex()))) as reader:
        assert role(reader) == {"role": "reader", "pid": os.getpid(), "writer_pid": None}
    assert not lock_path(settings.catalog_path).exists()


def test_the_refresh_command_beside_a_writer_makes_no_pass_of_its_own(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from shim import cli, wiring

    fake = FakeIndex()
    settings = make_settings()
    real_build = wiring.build_services
    monkeypatch.setattr(wiring, "build_services", lambda s: real_build(s, httpx.ASGITransport(app=fake)))
    writer = Election(settings.catalog_path, retry=0.1)
    assert writer.try_acquire()
    try:
        assert asyncio.run(cli._catalog(settings, "refresh", once=True, limit=None)) == 1
    finally:
        writer.close()
    assert capsys.readouterr().err == f"pypi-xmlrpc-shim: the process {os.getpid()} writes the catalog now\n"
    assert fake.count("/simple/") == 0
    # Once the writer has gone, the command is the writer.
    assert asyncio.run(cli._catalog(settings, "refresh", once=True, limit=None)) == 0
    assert fake.count("/simple/") == 1
