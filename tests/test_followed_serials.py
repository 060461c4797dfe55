"""A process that does not write the change feed reads each project's serial from the catalog once a second at
most: its floors follow the writer without a trip to the catalog file per call."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from starlette.testclient import TestClient

from shim.app import create_app
from shim.catalog.followed import FOLLOWED_TTL, FollowedSerials
from shim.catalog.reads import CatalogReader
from shim.catalog.rows import ListedProject
from shim.catalog.writes import CatalogWriter
from testkit.fakeindex import FakeIndex

from .clock import FakeClock
from .helpers import call, make_settings


class _Catalog:
    """The reads FollowedSerials makes of a catalog, counted; its serials set by the test."""

    def __init__(self) -> None:
        self.serials: dict[str, int] = {}
        self.reads: list[str] = []

    async def run(self, function: Any, *args: Any) -> Any:
        return function(*args)

    def serial_of(self, normalized: str) -> int | None:
        self.reads.append(normalized)
        return self.serials.get(normalized)


def test_a_serial_is_read_once_a_second_and_its_rise_seen_after_that() -> None:
    catalog, clock = _Catalog(), FakeClock()
    followed = FollowedSerials(cast(CatalogReader, catalog), clock=clock)
    catalog.serials["roundup"] = 10
    assert asyncio.run(followed.serial_of("roundup")) == 10
    catalog.serials["roundup"] = 11  # the writer recorded a release
    assert asyncio.run(followed.serial_of("roundup")) == 10
    clock.advance(FOLLOWED_TTL)
    assert asyncio.run(followed.serial_of("roundup")) == 11
    assert asyncio.run(followed.serial_of("missing")) is None
    assert asyncio.run(followed.serial_of("missing")) is None
    assert catalog.reads == ["roundup", "roundup", "missing"]


def test_a_standby_answers_cache_hits_without_reading_the_catalog_per_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "catalog.sqlite3"
    writer = CatalogWriter(path)
    writer.baseline([ListedProject("roundup", "roundup", 1)], 1, 0)
    writer.close()
    reads: list[str] = []
    original = CatalogReader.serial_of

    def counted(self: CatalogReader, normalized: str) -> int | None:
        reads.append(normalized)
        return original(self, normalized)

    settings = make_settings(catalog_path=path, catalog_writer=False)
    app = create_app(settings, transport=httpx.ASGITransport(app=FakeIndex()))
    monkeypatch.setattr(CatalogReader, "serial_of", counted)
    with TestClient(app) as client:
        answers = [call(client, "package_releases", "roundup") for _ in range(5)]
    assert answers == [["1.6.1"]] * 5
    assert reads == ["roundup"]
