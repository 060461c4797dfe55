"""The change feed's test harness: a service whose refresher the test runs one pass at a time."""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from starlette.testclient import TestClient

from shim.app import create_app
from shim.catalog.crawler import Crawler
from shim.catalog.refresher import Refresher
from shim.config.settings import Settings
from shim.upstream.client import SIMPLE_JSON
from shim.wiring import open_catalog_writer
from testkit.fakeindex import FakeIndex

from .clock import FakeClock
from .helpers import in_app, make_settings, on_fake_clock, rpc_for

T = TypeVar("T")


def posix(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


# When a Polled service starts, on its fake clock: after every fixture's time, as a deployment starts today.
STARTED = "2030-01-01T00:00:00Z"


def iso(seconds: float) -> str:
    """The time `seconds` after STARTED, as the fake index takes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(posix(STARTED) + seconds))


class Feed:
    """A service over a fake index, whose refresher is run by the test, one pass at a time; the upstream guard
    runs on a fake clock, so that a pass whose tries fail never waits for their back-off."""

    def __init__(
        self, fake: FakeIndex, settings: Settings, transport: httpx.AsyncBaseTransport | None = None, **options: Any
    ) -> None:
        self.fake = fake
        app = create_app(settings, transport=transport or httpx.ASGITransport(app=fake), **options)
        self.clock = on_fake_clock(app)
        self.client = TestClient(app)
        self.rpc = rpc_for(self.client)

    def refresh(self) -> int:
        refresher: Refresher = self.client.app.state.refresher  # type: ignore[attr-defined]
        return in_app(self.client, refresher.refresh)

    def since(self, serial: int) -> list[list[Any]]:
        rows: list[list[Any]] = self.rpc("changelog_since_serial", serial)
        return rows


def started(running: Feed) -> None:
    """Wait for the first pass (the starting point: `changelog_since_serial(0)` waits for it), then read every
    project's JSON into the catalog, so that the changes a test makes next are diffed exactly."""
    running.rpc("changelog_since_serial", 0)
    crawl_all(running)


def crawl_all(running: Feed) -> None:
    """Read every project's JSON into the catalog (what the crawler does, here at once)."""
    refresher: Refresher = running.client.app.state.refresher  # type: ignore[attr-defined]

    async def no_wait(seconds: float) -> None:
        return None

    in_app(running.client, Crawler(refresher.catalog, refresher.store, rate=1000, sleep=no_wait).run)


class Polled:
    """A service with default settings whose catalog work (the refresher and everything CatalogWork.run starts
    beside it, built as the service builds it) runs on a held fake clock: time passes only when the test moves it
    (`advance`), and each turn that falls due then runs before `advance` returns. The service's own catalog work
    is off, so that this one is the catalog's only writer."""

    def __init__(self, fake: FakeIndex, transport: httpx.AsyncBaseTransport | None = None, **settings: Any) -> None:
        self.fake = fake
        self.settings = make_settings(**settings)
        app = create_app(
            dataclasses.replace(self.settings, catalog_writer=False),
            transport=transport or httpx.ASGITransport(app=fake),
        )
        on_fake_clock(app)  # the upstream guard's back-offs pass at once
        self.client = TestClient(app)
        self.rpc = rpc_for(self.client)
        self.clock = FakeClock(posix(STARTED), held=True)
        self.started = self.clock.now
        self._task: asyncio.Task[None] | None = None

    def __enter__(self) -> Polled:
        self.client.__enter__()
        services = self.client.app.state.services  # type: ignore[attr-defined]
        self.work = open_catalog_writer(self.settings, services, clock=self.clock, sleep=self.clock.sleep)

        async def start() -> None:
            self._task = asyncio.create_task(self.work.run(self.settings))
            await self.clock.until_sleeping(self._jobs())  # each job has made its first turn and waits

        in_app(self.client, start)
        return self

    def _jobs(self) -> int:
        """The jobs on the held clock: the refresher and the poller (the crawler, on its own clock, waits out its
        first minute meanwhile: shim.catalog.crawler.WARMUP)."""
        return 1 + (self.work.poller is not None)

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._task is not None
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

        in_app(self.client, stop)
        self.work.close()
        self.client.__exit__(*exc)

    @property
    def elapsed(self) -> float:
        return self.clock.now - self.started

    def advance(self, seconds: float) -> None:
        """Move the clock on by `seconds`; return once every job woken has made its turn and waits again."""

        async def step() -> None:
            self.clock.advance(seconds)
            await self.clock.until_sleeping(self._jobs())

        in_app(self.client, step)

    def until(self, seen: Callable[[], T], *, within: float, step: float = 1.0) -> T:
        """Advance the clock `step` seconds at a time until `seen()` is truthy; fail past `within` seconds."""
        deadline = self.elapsed + within
        while not (found := seen()):
            assert self.elapsed < deadline, f"not seen within {within:g} s"
            self.advance(step)
        return found


def index_copy(fake: FakeIndex) -> httpx.Response:
    """The fake's Simple index (PEP 691 JSON) as it is now: the copy a CDN node may go on serving."""
    with TestClient(fake, base_url="https://upstream.test") as upstream:
        copy: httpx.Response = upstream.get("/simple/", headers={"Accept": SIMPLE_JSON})
    return copy
