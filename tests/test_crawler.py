"""The crawler inside the service: it waits for the catalog's first look, reads what was called for first, follows
the index as it grows, slows down when the upstream asks, and reports its coverage and an ETA."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import anyio
import httpx
import pytest
from starlette.testclient import TestClient

from shim import wiring
from shim.app import create_app
from shim.catalog.crawler import IDLE, WANTED, WARMUP, Crawler
from shim.upstream.urls import UpstreamURL
from testkit.fakeindex import FakeIndex
from testkit.servers import serve_in_thread
from testkit.wheels import wheel_file

from .clock import FakeClock
from .feed import Feed, crawl_all
from .helpers import after_first_pass, in_app, make_settings, run_shim_json, sampled_health, served, shim_environ


def crawler_on(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> list[Crawler]:
    """Every crawler the service builds from now on runs on `clock`; the list gets each one built."""
    built: list[Crawler] = []

    def build(*args: Any, **options: Any) -> Crawler:
        crawler = Crawler(*args, clock=clock, sleep=clock.sleep, **options)
        built.append(crawler)
        return crawler

    monkeypatch.setattr(wiring, "Crawler", build)
    return built


def catalog_of(client: TestClient) -> dict[str, Any]:
    catalog: dict[str, Any] = sampled_health(client)["catalog"]
    return catalog


def until_covered(client: TestClient, projects: int) -> tuple[int, int]:
    """Wait (on the app's loop, 10 s at most) until the catalog has read `projects` projects; (read, listed)."""
    reader = client.app.state.services.catalog  # type: ignore[attr-defined]

    async def wait() -> tuple[int, int]:
        with anyio.move_on_after(10):
            while (await reader.run(reader.coverage)).with_metadata < projects:
                await anyio.sleep(0.01)
        coverage = await reader.run(reader.coverage)
        return coverage.with_metadata, coverage.projects

    return in_app(client, wait)


def test_a_service_started_on_a_fresh_file_with_a_crawl_rate_reads_every_project(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeIndex()
    crawler_on(monkeypatch, FakeClock())
    with served(fake, crawl_rate=5) as client:
        everything = len(fake.state.projects)
        assert until_covered(client, everything) == (everything, everything)


@pytest.mark.parametrize(
    "index",
    [lambda: FakeIndex(json_simple=False), lambda: FakeIndex(serial_headers=False)],
    ids=["HTML only", "JSON without _last-serial"],
)
def test_over_a_simple_index_without_serials_the_crawler_still_reads_every_project(
    monkeypatch: pytest.MonkeyPatch, index: Callable[[], FakeIndex]
) -> None:
    # A mirror or proxy without serials has no change feed, but search, browse and user_packages need the catalog.
    fake = index()
    crawler_on(monkeypatch, FakeClock())
    with served(fake) as client:
        everything = len(fake.state.projects)
        assert until_covered(client, everything) == (everything, everything)


def json_reads(fake: FakeIndex) -> list[str]:
    """The projects whose JSON the upstream was asked for, in order."""
    return [r.path.split("/")[2] for r in fake.requests if re.fullmatch(r"/pypi/[^/]+/json", r.path)]


async def past_the_warmup(clock: FakeClock) -> None:
    """Let a crawler on a held `clock` through its wait for the first look, up to the start of its warm-up."""
    while True:
        await clock.until_sleeping(1)
        if clock.slept[-1] == WARMUP:
            return
        clock.advance(clock.slept[-1])


@contextlib.contextmanager
def at_the_warmup(
    monkeypatch: pytest.MonkeyPatch, fake: FakeIndex, **settings: Any
) -> Iterator[tuple[TestClient, FakeClock]]:
    """The service over `fake`, its crawler on a held clock, once the first look is in and the warm-up has begun."""
    clock = FakeClock(held=True)
    crawler_on(monkeypatch, clock)
    with served(fake, **settings) as client:
        after_first_pass(client)
        in_app(client, lambda: past_the_warmup(clock))
        yield client, clock


def test_the_service_crawler_asks_nothing_for_a_minute_after_the_first_look(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeIndex()
    with at_the_warmup(monkeypatch, fake, crawl_rate=5) as (client, clock):
        assert json_reads(fake) == []  # calls and the feed have the upstream to themselves meanwhile

        async def warmed() -> None:
            clock.advance(WARMUP - 0.001)
            await asyncio.sleep(0.05)
            assert json_reads(fake) == []
            clock.held = False
            clock.advance(0.001)

        in_app(client, warmed)
        everything = len(fake.state.projects)
        assert until_covered(client, everything) == (everything, everything)
    assert json_reads(fake) == sorted(fake.state.projects)  # by name, each once


def test_a_warmup_of_a_minute_outlasts_every_test(pytestconfig: pytest.Config) -> None:
    # Why no test that counts upstream requests meets the crawler's (on by default): none lasts past its warm-up.
    assert float(pytestconfig.getini("timeout")) <= WARMUP


def test_projects_called_for_are_read_first(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeIndex()
    with at_the_warmup(monkeypatch, fake, crawl_rate=5) as (client, clock):
        # Pass-through asked about these (pip's Simple pages): their JSON was never read.
        assert client.get("/simple/zope-interface-demo/").status_code == 200
        assert client.get("/simple/starlette/").status_code == 200

        async def release() -> None:
            clock.held = False
            clock.advance(WARMUP)

        in_app(client, release)
        everything = len(fake.state.projects)
        assert until_covered(client, everything) == (everything, everything)
    rest = sorted(set(fake.state.projects) - {"zope-interface-demo", "starlette"})
    assert json_reads(fake) == ["zope-interface-demo", "starlette", *rest]


def test_the_wanted_names_are_bounded_the_oldest_dropped() -> None:
    crawler = Crawler(cast(Any, None), cast(Any, None), rate=5)
    for number in range(WANTED + 10):
        crawler.want(f"project-{number}")
    crawler.want("x" * 201)  # no project has such a name
    queued = list(crawler._wanted)
    assert len(queued) == WANTED and queued[0] == "project-10" and queued[-1] == f"project-{WANTED + 9}"


def test_once_caught_up_it_looks_again_and_reads_what_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeIndex()
    fake.fail("/pypi/httpx/json", times=1)
    clock = FakeClock()
    crawler_on(monkeypatch, clock)
    with served(fake, crawl_rate=5, upstream_retries=0) as client:
        everything = len(fake.state.projects)
        assert until_covered(client, everything) == (everything, everything)
    reads = json_reads(fake)
    assert reads[: everything + 1] == [*sorted(fake.state.projects), "httpx"]  # a minute later, once caught up
    assert IDLE in clock.slept


class Throttling(httpx.AsyncBaseTransport):
    """The fake index, but its first `times` project documents answer 429 (with `headers`)."""

    def __init__(self, fake: FakeIndex, times: int, headers: dict[str, str]) -> None:
        self.inner = httpx.ASGITransport(app=fake)
        self.times, self.headers = times, headers

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/json") and self.times > 0:
            self.times -= 1
            return httpx.Response(429, headers=self.headers)
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize(
    ("headers", "waits"),
    [
        # Each 429 doubles the crawler's interval (0.2 s at 5 a second); each read halves it back.
        ({}, [0.4, 0.8, 1.6, 0.8, 0.4, 0.2, 0.2]),
        # With Retry-After, every caller waits the pause out (the guard's); the crawler too, before it asks again.
        ({"Retry-After": "30"}, [30, 30, 30, 0.8, 0.4, 0.2, 0.2]),
    ],
    ids=["429", "429 with Retry-After"],
)
def test_the_crawler_slows_down_when_the_upstream_asks(
    monkeypatch: pytest.MonkeyPatch, headers: dict[str, str], waits: list[float]
) -> None:
    fake = FakeIndex()
    clock = FakeClock()
    crawler_on(monkeypatch, clock)
    # One request a read, so that each 429 reaches the crawler; the guard on the crawler's clock.
    with served(fake, Throttling(fake, 3, headers), clock=clock, crawl_rate=5, upstream_retries=0) as client:
        everything = len(fake.state.projects)
        assert until_covered(client, everything) == (everything, everything)
    crawled = clock.slept[clock.slept.index(WARMUP) + 1 :]
    assert crawled[: len(waits)] == pytest.approx(waits)


def test_healthz_shows_the_crawlers_coverage_rate_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeIndex()
    with at_the_warmup(monkeypatch, fake, crawl_rate=0.5) as (client, clock):
        before = catalog_of(client)["crawl"]

        async def six_reads() -> None:
            clock.advance(WARMUP)  # the first read goes at once, then one every 2 s
            for _ in range(5):
                await clock.until_sleeping(1)
                clock.advance(2)
            await clock.until_sleeping(1)

        in_app(client, six_reads)
        crawl = catalog_of(client)["crawl"]
    assert before == {
        "projects": 13, "read": 0, "coverage": 0.0, "rate": None, "eta_seconds": None, "last_read_at": None,
        "cursor": None,
    }  # fmt: skip
    first_six = sorted(fake.state.projects)[:6]
    assert json_reads(fake) == first_six
    assert time.time() - crawl.pop("last_read_at") < 600
    # 7 projects left at 0.5 a second: 14 s.
    assert crawl == {
        "projects": 13, "read": 6, "coverage": 6 / 13, "rate": 0.5, "eta_seconds": 14, "cursor": first_six[-1],
    }  # fmt: skip


@pytest.mark.e2e
def test_with_default_settings_a_service_started_on_a_fresh_file_covers_every_project(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = FakeIndex()
    clock = FakeClock()
    crawler_on(monkeypatch, clock)  # its minute of warm-up and its pace pass at once; all else is as deployed
    everything = len(fake.state.projects)
    with serve_in_thread(fake) as index_url:
        fake.set_urls(index_url + "/")
        settings = make_settings(upstream=UpstreamURL.parse(index_url + "/"), catalog_path=tmp_path / "c.sqlite3")
        with serve_in_thread(create_app(settings), lifespan="on") as shim_url, httpx.Client(trust_env=False) as http:
            deadline = time.monotonic() + 10
            while (crawl := http.get(shim_url + "/healthz").json()["catalog"]["crawl"])["read"] < everything:
                assert time.monotonic() < deadline, crawl
                time.sleep(0.05)
        environ = {"SHIM_UPSTREAM": index_url + "/", "SHIM_CATALOG_PATH": str(settings.catalog_path)}
        status = run_shim_json("catalog", "status", env={**environ, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert sorted(json_reads(fake)) == sorted(fake.state.projects)  # each project once
    assert (crawl["projects"], crawl["coverage"], crawl["rate"], crawl["eta_seconds"]) == (everything, 1.0, 5.0, 0)
    del crawl["cursor"], status["crawl"]["cursor"]  # the last name read, or "" once it has wrapped around
    assert status["crawl"] == crawl


@pytest.mark.e2e
def test_catalog_crawl_on_a_fresh_file_makes_the_first_look_then_reads_every_project(tmp_path: Path) -> None:
    fake = FakeIndex()
    with serve_in_thread(fake) as index_url:
        fake.set_urls(index_url + "/")
        environ = shim_environ(index_url + "/", tmp_path / "catalog.sqlite3", tmp_path)
        crawled = run_shim_json("catalog", "crawl", env=environ)  # at the default rate: 13 reads, under 3 s
        status = run_shim_json("catalog", "status", env=environ)
    assert crawled == {"crawled": len(fake.state.projects)}
    assert (status["crawl"]["read"], status["crawl"]["eta_seconds"]) == (len(fake.state.projects), 0)


def test_a_project_the_crawler_reads_ahead_of_the_change_feed_still_gets_its_new_release_row() -> None:
    fake = FakeIndex()
    running = Feed(fake, make_settings(crawl_rate=0))
    with running.client:
        start = running.rpc("changelog_last_serial")  # the first look: no project read yet
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 5))  # after the first look
        wheel = wheel_file("roundup", "1.7.0", upload=later)
        fake.add_release("roundup", "1.7.0", created=later, files=[wheel])
        crawl_all(running)  # the crawler reads roundup's JSON, 1.7.0 in it, before the feed records the change
        assert running.refresh() == 1
        rows = running.since(start)
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("roundup", "1.7.0", "new release"),
        ("roundup", "1.7.0", "add py3 file roundup-1.7.0-py3-none-any.whl"),
    ]
