"""The crawler: reads the JSON of every project the catalog has never read, at a bounded rate, resumably.

It waits for the catalog's first look (the refresher's baseline), then reads the projects called for first (names
the service was asked about, `want`), then the others in name order from its cursor, which it saves after every
read: a restart resumes there. Caught up, it sleeps and looks again, so projects listed later are read too. One
read at a time, never more than `rate` a second; it waits out a pause the upstream asked every caller for
(Retry-After), and each failure to get an answer doubles its interval, up to a read a minute. It runs as a task
of the service (`follow`) or as `pypi-xmlrpc-shim catalog crawl` (`run`): a request never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

from shim.catalog.changes import project_metadata, releases_of
from shim.catalog.problems import CatalogUnavailable
from shim.catalog.writes import CatalogWriter
from shim.errors import UpstreamError, UpstreamUnavailable
from shim.upstream.documents import DocumentStore
from shim.upstream.parsers import ProjectDoc

__all__ = ["IDLE", "WANTED", "WARMUP", "Crawler"]

logger = logging.getLogger(__name__)

# The service's crawler starts this long after the catalog's first look: a new (or restarted) process gives its first
# minute to the Simple index, the change feed and its first callers. It is nothing against a crawl of hours, and no
# test lasts that long (pytest's timeout): a test that counts upstream requests never meets the crawler's.
WARMUP = 60.0
IDLE = 60.0  # seconds between looks for projects to read, once every one is read
BASELINE_POLL = 10.0  # seconds between looks for the catalog's first look (it may be another process's)
MAX_INTERVAL = 60.0  # the slowest the crawler backs off to: one read a minute
WANTED = 1000  # names called for, kept in memory; beyond, the oldest is dropped (the sweep reads it anyway)
MAX_NAME = 200  # longer is no project name: never queued
BATCH = 100
WINDOW = 100  # the latest reads the crawler's rate is measured over


class Crawler:
    """Reads the JSON of every project never read, at most `rate` requests a second, resumably."""

    def __init__(
        self,
        catalog: CatalogWriter,
        store: DocumentStore,
        *,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        retry: float = 60.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.base_interval = 1.0 / rate
        self.interval = self.base_interval  # doubled on each failure to get an answer, halved back on each read
        self.clock = clock
        self.sleep = sleep
        self.wall = wall
        self.retry = retry  # seconds between tries of a catalog it cannot write
        self.done = 0
        self._next_at: float | None = None
        self._wanted: OrderedDict[str, None] = OrderedDict()
        self._failed: set[str] = set()  # not read since the crawler last caught up: tried again after its next look
        self._reading: str | None = None
        self._reads: deque[float] = deque(maxlen=WINDOW)
        self._warmed = False

    def want(self, normalized: str) -> None:
        """A name the service was asked about: read first, if the catalog lists it and has not read it."""
        if normalized == self._reading or normalized in self._failed or len(normalized) > MAX_NAME:
            return  # its own read, or one that failed lately: a caller asking again never makes it hammer one
        if normalized not in self._wanted and len(self._wanted) >= WANTED:
            self._wanted.popitem(last=False)
        self._wanted[normalized] = None

    @property
    def rate(self) -> float | None:
        """Reads a second over the latest reads (None before two)."""
        if len(self._reads) < 2 or self._reads[-1] <= self._reads[0]:
            return None
        return (len(self._reads) - 1) / (self._reads[-1] - self._reads[0])

    async def run(self, *, limit: int | None = None) -> int:
        """Crawl until every project is known (or `limit` projects were read); returns how many were read."""
        return await self._retrying(limit, follow=False)

    async def follow(self) -> None:
        """The service's crawler: a minute after the catalog's first look, crawl, then look again for ever."""
        await self._retrying(None, follow=True)

    async def _retrying(self, limit: int | None, *, follow: bool) -> int:
        """A catalog it cannot write (an operator's error) is tried again every `retry` seconds, from the cursor."""
        while True:
            try:
                return await self._crawl(limit, follow)
            except CatalogUnavailable as exc:
                logger.error("the crawler waits: %s; it tries again in %g s", exc, self.retry)
                await self.sleep(self.retry)

    def _unlisted(self) -> bool:
        """Whether the catalog lists no project yet: no first look, nor a listing without serials."""
        return self.catalog.oldest_serial is None and self.catalog.get_meta("listed_at") is None

    async def _until_baseline(self) -> None:
        told = False
        while await self.catalog.run(self._unlisted):
            if not told:
                logger.info("the crawler waits for the catalog's first look at the Simple index")
                told = True
            await self.sleep(BASELINE_POLL)

    async def _crawl(self, limit: int | None, follow: bool) -> int:
        await self._until_baseline()
        if follow and not self._warmed:
            await self.sleep(WARMUP)
            self._warmed = True
        cursor = await self.catalog.run(self.catalog.get_meta, "crawl_cursor") or ""
        from_start, swept = cursor == "", 0  # a sweep from the first name, and what it read
        batch: list[str] = []
        while limit is None or self.done < limit:
            wanted = await self._next_wanted()
            if wanted is None and not batch:
                listed = await self.catalog.run(self.catalog.unknown_projects, cursor, BATCH)
                batch = [name for name in listed if name not in self._failed]
                if listed and not batch:  # only projects that failed lately: passed over until the next look
                    cursor = listed[-1]
                    continue
                if not listed:
                    if not from_start or swept:  # wrap around: projects before where the sweep began, or added
                        cursor, from_start, swept = "", True, 0
                        await self.catalog.run(self.catalog.save_cursor, cursor)
                        continue
                    if not follow:
                        break
                    await self._idle()
                    cursor = ""  # the next look starts from the first name
                    continue
            name = wanted if wanted is not None else batch.pop(0)
            read = await self._paced(name)
            if wanted is None:
                cursor = name
                swept += read
            await self.catalog.run(self.catalog.save_crawl, cursor, self.rate, int(self.wall()))
            self.done += 1
            if self.done % 1000 == 0:
                coverage = await self.catalog.run(self.catalog.coverage)
                logger.info(
                    "crawled %d projects (%d of %d known)", self.done, coverage.with_metadata, coverage.projects
                )
        return self.done

    async def _next_wanted(self) -> str | None:
        """The oldest name called for that the catalog lists and has not read (the others are dropped)."""
        while self._wanted:
            name, _ = self._wanted.popitem(last=False)
            record = await self.catalog.run(self.catalog.project, name)
            if record is not None and not record.known and name not in self._failed:
                return name
        return None

    async def _idle(self) -> None:
        """Caught up: sleep, then look again; what failed meanwhile is tried again then."""
        self._failed.clear()
        self._reads.clear()  # the rate is measured while reading, not across the wait
        await self.sleep(IDLE)

    async def _paced(self, normalized: str) -> int:
        """Read one project once its turn has come; 1 if it was read."""
        guard = self.store.upstream.guard
        now = self.clock()
        turn = now if self._next_at is None else self._next_at
        # Its own pace, and a pause the upstream asked every caller for (Retry-After) that lasts longer.
        wait = max(turn - now, guard.resume_at - guard.clock())
        if wait > 0:
            await self.sleep(wait)
        started = self.clock()
        self._reads.append(started)
        self._reading = normalized
        try:
            read = await self._read(normalized)
        finally:
            self._reading = None
        self._next_at = started + self.interval
        return read

    async def _read(self, normalized: str) -> int:
        try:
            doc = await self.store.project(normalized, by_catalog=True)
        except UpstreamError as exc:
            self._failed.add(normalized)
            if isinstance(exc, UpstreamUnavailable):  # no answer: the upstream is slowed down for, not a project
                self.interval = min(self.interval * 2, max(MAX_INTERVAL, self.base_interval))
                logger.warning("crawler: %s not read (%s); one read every %g s", normalized, exc, self.interval)
            else:
                logger.warning("crawler: %s not read (%s)", normalized, exc)
            return 0
        self.interval = max(self.base_interval, self.interval / 2)
        if doc is None:
            await self.catalog.run(self.catalog.store_releases, normalized, {}, None)
        elif await self.catalog.run(self._ahead_of_the_feed, normalized, doc):
            # A copy newer than the serial the change feed holds for the project: its change is the feed's to record,
            # diffed from the releases held, or a release stored now would never be a `new release` row. Only its
            # metadata is kept; the project stays unread, and is read again once the feed has caught up.
            releases, metadata = releases_of(doc), project_metadata(doc)
            await self.catalog.run(self.catalog.observe, normalized, doc.last_serial, releases, metadata)
            self._failed.add(normalized)  # passed over until the next look, as a failed read is
            return 0
        else:
            await self.catalog.run(self.catalog.store_releases, normalized, releases_of(doc), project_metadata(doc))
        return 1

    def _ahead_of_the_feed(self, normalized: str, doc: ProjectDoc) -> bool:
        """Whether `doc` is newer than the serial the change feed holds (never, without a change feed)."""
        if self.catalog.oldest_serial is None or doc.last_serial is None:
            return False
        held = self.catalog.serial_of(normalized)
        return held is not None and doc.last_serial > held
