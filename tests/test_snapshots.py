"""`pypi-xmlrpc-shim catalog export FILE` and `catalog import FILE`: a snapshot taken while the service runs makes a
fresh deployment's catalog complete at once, answering as the first one did without reading the upstream's JSON, and
following the upstream from the snapshot's serial."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shim.catalog.rows import Event
from shim.catalog.schema import SCHEMA_VERSION
from shim.catalog.snapshot import MAGIC
from shim.catalog.writes import CatalogWriter
from testkit.fakeindex import FakeIndex
from testkit.servers import free_port, serve_in_thread, wait_until_answering

from .feed import Feed
from .helpers import UPSTREAM, Rpc, make_settings, run_shim, run_shim_json, shim_environ
from .snapshots import answers, command, exported, json_requests, populated, reading_service, rows_of


def test_a_snapshot_of_a_running_service_answers_alike_in_a_fresh_one_without_upstream_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, snapshot = populated(FakeIndex()), tmp_path / "catalog.snapshot"
    with reading_service(fake, tmp_path / "first.sqlite3") as first:
        expected = answers(first.rpc)
        manifest = exported(capsys, tmp_path / "first.sqlite3", snapshot)  # while it runs
    assert snapshot.read_bytes().startswith(MAGIC)
    assert {k: manifest[k] for k in ("upstream", "last_serial", "schema", "projects", "format")} == {
        "upstream": UPSTREAM,
        "last_serial": fake.state.serial,
        "schema": SCHEMA_VERSION,
        "projects": len(fake.state.projects),
        "format": 1,
    }
    fresh = make_settings(catalog_path=tmp_path / "second.sqlite3")
    code, imported = command(capsys, fresh, "import", snapshot)
    assert code == 0 and isinstance(imported, dict) and imported["sha256"] == manifest["sha256"]
    asked = json_requests(fake)
    second = Feed(fake, fresh)
    with second.client:
        assert answers(second.rpc) == expected
        assert json_requests(fake) == asked  # every answer from the snapshot's catalog: no project JSON read
        # It follows the upstream from the snapshot's serial: the next release is a change, with its own serial.
        fake.add_release("tracker", "2.1", files=[])
        assert second.refresh() == 1
        rows = second.since(manifest["last_serial"])
        assert [(name, version, action, serial) for name, version, _, action, serial in rows] == [
            ("tracker", "2.1", "new release", fake.state.serial)
        ]


def test_an_export_while_the_writer_writes_is_one_consistent_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "catalog.sqlite3"
    with reading_service(FakeIndex(), path):
        pass
    writer = CatalogWriter(path)
    stop, wrote = threading.Event(), threading.Event()

    def write() -> None:  # change after change, each one transaction of a serial change and its row
        serial = 10**9
        while not stop.is_set():
            serial += 1
            event = Event(version=None, timestamp=serial, action="update")
            writer.record("roundup", "roundup", old_serial=serial - 1, new_serial=serial, row_serial=serial,
                          events=[event], releases=None, metadata=None, now=serial)  # fmt: skip
            wrote.set()

    writing = threading.Thread(target=write)
    writing.start()
    snapshots = []
    try:
        for n in range(3):
            assert wrote.wait(10)  # a write since the last export, at least, and more during this one
            wrote.clear()
            snapshots.append(exported(capsys, path, tmp_path / f"{n}.snapshot"))
    finally:
        stop.set()
        writing.join()
        writer.close()
    imported = tmp_path / "imported.sqlite3"
    for n, manifest in enumerate(snapshots):
        imported.unlink(missing_ok=True)
        code, _ = command(capsys, make_settings(catalog_path=imported), "import", tmp_path / f"{n}.snapshot")
        assert code == 0
        connection = sqlite3.connect(imported)
        (changes,) = connection.execute("SELECT COUNT(*) FROM serial_changes WHERE new_serial > 1000000000").fetchone()
        (rows,) = connection.execute("SELECT COUNT(*) FROM events WHERE serial > 1000000000").fetchone()
        (serial,) = connection.execute("SELECT serial FROM projects WHERE normalized = 'roundup'").fetchone()
        connection.close()
        assert changes == rows  # never a change without its row, nor the other way round
        assert serial == manifest["last_serial"] == 10**9 + rows  # nor a project's serial without both
    assert snapshots[0]["last_serial"] < snapshots[1]["last_serial"] < snapshots[2]["last_serial"]


def test_import_into_a_catalog_that_holds_projects_needs_replace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, snapshot = populated(FakeIndex()), tmp_path / "catalog.snapshot"
    with reading_service(fake, tmp_path / "first.sqlite3"):
        manifest = exported(capsys, tmp_path / "first.sqlite3", snapshot)
    target = tmp_path / "started.sqlite3"
    running = Feed(FakeIndex(), make_settings(catalog_path=target))
    with running.client:
        running.rpc("changelog_since_serial", 0)
    before = rows_of(target)
    settings = make_settings(catalog_path=target)
    assert command(capsys, settings, "import", snapshot) == (
        1,
        f"pypi-xmlrpc-shim: the catalog {target} already holds 13 projects: pass --replace to replace it with the "
        "snapshot (stop the services that write it first)\n",
    )
    assert rows_of(target) == before
    code, imported = command(capsys, settings, "import", snapshot, replace=True)
    assert code == 0 and isinstance(imported, dict) and imported["last_serial"] == manifest["last_serial"]
    assert rows_of(target) == rows_of(tmp_path / "first.sqlite3")


def test_export_of_a_catalog_that_has_not_started_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing, snapshot = tmp_path / "missing.sqlite3", tmp_path / "catalog.snapshot"
    assert command(capsys, make_settings(catalog_path=missing), "export", snapshot) == (
        1,
        f"pypi-xmlrpc-shim: the snapshot {snapshot} is refused: not written: the catalog {missing} has not started "
        "yet\n",
    )
    assert not snapshot.exists() and not missing.exists() and list(tmp_path.iterdir()) == []


@contextlib.contextmanager
def service(environ: dict[str, str]) -> Iterator[Rpc]:
    """The service as its own process, answering; stopped at the end."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "shim", "--port", str(port)], env=environ, stdout=log, stderr=log
        )
        try:
            base = f"http://127.0.0.1:{port}"
            assert wait_until_answering(base, process, timeout=30), f"exit status {process.poll()}"

            def rpc(method: str, *params: Any) -> Any:
                with xmlrpc.client.ServerProxy(base + "/pypi", allow_none=True) as proxy:
                    return getattr(proxy, method)(*params)

            yield rpc
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.mark.e2e
def test_end_to_end_a_snapshot_exported_while_the_service_runs_serves_a_second_one_without_upstream_json(
    tmp_path: Path,
) -> None:
    fake = populated(FakeIndex())
    with serve_in_thread(fake) as upstream:
        fake.set_urls(upstream + "/")
        environ = shim_environ(upstream + "/", tmp_path / "first.sqlite3", tmp_path)
        snapshot = str(tmp_path / "catalog.snapshot")
        assert run_shim_json("catalog", "refresh", "--once", env=environ) == {"recorded": 0}  # the starting point
        crawled = run_shim_json("catalog", "crawl", env={**environ, "SHIM_CRAWL_RATE": "1000"})
        assert crawled == {"crawled": len(fake.state.projects)}
        with service(environ) as rpc:
            expected = answers(rpc)
            manifest = run_shim_json("catalog", "export", snapshot, env=environ)  # while it runs
        fresh = {**environ, "SHIM_CATALOG_PATH": str(tmp_path / "second.sqlite3")}
        assert run_shim_json("catalog", "import", snapshot, env=fresh)["sha256"] == manifest["sha256"]
        asked = json_requests(fake)
        with service(fresh) as rpc:
            assert answers(rpc) == expected
        assert json_requests(fake) == asked
        other = {**fresh, "SHIM_UPSTREAM": "https://other.test/", "SHIM_CATALOG_PATH": str(tmp_path / "o.sqlite3")}
        refused = run_shim("catalog", "import", snapshot, env=other)
    assert refused.returncode == 1
    assert refused.stderr == (
        f"pypi-xmlrpc-shim: the snapshot {snapshot} is refused: it is a catalog of another upstream ({upstream}/; "
        f"this service's upstream is https://other.test/); the catalog {tmp_path / 'o.sqlite3'} is left as it is\n"
    )
