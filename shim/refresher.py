"""The metadata index's one writer: the refresher, and the optional crawler.

The refresher re-reads the Simple index (conditionally), compares every project's serial with what the
metadata index holds, and for each project that moved reads its JSON (and, for new releases, its RSS
feed), derives the change rows, and writes them in one transaction. A project whose JSON cannot be read
keeps its old serial, so the next refresh tries again: nothing seen is lost.

The crawler reads the JSON of every project the index has never read, at a bounded rate, resuming from
its cursor after a restart. Both run as tasks of their own: a request never waits for them.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import feedparser

from shim.changes import derive_events, project_metadata, releases_of
from shim.documents import DocumentStore
from shim.errors import UpstreamError, UpstreamUnavailable
from shim.index import IndexSnapshot, ProjectIndex
from shim.metaindex import MetaIndex, StoredRelease
from shim.models import IndexListing
from shim.names import path_segment

__all__ = ["Crawler", "Refresher"]

logger = logging.getLogger("shim.refresher")


@dataclass(frozen=True)
class _SiteFeeds:
    releases: dict[tuple[str, str | None], int]  # (project, version) -> when the release was created
    created: dict[str, int]  # project -> when it was created


@dataclass(frozen=True)
class _Change:
    normalized: str
    name: str
    old: int | None
    new: int | None


class Refresher:
    def __init__(
        self,
        meta: MetaIndex,
        store: DocumentStore,
        index: ProjectIndex,
        *,
        concurrency: int = 4,
        clock: Callable[[], float] = time.time,
        ready: asyncio.Event | None = None,
    ) -> None:
        self.meta = meta
        self.ready = ready
        self.store = store
        self.index = index
        self.clock = clock
        self._semaphore = asyncio.Semaphore(concurrency)
        self._serials: dict[str, int] | None = None
        self._warned = False
        # The listing whose every change is recorded: an unchanged index (a 304) needs no pass over it.
        self._settled: IndexListing | None = None
        self._pass = asyncio.Lock()

    async def refresh(self) -> int:
        """One refresh: the Simple index, then every project that moved. Returns how many were recorded.

        Passes never overlap: a second caller waits for the pass under way, then makes its own."""
        async with self._pass:
            snapshot = await self.index.refresh()
            return await self.sync(snapshot)

    async def sync(self, snapshot: IndexSnapshot) -> int:
        listing = snapshot.listing
        if listing.serials is None:
            if not self._warned:
                logger.warning("the upstream's Simple index has no serials: the change feed cannot be kept")
                self._warned = True
            return 0
        now = int(self.clock())
        if listing is self._settled:
            await self.meta.run(self.meta.mark_refresh, now)
            return 0
        if self._serials is None:
            self._serials = await self.meta.run(self.meta.serials)
        current = {name: (display, serial) for name, display, serial in _entries(snapshot)}
        if not self._serials and self.meta.oldest_serial is None:
            baseline = [(name, display, serial) for name, (display, serial) in current.items()]
            last = listing.last_serial if listing.last_serial is not None else max(listing.serials, default=0)
            await self.meta.run(self.meta.baseline, baseline, last, now)
            self._serials = {name: serial for name, _, serial in baseline}
            logger.info("metadata index started at serial %d with %d projects", last, len(baseline))
            self._settled = listing
            return 0
        changes = [
            _Change(name, display, self._serials.get(name), serial)
            for name, (display, serial) in current.items()
            if self._serials.get(name) != serial
        ]
        gone = [name for name in self._serials if name not in current]
        changes += [_Change(name, name, self._serials[name], None) for name in gone]
        feeds = await self._site_feeds() if changes else _SiteFeeds({}, {})
        recorded = sum(await asyncio.gather(*(self._apply(change, snapshot, now, feeds) for change in changes)))
        await self.meta.run(self.meta.mark_refresh, now)
        if changes:
            logger.info("recorded %d of %d project changes", recorded, len(changes))
        if recorded == len(changes):  # else the projects not recorded are tried again next time
            self._settled = listing
        return recorded

    async def _apply(self, change: _Change, snapshot: IndexSnapshot, now: int, feeds: _SiteFeeds) -> int:
        async with self._semaphore:
            try:
                return await self._record(change, snapshot, now, feeds)
            except UpstreamError as exc:
                logger.warning("%s: not recorded this time (%s)", change.normalized, exc)
                return 0

    async def _record(self, change: _Change, snapshot: IndexSnapshot, now: int, feeds: _SiteFeeds) -> int:
        assert self._serials is not None
        stored = await self.meta.run(self.meta.project, change.normalized)
        if change.new is None:
            # The project left the index: its last serial is gone with it; the index's serial at the time
            # it was seen gone is the real serial nearest to the removal.
            row_serial = snapshot.listing.last_serial or change.old or 0
            events = derive_events(None, None, created=False, removed=True, pubdates={}, seen=now)
            await self.meta.run(
                lambda: self.meta.record(
                    change.normalized, stored[0] if stored else change.name, old_serial=change.old, new_serial=None,
                    row_serial=row_serial, events=[(e.version, e.timestamp, e.action) for e in events],
                    releases=None, metadata=None, now=now,
                )
            )  # fmt: skip
            self._serials.pop(change.normalized, None)
            return 1
        new_serial = change.new
        doc = await self.store.project(change.normalized, stale_ok=False)
        if doc is not None and doc.last_serial is not None and doc.last_serial < new_serial:
            # A copy that lags the Simple index (a CDN): recording from it would lose the change. Next pass.
            raise UpstreamUnavailable(doc.url, f"serial {doc.last_serial}, the index says {new_serial}")
        new = releases_of(doc) if doc is not None else None
        old = await self.meta.run(self.meta.releases, change.normalized) if stored and stored[3] else None
        created = change.old is None and stored is None
        pubdates = await self._pubdates(change.normalized, new, old, feeds) if new else {}
        events = derive_events(
            old,
            new,
            created=created,
            removed=False,
            pubdates=pubdates,
            seen=now,
            known_since=stored[2] if stored else None,
            created_at=feeds.created.get(change.normalized),
        )
        await self.meta.run(
            lambda: self.meta.record(
                change.normalized, change.name, old_serial=change.old, new_serial=new_serial, row_serial=new_serial,
                events=[(e.version, e.timestamp, e.action) for e in events], releases=new if new is not None else {},
                metadata=project_metadata(doc) if doc is not None else None, now=now,
            )
        )  # fmt: skip
        self._serials[change.normalized] = new_serial
        return 1

    async def _site_feeds(self) -> _SiteFeeds:
        """The site-wide feeds, read once a pass: the 100 newest releases and the 40 newest projects."""
        base = self.store.upstream.base
        releases = {(project, version): when for project, version, when in await self._feed(base + "rss/updates.xml")}
        created = {project: when for project, _, when in await self._feed(base + "rss/packages.xml")}
        return _SiteFeeds(releases, created)

    async def _feed(self, url: str) -> list[tuple[str, str | None, int]]:
        """(project, version or None, pubDate) of each item, from the item's link; [] if there is no feed."""
        try:
            fetched = await self.store.upstream.get(url)
        except UpstreamError as exc:
            logger.debug("no feed at %s: %s", url, exc)
            return []
        if fetched.status != 200:
            return []
        items = []
        for item in feedparser.parse(fetched.body).entries:
            parts = [p for p in urlsplit(str(item.get("link", ""))).path.split("/") if p]
            if "project" not in parts or not item.get("published_parsed"):
                continue
            tail = parts[parts.index("project") + 1 :]
            if tail:
                version = tail[1] if len(tail) > 1 else None
                items.append((tail[0], version, calendar.timegm(item["published_parsed"])))
        return items

    async def _pubdates(
        self,
        normalized: str,
        new: Mapping[str, StoredRelease],
        old: Mapping[str, StoredRelease] | None,
        feeds: _SiteFeeds,
    ) -> dict[str, int]:
        """When the upstream created each new release: the site feed, else the project's own feed."""
        fresh = set(new) - set(old or {})
        known = {v: feeds.releases[(normalized, v)] for v in fresh if (normalized, v) in feeds.releases}
        if not fresh or set(known) == fresh:
            return known
        url = f"{self.store.upstream.base}rss/project/{path_segment(normalized)}/releases.xml"
        return {version: when for _, version, when in await self._feed(url) if version is not None} | known

    async def run(self, every: float) -> None:
        """Refresh for ever; a failure is logged and tried again at the next turn."""
        while True:
            try:
                await self.refresh()
            except UpstreamError as exc:
                logger.warning("refresh failed: %s", exc)
            except Exception:  # the writer must outlive any bug, or the change feed stops
                logger.exception("refresh failed unexpectedly")
            if self.ready is not None:
                self.ready.set()  # the first pass is over, whatever it found
            await asyncio.sleep(every)


def _entries(snapshot: IndexSnapshot) -> list[tuple[str, str, int]]:
    listing = snapshot.listing
    assert listing.serials is not None
    by_position = {position: name for name, position in snapshot.positions.items()}
    return [(by_position[i], listing.names[i], listing.serials[i]) for i in range(len(listing.names))]


class Crawler:
    """Reads the JSON of every project never read, at most `rate` requests a second, resumably."""

    def __init__(
        self,
        meta: MetaIndex,
        store: DocumentStore,
        *,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.meta = meta
        self.store = store
        self.interval = 1.0 / rate
        self.clock = clock
        self.sleep = sleep
        self.done = 0

    async def run(self, *, limit: int | None = None) -> int:
        """Crawl until every project is known (or `limit` projects were read); returns how many were read."""
        cursor = self.meta.get_meta("crawl_cursor") or ""
        next_at = self.clock()
        while limit is None or self.done < limit:
            batch = await self.meta.run(self.meta.unknown_projects, cursor, 100)
            if not batch:
                if cursor:  # wrap around once: projects added before the cursor since it passed
                    cursor = ""
                    continue
                break
            for normalized in batch:
                if limit is not None and self.done >= limit:
                    break
                wait = next_at - self.clock()
                if wait > 0:
                    await self.sleep(wait)
                next_at = max(next_at, self.clock()) + self.interval
                await self._read(normalized)
                cursor = normalized
                await self.meta.run(self._save_cursor, cursor)
                self.done += 1
                if self.done % 1000 == 0:
                    coverage = await self.meta.run(self.meta.coverage)
                    logger.info(
                        "crawled %d projects (%d of %d known)", self.done, coverage.with_metadata, coverage.projects
                    )
        return self.done

    def _save_cursor(self, cursor: str) -> None:
        with self.meta.transaction() as connection:
            self.meta.set_meta(connection, "crawl_cursor", cursor)

    async def _read(self, normalized: str) -> None:
        try:
            doc = await self.store.project(normalized)
        except UpstreamError as exc:
            logger.warning("crawler: %s not read (%s)", normalized, exc)
            return
        if doc is None:
            await self.meta.run(self.meta.store_releases, normalized, {}, None)
            return
        await self.meta.run(self.meta.store_releases, normalized, releases_of(doc), project_metadata(doc))
