"""The change feed's fast path: the feed poller.

Every SHIM_FEED_POLL seconds it reads the upstream's site RSS feeds (the newest releases, the newest projects), each
conditionally (an unchanged feed is a 304 of a few hundred bytes), and hands every item it has not settled yet to the
refresher's `catch_up`, which reads that project's JSON (its serial and files) and records the change rows, under the
refresher's lock and rules. So a release or a new project reaches the change feed within a poll, not at the Simple
index's next read (SHIM_INDEX_REFRESH), which still records what the feeds never show: removals, yanks, files added
to a release later. An item whose JSON lags the feed or fails is asked again at the next polls, then left to that
pass. Over an upstream without the feeds, everything comes from the Simple index: the poller asks for them again
only at its interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from shim.catalog.feeds import Freshness, times
from shim.catalog.problems import CatalogUnavailable
from shim.catalog.refresher import Refresher
from shim.errors import UpstreamError
from shim.upstream.client import SITE_FEEDS
from shim.upstream.parsers import FeedItem

__all__ = ["MAX_TRIES", "FeedPoller"]

logger = logging.getLogger(__name__)

# Polls an item is asked again while its project's JSON lags the feed or cannot be read; then it is the Simple
# index's pass's to record.
MAX_TRIES = 10


class FeedPoller:
    def __init__(
        self,
        refresher: Refresher,
        *,
        every: float,
        recheck: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.refresher = refresher
        self.reader = refresher.feeds
        self.every = every
        self.recheck = recheck  # an upstream without the feeds is asked for them again this often
        self.sleep = sleep
        self.absent = False  # the upstream answered 404 for both feeds last time
        self._settled: set[FeedItem] = set()  # items of the feeds as last read that the catalog holds
        self._pending: dict[FeedItem, int] = {}  # items it does not hold yet -> tries left

    async def poll(self) -> int:
        """One poll: both site feeds, then each item not settled yet. Returns how many projects were recorded."""
        reads = [await self.reader.read(feed) for feed in SITE_FEEDS]
        absent = all(read.freshness is Freshness.ABSENT for read in reads)
        if absent != self.absent:
            if absent:
                logger.warning(
                    "the upstream has no RSS feeds (%s answers 404): every change waits for the Simple index's "
                    "next read (SHIM_INDEX_REFRESH, every %g s); asked for them again at that interval",
                    self.reader.upstream.site_feed_url(SITE_FEEDS[0]),
                    self.recheck,
                )
            else:
                logger.info("the upstream's RSS feeds answer: the change feed follows them again")
            self.absent = absent
        updates, packages = reads
        listed = {*updates.items, *packages.items}
        # The feeds show only the newest: an item gone from them needs no remembering.
        self._settled &= listed
        for item in listed - self._settled:
            self._pending.setdefault(item, MAX_TRIES)
        if not self._pending:
            return 0
        settled, recorded = await self.refresher.catch_up(list(self._pending), times(updates.items, packages.items))
        for item in list(self._pending):
            if item in settled:
                del self._pending[item]
                self._settled.add(item)
                continue
            self._pending[item] -= 1
            if self._pending[item] <= 0:
                # Given up on, not settled: left to the Simple index's read, and never taken up again while the
                # feeds still show it (or it would be read twice a poll for as long as it stays there).
                del self._pending[item]
                self._settled.add(item)
                logger.info("%s %s: left to the Simple index's next read", item.project, item.version or "")
        if recorded:
            logger.info("recorded %d project change(s) from the RSS feeds", recorded)
        return recorded

    async def run(self) -> None:
        """Poll for ever, a turn every `every` seconds (`recheck` while the upstream has no feeds); a failure is
        logged and tried again at the next turn. A turn waits for a refresh under way, and records nothing before
        the refresher's first pass has made the catalog's starting point."""
        while True:
            await self.sleep(self.recheck if self.absent else self.every)
            try:
                await self.poll()
            except UpstreamError as exc:
                logger.warning("feed poll failed: %s", exc)
            except CatalogUnavailable as exc:  # an operator's to fix: the refresher's log says so too
                logger.error("the feed poller waits: %s", exc)
            except Exception:  # the fast path must outlive any bug: the Simple index's pass would be all that is left
                logger.exception("feed poll failed unexpectedly")
