"""The change feed's test harness: a service whose refresher the test runs one pass at a time."""

from __future__ import annotations

import calendar
import time
from typing import Any

import httpx
from starlette.testclient import TestClient

from shim.app import create_app
from shim.catalog.crawler import Crawler
from shim.catalog.refresher import Refresher
from shim.config.settings import Settings
from testkit.fakeindex import FakeIndex

from .helpers import in_app, on_fake_clock, rpc_for


def posix(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


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


def crawl_all(running: Feed) -> None:
    """Read every project's JSON into the catalog (what the crawler does, here at once)."""
    refresher: Refresher = running.client.app.state.refresher  # type: ignore[attr-defined]

    async def no_wait(seconds: float) -> None:
        return None

    in_app(running.client, Crawler(refresher.catalog, refresher.store, rate=1000, sleep=no_wait).run)
