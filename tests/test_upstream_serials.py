"""Serials the Simple index gives (PEP 691 JSON `_last-serial`): one malformed serial is that project's problem,
never every project's."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from testkit.fakeindex import FakeIndex
from testkit.wheels import wheel_file

from .feed import Feed, crawl_all
from .helpers import make_settings, rpc_for, served

MISSING = object()
# Serials no journal has: past SQLite's 64-bit integers, negative, not integers, not digits.
MALFORMED = {
    "2**70": 2**70,
    "2**63": 2**63,
    "negative": -1,
    "float": 1.5,
    "bool": True,
    "null": None,
    "list": [],
    "object": {},
    "12x": "12x",
    "-3": "-3",
    "superscript": "²",
    "huge": "1" * 30,
    "missing": MISSING,
}


class SerialSwapped(httpx.AsyncBaseTransport):
    """The fake index, but its Simple index (JSON) gives `name` the serial `value` while `swapped` (no name: the
    index's own serial, `meta._last-serial`)."""

    def __init__(self, fake: FakeIndex, name: str | None, value: Any) -> None:
        self.inner = httpx.ASGITransport(app=fake)
        self.name, self.value, self.swapped = name, value, True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path != "/simple/" or not self.swapped or "json" not in response.headers["content-type"]:
            return response
        document = json.loads(await response.aread())
        for entry in [p for p in document["projects"] if p["name"] == self.name] if self.name else [document["meta"]]:
            del entry["_last-serial"]
            if self.value is not MISSING:
                entry["_last-serial"] = self.value
        kept = {k: v for k, v in response.headers.items() if k not in ("content-length", "etag")}
        return httpx.Response(200, content=json.dumps(document).encode(), headers=kept)


@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_serial_leaves_that_project_out_of_the_serials_and_keeps_the_others(value: Any) -> None:
    fake = FakeIndex()
    serials = {p.name: p.last_serial for p in fake.state.projects.values()}
    with served(fake, SerialSwapped(fake, "roundup", value)) as client:
        rpc = rpc_for(client)
        assert rpc("list_packages_with_serial") == {k: v for k, v in serials.items() if k != "roundup"}
        assert "roundup" in rpc("list_packages")
        assert rpc("changelog_last_serial") == fake.state.serial
        assert rpc("package_releases", "roundup") == ["1.6.1"]


@pytest.mark.parametrize("value", [2**70, "x", 1.5, MISSING], ids=["2**70", "not digits", "float", "missing"])
def test_a_malformed_index_serial_falls_back_to_the_serial_header(value: Any) -> None:
    fake = FakeIndex()
    with served(fake, SerialSwapped(fake, None, value)) as client:
        assert rpc_for(client)("changelog_last_serial") == fake.state.serial  # X-PyPI-Last-Serial
        assert len(rpc_for(client)("list_packages_with_serial")) == len(fake.state.projects)


@pytest.mark.parametrize("value", [2**70, 1.5, -1, MISSING], ids=["2**70", "float", "negative", "missing"])
def test_the_change_feed_keeps_every_other_project_and_logs_the_malformed_one_once(
    value: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeIndex()
    swapped = SerialSwapped(fake, "roundup", value)
    running = Feed(fake, make_settings(), swapped)
    with running.client, caplog.at_level(logging.WARNING, "shim"):
        logging.getLogger("shim").propagate = True  # configure_logging stops it; caplog needs it
        start = fake.state.serial
        assert running.since(start) == []  # the first pass: the starting point, without roundup
        crawl_all(running)  # what each project held before the release below
        fake.add_release("httpx", "9.0", created="2026-01-02T03:04:05Z", files=[wheel_file("httpx", "9.0")])
        assert running.refresh() == 1
        assert [(row[0], row[1], row[3]) for row in running.since(start)] == [
            ("httpx", "9.0", "new release"),
            ("httpx", "9.0", "add py3 file httpx-9.0-py3-none-any.whl"),
        ]
        assert running.refresh() == 0  # roundup is neither changed nor gone while its serial is unreadable
        swapped.swapped = False
        assert running.refresh() == 1  # readable again: recorded from its JSON
        assert "roundup" not in [row[0] for row in running.since(start) if row[3] == "remove project"]
    warned = [r.getMessage() for r in caplog.records if "roundup" in r.getMessage()]
    assert len(warned) == 1 and "_last-serial" in warned[0], warned


class SerialHeader(httpx.AsyncBaseTransport):
    """The fake index, with its X-PyPI-Last-Serial header on project documents replaced by `value`."""

    def __init__(self, fake: FakeIndex, value: str) -> None:
        self.inner, self.value = httpx.ASGITransport(app=fake), value

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if not request.url.path.startswith("/pypi/"):
            return response
        await response.aread()
        # As bytes off the wire: httpx decodes a header as UTF-8 where it can.
        headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"x-pypi-last-serial"]
        headers.append((b"x-pypi-last-serial", self.value.encode()))
        return httpx.Response(response.status_code, headers=headers, content=response.content)


@pytest.mark.parametrize("header", ["²", "٣", "1e3", "-1", str(2**70)])
def test_a_malformed_serial_header_on_a_document_is_no_serial(header: str) -> None:
    # "²" and "٣" are digits to str.isdigit() but not to int(); none of these is a serial.
    fake = FakeIndex()
    with served(fake, SerialHeader(fake, header)) as client:
        assert rpc_for(client)("package_releases", "roundup") == ["1.6.1"]
