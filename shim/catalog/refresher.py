"""The catalog's one writer: the refresher.

It re-reads the Simple index (conditionally), compares every project's serial with what the catalog holds,
and for each project that moved reads its JSON (and, for new releases, its RSS feed), derives the change
rows, and writes them in one transaction. A project whose JSON cannot be read keeps its old serial, so the
next refresh tries again: nothing seen is lost. It runs as a task of its own: a request never waits for it.

The feed poller (shim.catalog.poller) is its fast path: `catch_up` records what the RSS feeds name, from each
project's JSON, with the same rules and under the same lock, between two reads of the Simple index.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

from shim.catalog.changes import derive_events, project_metadata, releases_of
from shim.catalog.feeds import SiteFeedReader, SiteFeeds, release_times
from shim.catalog.held import HeldSerials
from shim.catalog.problems import CatalogUnavailable
from shim.catalog.rows import ListedProject, ProjectRecord, StoredRelease
from shim.catalog.writes import CatalogWriter
from shim.errors import UpstreamError, UpstreamUnavailable
from shim.upstream.documents import DocumentStore
from shim.upstream.parsers import FeedItem, IndexListing, ProjectDoc
from shim.upstream.simple_index import IndexSnapshot, SimpleIndex, listing_reach

__all__ = ["Refresher", "missing_serials"]

logger = logging.getLogger(__name__)

# A release the feeds show as created this long before the catalog first saw its project's current serial is one
# that serial covers: the Simple index copy it came from may be ten minutes old (a CDN's), the clocks a little apart.
COVERED = 900
LISTED_AT_ONCE = 50_000  # projects of an index without serials written in one transaction


def missing_serials(snapshot: IndexSnapshot) -> str:
    """What the change feed lacks on this Simple index, and what would give it: its faults and its log say it."""
    what = "its JSON gives no _last-serial" if snapshot.is_json else "it answers HTML only"
    return (
        f"the upstream's Simple index has no per-project serials ({what}); the change feed needs a JSON Simple index "
        "(PEP 691) with serials: each project's _last-serial, and X-PyPI-Last-Serial, as Warehouse serves"
    )


@dataclass(frozen=True)
class _Change:
    normalized: str
    name: str
    old: int | None
    new: int | None


class Refresher:
    def __init__(
        self,
        catalog: CatalogWriter,
        store: DocumentStore,
        index: SimpleIndex,
        *,
        concurrency: int = 4,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        ready: asyncio.Event | None = None,
    ) -> None:
        self.catalog = catalog
        self.sleep = sleep
        self.ready = ready
        self.store = store
        self.index = index
        self.clock = clock
        self._semaphore = asyncio.Semaphore(concurrency)
        self._serials: HeldSerials | None = None
        self._warned = False
        self._behind: int | None = None  # the serial of the lagging copy last logged (once while it lasts)
        # The listing whose every change is recorded: an unchanged index (a 304) needs no pass over it.
        self._settled: IndexListing | None = None
        self._listed: IndexSnapshot | None = None  # the last snapshot without serials whose names were written
        self._pass = asyncio.Lock()
        self._given: int | None = None  # the highest serial the feed gave when the pass under way began
        # The site feeds, read conditionally: shared with the feed poller, so that a pass costs a 304 for them.
        self.feeds = SiteFeedReader(store.upstream)

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
                logger.warning("%s", missing_serials(snapshot))
                self._warned = True
            if listing is not self._settled:
                # No change feed without serials, but the catalog still lists every project, so that what calls read
                # and what the crawler reads is kept: search, browse and user_packages answer from it. Only the names
                # the last listing lacked are written (all of them once per process: it is idempotent).
                listed = _unlisted(snapshot, self._listed if self._settled is not None else None)
                while batch := list(islice(listed, LISTED_AT_ONCE)):  # not a list of them all: a million, at most
                    await self.catalog.run(self.catalog.list_projects, batch, int(self.clock()))
                self._settled, self._listed = listing, snapshot
            return 0
        now = int(self.clock())
        if listing is self._settled:
            await self.catalog.run(self.catalog.mark_refresh, now)
            return 0
        if self.catalog.oldest_serial is None:  # the first look with serials (the projects may be listed already)
            last = listing.last_serial if listing.last_serial is not None else listing_reach(listing) or 0
            counted = [0]
            await self.catalog.run(self.catalog.baseline, _entries(snapshot, counted), last, now)
            await self.catalog.run(self.catalog.mark_index_serial, last)
            self._serials = HeldSerials(snapshot)
            logger.info("catalog started at serial %d with %d projects", last, counted[0])
            self._settled = listing
            return 0
        if self._serials is None:
            self._serials = await self._held(snapshot)
        # Not the catalog's highest serial: the feed poller records serials the Simple index shows only later.
        indexed = await self.catalog.run(self.catalog.index_serial)
        if listing.last_serial is not None and indexed is not None and listing.last_serial < indexed:
            # A copy older than one the catalog was refreshed from (a CDN node behind, seen after a restart):
            # nothing in it is news, and its older serials and missing projects would be recorded as changes.
            if self._behind != listing.last_serial:
                logger.warning(
                    "the Simple index copy (serial %d) is behind the one the catalog was refreshed from (%d): "
                    "not read for changes",
                    listing.last_serial,
                    indexed,
                )
                self._behind = listing.last_serial
            return 0
        reach = listing_reach(listing)
        held = self._serials
        candidates = await asyncio.to_thread(held.candidates, snapshot)  # the others are as the catalog holds them
        changes, gone = [], []
        for name in candidates:
            position, before = snapshot.position_of(name), held.get(name)
            serial = None if position is None else snapshot.serial_at(position)
            # A project's serial only ever rises: a lower one is a lagging copy of that project, not a change.
            if position is not None and serial is not None and (before is None or serial > before):
                changes.append(_Change(name, listing.names[position], before, serial))
            # A project still listed, but with a malformed serial, has not gone: it waits for a readable one; nor
            # has one the copy predates (the feed poller recorded it since, at a serial above the copy's).
            elif position is None and before is not None and (reach is None or before <= reach):
                gone.append(_Change(name, name, before, None))
        changes += gone
        feeds = await self.feeds.site() if changes else SiteFeeds()
        self._given = await self.catalog.run(self.catalog.last_serial)
        recorded = sum(await asyncio.gather(*(self._apply(change, snapshot, now, feeds) for change in changes)))
        await self.catalog.run(self.catalog.mark_refresh, now)
        # The copy read for changes, kept at every pass: a catalog from before it was kept has it at once.
        if reach is not None and (indexed is None or reach >= indexed):
            await self.catalog.run(self.catalog.mark_index_serial, reach)
        if changes:
            logger.info("recorded %d of %d project changes", recorded, len(changes))
        if recorded == len(changes):  # else the projects not recorded are tried again next time
            self._settled = listing
        held.rebase(snapshot, candidates)
        return recorded

    async def _held(self, snapshot: IndexSnapshot | None) -> HeldSerials:
        """The serials the catalog's file holds (read once per process: then kept as the passes change them)."""
        return await self.catalog.run(self.catalog.listed_serials, lambda rows: HeldSerials.of_rows(rows, snapshot))

    async def _apply(self, change: _Change, snapshot: IndexSnapshot, now: int, feeds: SiteFeeds) -> int:
        async with self._semaphore:
            try:
                return await self._record(change, snapshot, now, feeds)
            except UpstreamError as exc:
                logger.warning("%s: not recorded this time (%s)", change.normalized, exc)
                return 0

    async def _record(self, change: _Change, snapshot: IndexSnapshot, now: int, feeds: SiteFeeds) -> int:
        assert self._serials is not None
        stored = await self.catalog.run(self.catalog.project, change.normalized)
        if change.new is None:
            # The project left the index: its last serial is gone with it; the index's serial at the time
            # it was seen gone is the real serial nearest to the removal.
            row_serial = snapshot.listing.last_serial or change.old or 0
            events = derive_events(None, None, created=False, removed=True, pubdates={}, seen=now)
            await self.catalog.run(
                lambda: self.catalog.record(
                    change.normalized, stored.name if stored else change.name, old_serial=change.old, new_serial=None,
                    row_serial=row_serial, events=events,
                    releases=None, metadata=None, now=now, given=self._given,
                )
            )  # fmt: skip
            self._serials.pop(change.normalized)
            return 1
        doc = await self.store.project(change.normalized, stale_ok=False, by_catalog=True)
        if doc is not None and doc.last_serial is not None and doc.last_serial < change.new:
            # A copy that lags the Simple index (a CDN): recording from it would lose the change. Next pass.
            raise UpstreamUnavailable(doc.url, f"serial {doc.last_serial}, the Simple index says {change.new}")
        await self._write(change, doc, stored, now, feeds)
        return 1

    async def _write(
        self, change: _Change, doc: ProjectDoc | None, stored: ProjectRecord | None, now: int, feeds: SiteFeeds
    ) -> None:
        """Record one project's serial change, from its JSON as read now (`doc`) and what the catalog held."""
        assert self._serials is not None and change.new is not None
        new_serial = change.new
        new = releases_of(doc) if doc is not None else None
        old = await self.catalog.run(self.catalog.releases, change.normalized) if stored and stored.known else None
        created = change.old is None and stored is None
        pubdates = await release_times(self.store.upstream, change.normalized, new, old, feeds) if new else {}
        events = derive_events(
            old,
            new,
            created=created,
            removed=False,
            pubdates=pubdates,
            seen=now,
            known_since=stored.seen_at if stored else None,
            created_at=feeds.created.get(change.normalized),
        )
        await self.catalog.run(
            lambda: self.catalog.record(
                change.normalized, change.name, old_serial=change.old, new_serial=new_serial, row_serial=new_serial,
                events=events, releases=new if new is not None else {},
                metadata=project_metadata(doc) if doc is not None else None, now=now, given=self._given,
            )
        )  # fmt: skip
        self._serials[change.normalized] = new_serial

    async def catch_up(self, items: Sequence[FeedItem], feeds: SiteFeeds) -> tuple[set[FeedItem], int]:
        """The feed poller's pass: each project the feed `items` name that the catalog may not hold as they say is
        read from its JSON and recorded at that JSON's serial when it is above the catalog's, as a refresh would
        record it (a project never read too: the item says it exists). Returns the items settled (recorded, or
        found held) and how many projects were recorded; the others (a JSON copy that lags the feed, or that
        cannot be read) are left for the next poll. Never at once with a refresh: it takes the same lock."""
        async with self._pass:
            # The fast path starts from a Simple index the refresher has read: the catalog's starting point.
            if await self.catalog.run(self.catalog.get_meta, "index_serial") is None:
                return set(), 0
            if self._serials is None:
                self._serials = await self._held(self.index.snapshot)
            self._given = await self.catalog.run(self.catalog.last_serial)
            now = int(self.clock())
            wanted: dict[str, list[FeedItem]] = {}
            for item in items:
                wanted.setdefault(item.project, []).append(item)
            outcomes = await asyncio.gather(*(self._catch_up(name, told, feeds, now) for name, told in wanted.items()))
        settled = {item for told, (done, _) in zip(wanted.values(), outcomes, strict=True) if done for item in told}
        return settled, sum(recorded for _, recorded in outcomes)

    async def _catch_up(self, normalized: str, told: list[FeedItem], feeds: SiteFeeds, now: int) -> tuple[bool, int]:
        """(settled, recorded) for one project the feeds name."""
        async with self._semaphore:
            try:
                return await self._catch_up_project(normalized, told, feeds, now)
            except UpstreamError as exc:
                logger.warning("%s: not recorded from the feeds this time (%s)", normalized, exc)
                return False, 0

    async def _catch_up_project(
        self, normalized: str, told: list[FeedItem], feeds: SiteFeeds, now: int
    ) -> tuple[bool, int]:
        assert self._serials is not None
        held = self._serials.get(normalized)
        stored = await self.catalog.run(self.catalog.project, normalized)
        releases = await self.catalog.run(self.catalog.releases, normalized) if stored and stored.known else None
        if all(_holds(item, held, stored, releases) for item in told):
            return True, 0
        doc = await self.store.project(normalized, stale_ok=False, by_catalog=True)
        new = releases_of(doc) if doc is not None else {}
        if doc is None or any(item.version is not None and item.version not in new for item in told):
            # A JSON copy that lags the feed (a CDN): the change would be lost. The next poll asks again.
            return False, 0
        serial = doc.last_serial
        if serial is None:  # nothing to record a change under (the Simple index's pass says what is missing)
            return True, 0
        if held is not None and serial <= held:
            # Nothing new: what the JSON shows is kept, so that the next item of this project is told from the catalog.
            if stored is not None and not stored.known:
                await self.catalog.run(self.catalog.store_releases, normalized, new, project_metadata(doc))
            return True, 0
        await self._write(_Change(normalized, doc.name, held, serial), doc, stored, now, feeds)
        return True, 1

    async def run(self, every: float) -> None:
        """Refresh for ever; a failure is logged and tried again at the next turn."""
        while True:
            try:
                await self.refresh()
            except UpstreamError as exc:
                logger.warning("refresh failed: %s", exc)
            except CatalogUnavailable as exc:  # an operator's to fix: the file is left as it is
                logger.error("the catalog's writer waits: %s; it tries again in %g s", exc, every)
            except Exception:  # the writer must outlive any bug, or the change feed stops
                logger.exception("refresh failed unexpectedly")
            if self.ready is not None:
                self.ready.set()  # the first pass is over, whatever it found
            await self.sleep(every)


def _holds(
    item: FeedItem, held: int | None, stored: ProjectRecord | None, releases: dict[str, StoredRelease] | None
) -> bool:
    """Whether the catalog holds what a feed item tells: the project listed (`held`: its serial) and, for a release,
    that release read from its JSON, or created well before the serial the catalog holds (which covers it)."""
    if held is None:
        return False
    if item.version is None or (releases is not None and item.version in releases):
        return True
    return stored is not None and item.published < stored.seen_at - COVERED


def _entries(snapshot: IndexSnapshot, counted: list[int]) -> Iterator[ListedProject]:
    """The listed projects with a serial (one whose serial is malformed has none to compare), one at a time (the
    catalog writes them as they come: no list of them all); `counted[0]` says how many came."""
    names = snapshot.listing.names
    for position, normalized in snapshot.projects():
        serial = snapshot.serial_at(position)
        if serial is not None:
            counted[0] += 1
            yield ListedProject(normalized, names[position], serial)


def _unlisted(snapshot: IndexSnapshot, before: IndexSnapshot | None) -> Iterator[tuple[str, str]]:
    """(normalised, display name) of each project whose display name the listing `before` lacked (all without it)."""
    names = snapshot.listing.names
    for position, normalized in snapshot.projects():
        display = names[position]
        earlier = None if before is None else before.position_of(normalized)
        if earlier is None or before is None or before.listing.names[earlier] != display:
            yield normalized, display
