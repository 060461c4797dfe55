"""What a call reads reaches the catalog: every project document the service reads, for a call or a pass-through,
updates the project's summary, version, keywords, classifiers and roles there, off the request path, from every
process; never a change row or a serial."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from shim.app import create_app
from shim.catalog.observations import CatalogObserver, Observations
from shim.catalog.rows import ListedProject
from shim.catalog.writes import CatalogWriter
from shim.upstream.parsers import ProjectDoc
from testkit.wheels import wheel_file

from .feed import Feed, started
from .helpers import after_first_pass, in_app, make_settings, rolesy_index, rpc_for, served


def test_user_packages_answers_right_after_package_roles_read_the_project() -> None:
    with served(rolesy_index()) as client:
        rpc = rpc_for(client)
        after_first_pass(client)
        assert rpc("user_packages", "alice") == []  # the catalog has not read rolesy yet
        assert rpc("package_roles", "rolesy") == [["Owner", "alice"], ["Maintainer", "bob"]]
        assert rpc("user_packages", "alice") == [["Owner", "rolesy"]]
        assert rpc("user_packages", "BOB") == [["Maintainer", "rolesy"]]


def test_search_finds_a_summary_right_after_a_call_read_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    observe = CatalogWriter.observe

    def slow_observe(self: CatalogWriter, *args: Any) -> bool:
        time.sleep(0.3)  # a write that takes a while (a busy disk): search must wait for it, briefly
        return observe(self, *args)

    monkeypatch.setattr(CatalogWriter, "observe", slow_observe)
    with served(rolesy_index()) as client:
        rpc = rpc_for(client)
        after_first_pass(client)
        assert rpc("search", {"summary": "everyone"}) == []  # the catalog has not read rolesy yet
        assert rpc("package_releases", "rolesy") == ["1.0"]
        assert [hit["name"] for hit in rpc("search", {"summary": "everyone"})] == ["rolesy"]


def kept(client: TestClient) -> None:
    """Wait until what the calls read is written (for what the tests read straight from the file)."""
    observations = client.app.state.services.observations  # type: ignore[attr-defined]
    in_app(client, lambda: observations.settled(10))


def catalog_rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return connection.execute(query).fetchall()


def test_a_pass_through_read_updates_summary_version_classifiers_and_roles() -> None:
    settings = make_settings()
    app = create_app(settings, transport=httpx.ASGITransport(app=rolesy_index()))
    with TestClient(app) as client:
        rpc = rpc_for(client)
        after_first_pass(client)
        assert client.get("/pypi/rolesy/json").status_code == 200
        assert rpc("user_packages", "alice") == [["Owner", "rolesy"]]
        assert rpc("browse", ["Framework :: Rolesy"]) == [["rolesy", "1.0"]]
        assert [(hit["name"], hit["version"]) for hit in rpc("search", {"summary": "everyone"})] == [("rolesy", "1.0")]
        assert rpc("search", {"keywords": "owners"})[0]["name"] == "rolesy"


def test_what_a_call_reads_never_writes_a_change_row_or_a_serial() -> None:
    settings = make_settings()
    fake = rolesy_index()
    app = create_app(settings, transport=httpx.ASGITransport(app=fake))
    with TestClient(app) as client:
        rpc = rpc_for(client)
        after_first_pass(client)
        tables = "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM serial_changes)"
        before = (catalog_rows(settings.catalog_path, tables), rpc("changelog_since_serial", 0))
        serials = catalog_rows(settings.catalog_path, "SELECT normalized, serial, seen_at FROM projects")
        for name in ("rolesy", "roundup", "case-owners"):
            rpc("package_roles", name)
        assert rpc("user_packages", "alice") == [
            ["Owner", "case-owners"],
            ["Owner", "case-owners"],
            ["Owner", "rolesy"],
            ["Maintainer", "case-owners"],
        ]
        assert (catalog_rows(settings.catalog_path, tables), rpc("changelog_since_serial", 0)) == before
        assert catalog_rows(settings.catalog_path, "SELECT normalized, serial, seen_at FROM projects") == serials
        assert rpc("changelog_last_serial") == fake.state.serial


def test_a_copy_newer_than_the_catalog_leaves_its_releases_so_the_change_is_recorded_once() -> None:
    settings = make_settings(cache_soft_ttl=0)  # each call revalidates: it reads the new copy before the refresher
    fake = rolesy_index()
    app = create_app(settings, transport=httpx.ASGITransport(app=fake))
    with TestClient(app) as client:
        rpc = rpc_for(client)
        after_first_pass(client)
        start = rpc("changelog_last_serial")
        assert rpc("package_releases", "rolesy") == ["1.0"]  # read at the catalog's serial: releases and files kept
        fake.add_release("rolesy", "2.0", files=[wheel_file("rolesy", "2.0")], info={"summary": "Roles, again"})
        assert rpc("package_releases", "rolesy") == ["2.0"]  # read before the refresher saw it
        kept(client)
        assert [hit["version"] for hit in rpc("search", {"summary": "again"})] == ["2.0"]
        refresher = client.app.state.refresher  # type: ignore[attr-defined]
        assert in_app(client, refresher.refresh) == 1
        serial = fake.project("rolesy").last_serial
        assert [(r[0], r[1], r[3], r[4]) for r in rpc("changelog_since_serial", start)] == [
            ("rolesy", "2.0", "new release", serial),
            ("rolesy", "2.0", "add py3 file rolesy-2.0-py3-none-any.whl", serial),
        ]


def test_an_older_copy_or_an_unlisted_project_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    writer = CatalogWriter(path)
    writer.baseline([ListedProject("rolesy", "rolesy", 7)], 7, 0)
    metadata = {"summary": "newest", "version": "2.0", "roles": [["Owner", "alice"]]}
    assert writer.observe("rolesy", 7, {}, metadata)
    assert not writer.observe("rolesy", 6, {}, {**metadata, "summary": "older", "roles": [["Owner", "mallory"]]})
    assert not writer.observe("unlisted", 9, {}, metadata)
    assert [r.project for r in writer.roles_of("alice")] == ["rolesy"] and writer.roles_of("mallory") == []
    assert writer.projects_metadata(["rolesy"])["rolesy"].fields["summary"] == "newest"
    assert writer.project("unlisted") is None
    writer.close()


def test_a_failed_write_costs_the_catalog_that_copy_never_the_answer(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(make_settings(), transport=httpx.ASGITransport(app=rolesy_index()))
    with TestClient(app) as client:
        rpc = rpc_for(client)
        after_first_pass(client)
        observer = client.app.state.services.observations.catalog  # type: ignore[attr-defined]

        def full_disk(*args: object) -> bool:
            raise sqlite3.OperationalError("database or disk is full")

        observer.observe = full_disk
        with caplog.at_level(logging.WARNING, logger="shim.catalog.observations"):
            assert rpc("package_roles", "rolesy") == [["Owner", "alice"], ["Maintainer", "bob"]]
            assert rpc("package_roles", "case-owners")[0] == ["Owner", "Alice"]
            assert rpc("user_packages", "alice") == []
        health = client.get("/healthz").json()["catalog"]
    assert health["observed"] == {"kept": 0, "dropped": 0, "failed": 2}
    assert [r.getMessage() for r in caplog.records] == [
        f"what calls read is not kept in the catalog {observer.path}: OperationalError: database or disk is full"
    ]  # once while it lasts


def test_a_call_never_waits_for_the_catalogs_write() -> None:
    app = create_app(make_settings(), transport=httpx.ASGITransport(app=rolesy_index()))
    release = threading.Event()
    with TestClient(app) as client:
        rpc = rpc_for(client)
        after_first_pass(client)
        observer = client.app.state.services.observations.catalog  # type: ignore[attr-defined]
        real = observer.observe

        def stuck(*args: Any) -> bool:
            release.wait(30)  # a writer holding SQLite's lock, a slow disk
            return bool(real(*args))

        observer.observe = stuck
        try:
            assert rpc("package_roles", "rolesy") == [["Owner", "alice"], ["Maintainer", "bob"]]
            assert rpc("package_releases", "rolesy") == ["1.0"]
        finally:
            release.set()
        assert rpc("user_packages", "alice") == [["Owner", "rolesy"]]


def test_the_queue_is_bounded_and_holds_each_project_once() -> None:
    observations = Observations(CatalogObserver(Path("/nonexistent/catalog.sqlite3")), capacity=2)
    docs = [ProjectDoc(f"u{i}", {}, {}, [], None, i) for i in range(4)]
    observations.offer("a", docs[1])
    observations.offer("a", docs[0])  # an older copy of a project waiting keeps its place, not its document
    observations.offer("b", docs[2])
    observations.offer("c", docs[3])
    assert observations.dropped == 1
    assert {name: ref() for name, (ref, _) in observations._pending.items()} == {"a": docs[1], "b": docs[2]}


@pytest.mark.heavy  # a second of real waiting: with the end-to-end stage
@pytest.mark.anyio
async def test_a_read_waits_for_what_was_read_before_it_never_for_what_follows(tmp_path: Path) -> None:
    observations = Observations(CatalogObserver(tmp_path / "catalog.sqlite3"))
    written: list[str] = []

    def observe(normalized: str, doc: ProjectDoc) -> bool:
        time.sleep(0.2)  # a slow disk
        written.append(normalized)
        return True

    observations._observe = observe  # type: ignore[method-assign]
    docs = {name: ProjectDoc(name, {}, {}, [], None, 1) for name in "abcdef"}
    observations.offer("a", docs["a"])
    drain = asyncio.create_task(observations.run())

    async def more_reads() -> None:
        for name in "bcdef":
            await asyncio.sleep(0.05)
            observations.offer(name, docs[name])

    reads = asyncio.create_task(more_reads())
    await observations.settled(10)
    assert written == ["a"]  # a steady stream of reads behind it never holds the caller up
    await reads
    await observations.settled(10)
    assert written == list("abcdef")
    drain.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await drain


def test_the_crawlers_reads_are_written_by_the_crawler_alone() -> None:
    running = Feed(rolesy_index(), make_settings())
    with running.client:
        started(running)  # the crawler's reads: every project once
        observations = running.client.app.state.services.observations  # type: ignore[attr-defined]
        kept(running.client)
        assert (observations.kept, observations.dropped) == (0, 0)  # none of them handed over a second time
        assert ["Owner", "rolesy"] in running.rpc("user_packages", "alice")  # the crawler wrote it
