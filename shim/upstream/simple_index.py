"""The Simple index, held in memory: every project's display name and serial.

Loaded in the background at start and refreshed with conditional requests, so that list_packages,
list_packages_with_serial and changelog_last_serial answer from memory, and a call never waits for a
full download while a usable copy exists. A refresh that sees a project's serial rise records when,
so the document cache drops what it holds for that project. A copy older than the one held (a CDN node
that lags another, answering in turn) is not taken: what it lists, the held copy lists as new or newer.
With SHIM_CACHE_URL the replicas share one copy on Redis, fetched by one of them per interval
(shim.upstream.shared_index).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from shim.errors import UpstreamError, UpstreamMalformed
from shim.upstream.answers import Fetched
from shim.upstream.changes import index_changes
from shim.upstream.client import SIMPLE_JSON, Upstream
from shim.upstream.compact import NO_SERIAL
from shim.upstream.parsers import IndexListing, parse_simple_index
from shim.upstream.shared_index import SharedIndex
from shim.upstream.snapshot import IndexSnapshot

__all__ = ["IndexSnapshot", "SimpleIndex", "listing_reach"]

logger = logging.getLogger(__name__)


def listing_reach(listing: IndexListing) -> int | None:
    """The serial a copy of the index has got to: its own, else its projects' highest (None: it gives none)."""
    if listing.last_serial is not None or listing.serials is None:
        return listing.last_serial
    highest = max(listing.serials, default=NO_SERIAL)  # malformed ones are NO_SERIAL, below every serial
    return None if highest == NO_SERIAL else highest


def _sort(snapshot: IndexSnapshot) -> None:
    try:
        snapshot.lookup.build()
    except Exception:  # what needs the lookup sorts it then, and meets the error itself
        logger.exception("sorting the Simple index's lookup failed")


class SimpleIndex:
    def __init__(
        self,
        upstream: Upstream,
        *,
        refresh_every: float,
        clock: Callable[[], float] = time.time,
        shared: SharedIndex | None = None,
    ) -> None:
        self.upstream = upstream
        self.shared = shared  # the copy replicas share (SHIM_CACHE_URL), fetched by one of them per interval
        self.refresh_every = refresh_every
        self.clock = clock
        self.snapshot: IndexSnapshot | None = None
        self._changed_at: dict[str, float] = {}
        self._loading: asyncio.Task[IndexSnapshot] | None = None
        self._malformed: set[str] = set()  # projects whose malformed serial was logged (once, while it lasts)
        self._reach: int | None = None  # how far the held copy goes
        self._older: int | None = None  # the older copy last logged (once, while copies take turns)
        self._sorting: asyncio.Task[None] | None = None

    def changed_at(self, normalized: str) -> float | None:
        """When a refresh last saw `normalized` appear, go, or change serial (None: not since start)."""
        return self._changed_at.get(normalized)

    async def current(self) -> IndexSnapshot:
        """The usable copy; only the very first call waits, for the first load."""
        if self.snapshot is not None:
            return self.snapshot
        return await self.refresh()

    def refresh(self) -> asyncio.Future[IndexSnapshot]:
        """One conditional GET of the index, shared by everyone who asks while it runs."""
        if self._loading is None or self._loading.done():
            self._loading = asyncio.create_task(self._refresh())
        return asyncio.shield(self._loading)

    async def _refresh(self) -> IndexSnapshot:
        previous = self.snapshot
        etag = previous.etag if previous else None
        if self.shared is None:
            return (await self._take(previous, await self._ask(etag)))[0]
        turn = await self.shared.begin(etag, self.clock, self.refresh_every)
        try:
            if turn.copy is not None:  # another replica's, fetched within the interval
                try:
                    return (await self._take(previous, turn.copy, shared=True))[0]
                except UpstreamMalformed as exc:  # damaged on Redis: what the upstream says instead
                    logger.warning("the shared copy of the Simple index is not used: %s", exc.reason)
            sent = turn.revalidates(etag)
            fetched = await self._ask(sent)
            snapshot, taken = await self._take(previous, fetched)
            if taken:
                await self.shared.store(turn, fetched, sent, snapshot.fetched_at, self.refresh_every)
            return snapshot
        finally:
            await self.shared.end(turn)

    async def _ask(self, etag: str | None) -> Fetched:
        return await self.upstream.get(
            self.upstream.simple_index_url, accept=f"{SIMPLE_JSON}, text/html;q=0.1", etag=etag
        )

    async def _take(
        self, previous: IndexSnapshot | None, fetched: Fetched, *, shared: bool = False
    ) -> tuple[IndexSnapshot, bool]:
        """The copy held once `fetched` is taken, and whether it was (False: an older copy, the one held kept)."""
        now = self.clock()
        if fetched.status == 304 and previous is not None:
            self.snapshot = replace(previous, fetched_at=now)
            return self.snapshot, True
        if fetched.status != 200:
            raise UpstreamMalformed(fetched.url, f"the Simple index answered HTTP {fetched.status}")
        try:
            # Hundreds of thousands of projects: parse off the event loop.
            listing = await asyncio.to_thread(parse_simple_index, fetched.body, fetched.content_type, fetched.serial)
            snapshot = await asyncio.to_thread(
                IndexSnapshot.build, listing, fetched.etag, now, "json" in fetched.content_type
            )
        except ValueError as exc:
            raise UpstreamMalformed(fetched.url, str(exc)) from None
        reach = await asyncio.to_thread(listing_reach, listing)
        if previous is not None and reach is not None and self._reach is not None and reach < self._reach:
            if reach != self._older:
                logger.warning(
                    "the Simple index answered an older copy (serial %d, %d held): the one held is kept",
                    reach,
                    self._reach,
                )
                self._older = reach
            self.snapshot = replace(previous, fetched_at=now)  # the upstream answers, and nothing newer came
            return self.snapshot, False
        if previous is not None:
            for name in await asyncio.to_thread(index_changes, previous, snapshot):
                self._changed_at[name] = now
        self.snapshot = snapshot
        if not snapshot.lookup.built:  # the first copy: answered from now, its lookup sorted in a worker thread
            self._sorting = asyncio.create_task(asyncio.to_thread(_sort, snapshot))
        self._reach = reach
        self._log_malformed(listing)
        logger.info(
            "Simple index loaded: %d projects, last serial %s (%s%s)",
            len(listing.names),
            listing.last_serial,
            "JSON" if snapshot.is_json else "HTML, no per-project serials",
            "; the copy another replica fetched, from Redis" if shared else "",
        )
        return snapshot, True

    def _log_malformed(self, listing: IndexListing) -> None:
        fresh = [f"{name} ({given})" for name, given in listing.malformed.items() if name not in self._malformed]
        if fresh:
            logger.warning(
                "the Simple index gives %d project(s) no valid _last-serial; they have no serial until it does: %s",
                len(fresh),
                ", ".join(fresh[:10]) + (", ..." if len(fresh) > 10 else ""),
            )
        self._malformed = set(listing.malformed)

    async def run(self) -> None:
        """Refresh for ever, every `refresh_every` seconds; a failure is logged and tried again later."""
        while True:
            try:
                await self.refresh()
            except UpstreamError as exc:
                logger.warning("Simple index refresh failed: %s", exc)
            except Exception:  # the refresher must outlive any bug: calls would wait on a dead copy
                logger.exception("Simple index refresh failed unexpectedly")
            await asyncio.sleep(self.refresh_every)
