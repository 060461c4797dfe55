"""A Simple index served from two copies (a CDN whose nodes disagree): the older copy answering again never
lowers the serial the service reports, nor sends it back to the upstream for documents it holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
from starlette.testclient import TestClient

from shim.app import create_app
from testkit.fakeindex import FakeIndex

from .feed import Feed
from .helpers import after_first_pass, call, in_app, make_settings, refresh_index, rpc_for, served
from .transports import Lagging

PROJECT_JSON = "/pypi/roundup/json"


def simple_index(fake: FakeIndex) -> httpx.Response:
    """The fake's Simple index (PEP 691 JSON) as it is now: a copy a CDN node may go on serving."""
    with TestClient(fake, base_url="https://upstream.test") as upstream:
        response: httpx.Response = upstream.get("/simple/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        return response


class Flapping(httpx.AsyncBaseTransport):
    """The fake index behind two CDN nodes: requests for its Simple index get its current copy and `old` in turn."""

    def __init__(self, fake: FakeIndex, old: httpx.Response) -> None:
        self.inner = httpx.ASGITransport(app=fake)
        self.old = old
        self.asked = 0
        self.old_served = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/simple/":
            self.asked += 1
            if self.asked % 2 == 0:
                self.old_served += 1
                return httpx.Response(200, content=self.old.content, headers=self.old.headers)
        return await self.inner.handle_async_request(request)


def test_an_older_copy_of_the_simple_index_neither_lowers_the_last_serial_nor_refetches_documents() -> None:
    fake = FakeIndex()
    old = simple_index(fake)
    fake.add_release("roundup", "1.7.0", files=[])  # the current copy has it; the old one has roundup before it
    flapping = Flapping(fake, old)
    running = Feed(fake, make_settings(cache_soft_ttl=3600), flapping)
    with running.client:
        after_first_pass(running.client)
        assert running.rpc("package_releases", "roundup") == ["1.7.0"]
        reported = []
        for _ in range(7):  # the refresher's passes, each re-reading the Simple index: the last gets the old copy
            running.refresh()
            reported.append(running.rpc("changelog_last_serial"))
            assert running.rpc("package_releases", "roundup") == ["1.7.0"]
        assert running.rpc("list_packages_with_serial")["roundup"] == fake.project("roundup").last_serial
    assert flapping.old_served >= 4  # the old copy came back again and again
    assert reported == [fake.state.serial] * 7
    assert [r.path for r in fake.requests].count(PROJECT_JSON) == 1


def test_a_document_as_new_as_the_index_shows_is_kept_until_the_index_goes_past_it() -> None:
    fake = FakeIndex()
    old = simple_index(fake)
    fake.add_release("roundup", "1.7.0", files=[])
    # The first load gets the old copy: the project's JSON is ahead of the Simple index for a while.
    with served(fake, Lagging(fake, "/simple/", old), cache_soft_ttl=3600) as client:
        rpc = rpc_for(client)
        after_first_pass(client)
        assert rpc("package_releases", "roundup") == ["1.7.0"]
        refresh_index(client)  # the index catches up with the document held: nothing to fetch again
        assert rpc("package_releases", "roundup") == ["1.7.0"]
        fake.add_release("roundup", "1.8.0", files=[])
        refresh_index(client)  # and goes past it
        assert rpc("package_releases", "roundup") == ["1.8.0"]
    assert [r.path for r in fake.requests].count(PROJECT_JSON) == 2


def test_a_restart_starts_no_lower_than_its_catalog_unless_the_catalog_is_new() -> None:
    fake = FakeIndex()
    old = simple_index(fake)
    fake.add_release("roundup", "1.7.0", files=[])
    settings = make_settings()
    with TestClient(create_app(settings, transport=httpx.ASGITransport(app=fake))) as first:
        after_first_pass(first)  # the catalog starts at the current serial
        assert call(first, "changelog_last_serial") == fake.state.serial
    # Restarted behind a CDN node that still has the old copy: the catalog remembers the serial reported.
    with TestClient(create_app(settings, transport=Lagging(fake, "/simple/", old, times=100))) as restarted:
        after_first_pass(restarted)
        assert call(restarted, "changelog_last_serial") == fake.state.serial
    # A new catalog has nothing to remember: the old copy's serial is all there is.
    with TestClient(create_app(make_settings(), transport=Lagging(fake, "/simple/", old, times=100))) as fresh:
        assert call(fresh, "changelog_last_serial") == int(old.headers["x-pypi-last-serial"])


def test_a_restart_behind_an_older_copy_records_no_change_back_to_older_serials() -> None:
    fake = FakeIndex()
    old = simple_index(fake)
    settings = make_settings()
    with TestClient(create_app(settings, transport=httpx.ASGITransport(app=fake))) as first:
        after_first_pass(first)
        start = call(first, "changelog_last_serial")
        fake.add_release("roundup", "1.7.0", files=[])
        fake.add_release("newcomer", "0.1", files=[])  # a project the old copy does not list
        refresher = first.app.state.refresher  # type: ignore[attr-defined]
        in_app(first, refresher.refresh)
        assert {row[0] for row in call(first, "changelog_since_serial", start)} >= {"roundup", "newcomer"}
        recorded = call(first, "changelog_since_serial", 0)
    # Restarted behind a CDN node that still has the copy from before: it is behind the catalog, so nothing in it
    # is a change: no project went back to an older serial, none was removed.
    with TestClient(create_app(settings, transport=Lagging(fake, "/simple/", old, times=100))) as restarted:
        after_first_pass(restarted)
        assert call(restarted, "changelog_since_serial", 0) == recorded


def test_a_catalog_that_cannot_be_read_leaves_the_last_serial_to_the_simple_index(tmp_path: Path) -> None:
    fake = FakeIndex()
    settings = make_settings(catalog_path=tmp_path / "missing.sqlite3", catalog_writer=False)

    def cannot_open(path: Path) -> sqlite3.Connection:  # SQLITE_CANTOPEN: a missing file it may not create
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)

    app = create_app(settings, transport=httpx.ASGITransport(app=fake), catalog_connection_factory=cannot_open)
    with TestClient(app) as client:
        assert call(client, "changelog_last_serial") == fake.state.serial
