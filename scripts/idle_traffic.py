"""Measure what an idle deployment costs the upstream: requests and bytes per hour, by kind of path, with defaults.

    python scripts/idle_traffic.py [--hours 1] [--json]

Run from the repository's root. The fake index (testkit/fakeindex) is served on 127.0.0.1, its answers gzip-encoded
as the public index's CDN sends them, and metered: every request the service sends it, and every answer, counted as
HTTP/1.1 puts them on the wire (request line or status line, headers, body; TCP and TLS framing left out). The
service's background work with default settings (what an idle service does: `CatalogWork.run`, the refresher and its
feed poller; the crawler, which reads each project once, left out) runs over it on a simulated clock: time jumps to
the next turn that falls due whenever every job waits, so `--hours` of idle time take seconds, and each turn is the
service's own code making real requests over real sockets. It prints the start-up (the first look: the whole Simple
index, both feeds whole) and then the cost per hour of the `--hours` that follow, with nothing changing upstream.
Exits 1 if a turn asked the upstream for a project's JSON (an idle upstream has nothing to read).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import http
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from starlette.middleware.gzip import GZipMiddleware  # noqa: E402
from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: E402

from shim.config.settings import Settings  # noqa: E402
from shim.upstream.urls import UpstreamURL  # noqa: E402
from shim.wiring import build_services, open_catalog_writer  # noqa: E402
from testkit.fakeindex import FakeIndex  # noqa: E402
from testkit.servers import serve_in_thread  # noqa: E402

# uvicorn's own `date` and `server` response headers, which the app does not see.
SERVER_HEADERS = len(b"date: Tue, 01 Dec 2026 00:00:00 GMT\r\nserver: uvicorn\r\n")


def kind_of(path: str) -> str:
    if path.startswith("/rss/"):
        return "RSS feeds"
    if path == "/simple/":
        return "Simple index"
    if path.startswith("/simple/"):
        return "Simple pages"
    if path.startswith("/pypi/"):
        return "project JSON"
    return "files and other"


@dataclass
class Kind:
    requests: int = 0
    not_modified: int = 0
    sent: int = 0  # request bytes
    received: int = 0  # response bytes


@dataclass
class Meter:
    """What crossed the wire, by kind of path."""

    kinds: dict[str, Kind] = field(default_factory=dict)

    def reset(self) -> dict[str, Kind]:
        kinds, self.kinds = self.kinds, {}
        return kinds


class Metered:
    """An ASGI app (the fake index, gzip-encoding) with every request and answer counted in `meter`."""

    def __init__(self, app: ASGIApp, meter: Meter) -> None:
        self.app = app
        self.meter = meter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        target = scope["path"].encode() + (b"?" + query if query else b"")
        line = len(scope["method"]) + 1 + len(target) + len(b" HTTP/1.1\r\n")
        counted = self.meter.kinds.setdefault(kind_of(scope["path"]), Kind())
        counted.requests += 1
        counted.sent += line + sum(len(k) + len(v) + 4 for k, v in scope["headers"]) + 2

        async def metered(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                counted.not_modified += status == 304
                status_line = len(f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n")
                headers = sum(len(k) + len(v) + 4 for k, v in message.get("headers", []))
                counted.received += status_line + headers + SERVER_HEADERS + 2
            elif message["type"] == "http.response.body":
                counted.received += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, metered)


class SimulatedClock:
    """Time that passes only when every one of `jobs` sleepers waits: then it jumps to the earliest wake-up."""

    def __init__(self, start: float, jobs: int) -> None:
        self.now = start
        self.jobs = jobs
        self._sleepers: list[tuple[float, int, asyncio.Event]] = []
        self._arrived = asyncio.Event()
        self._count = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        woken = asyncio.Event()
        self._count += 1
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), self._count, woken))
        self._arrived.set()
        await woken.wait()

    async def idle(self) -> None:
        """Until every job waits for its next turn."""
        while len(self._sleepers) < self.jobs:
            self._arrived.clear()
            await self._arrived.wait()

    async def run_until(self, end: float) -> None:
        """Let each turn that falls due by `end` run, in order; return once every job waits past it."""
        while True:
            await self.idle()
            when, _, woken = self._sleepers[0]
            if when > end:
                self.now = end
                return
            heapq.heappop(self._sleepers)
            self.now = when
            woken.set()


@dataclass(frozen=True)
class Report:
    feed_poll: float
    index_refresh: float
    projects: int
    hours: float
    start_up: dict[str, dict[str, int]]
    per_hour: dict[str, dict[str, float]]


async def simulate(settings: Settings, meter: Meter, hours: float) -> tuple[dict[str, Kind], dict[str, Kind]]:
    """The service's catalog work over the upstream for `hours` of simulated idle time after start-up."""
    services, client = build_services(settings)
    clock = SimulatedClock(time.time(), jobs=0)
    work = open_catalog_writer(settings, services, clock=clock, sleep=clock.sleep)
    clock.jobs = 1 + (work.poller is not None)
    task = asyncio.create_task(work.run(settings))
    try:
        # Start-up: the first look, and the first turn of each job after it (the feed poller's first poll).
        await clock.run_until(clock.now + settings.feed_poll)
        start_up = meter.reset()
        await clock.run_until(clock.now + hours * 3600)
        return start_up, meter.reset()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()
        work.close()
        services.catalog.close()


def measure(hours: float) -> Report:
    fake = FakeIndex()
    meter = Meter()
    with serve_in_thread(Metered(GZipMiddleware(fake), meter)) as url, tempfile.TemporaryDirectory() as state:
        fake.set_urls(url + "/")
        # Every setting at its default but the upstream and the catalog's file (a fresh one).
        # The crawler reads each project once (SHIM_CRAWL_RATE) and asks nothing more once it is through: what an
        # idle deployment costs for good is the rest, measured here; until then, add one JSON read per project.
        settings = Settings(
            upstream=UpstreamURL.parse(url + "/"), catalog_path=Path(state) / "catalog.sqlite3", crawl_rate=0
        )
        start_up, idle = asyncio.run(simulate(settings, meter, hours))
    return Report(
        feed_poll=settings.feed_poll,
        index_refresh=settings.index_refresh,
        projects=len(fake.state.projects),
        hours=hours,
        start_up={name: asdict(kind) for name, kind in sorted(start_up.items())},
        per_hour={
            name: {key: round(value / hours, 1) for key, value in asdict(kind).items()}
            for name, kind in sorted(idle.items())
        },
    )


def table(rows: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"  {'kind':<16}{'requests':>10}{'of them 304':>13}{'bytes sent':>12}{'bytes received':>16}"]
    total = {key: sum(row[key] for row in rows.values()) for key in ("requests", "not_modified", "sent", "received")}
    for name, row in [*rows.items(), ("total", total)]:
        lines.append(
            f"  {name:<16}{row['requests']:>10g}{row['not_modified']:>13g}{row['sent']:>12g}{row['received']:>16g}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=1.0, help="simulated idle hours measured after start-up")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    arguments = parser.parse_args()
    report = measure(arguments.hours)
    if arguments.json:
        print(json.dumps(asdict(report)))
    else:
        print(
            f"Idle upstream traffic with default settings (SHIM_FEED_POLL={report.feed_poll:g} s, "
            f"SHIM_INDEX_REFRESH={report.index_refresh:g} s), over the fake index ({report.projects} projects, "
            "gzip-encoded) on 127.0.0.1:"
        )
        print("start-up (the first look and the first poll):")
        print("\n".join(table(report.start_up)))
        print(f"per hour, idle (measured over {report.hours:g} simulated hour(s)):")
        print("\n".join(table(report.per_hour)))
    return 1 if report.per_hour.get("project JSON", {}).get("requests") else 0


if __name__ == "__main__":
    raise SystemExit(main())
