"""The crawler: reads the JSON of every project the catalog has never read, at a bounded rate, resumably.

It resumes from its cursor after a restart and wraps around once for projects added behind it. It runs
as a task of its own (or as `pypi-xmlrpc-shim catalog crawl`): a request never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from shim.catalog.changes import project_metadata, releases_of
from shim.catalog.problems import CatalogUnavailable
from shim.catalog.writes import CatalogWriter
from shim.errors import UpstreamError
from shim.upstream.documents import DocumentStore

__all__ = ["Crawler"]

logger = logging.getLogger(__name__)


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
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.interval = 1.0 / rate
        self.clock = clock
        self.sleep = sleep
        self.retry = retry  # seconds between tries of a catalog it cannot write
        self.done = 0

    async def run(self, *, limit: int | None = None) -> int:
        """Crawl until every project is known (or `limit` projects were read); returns how many were read.

        A catalog it cannot write (an operator's error) is tried again every `retry` seconds, from the cursor."""
        while True:
            try:
                return await self._crawl(limit)
            except CatalogUnavailable as exc:
                logger.error("the crawler waits: %s; it tries again in %g s", exc, self.retry)
                await self.sleep(self.retry)

    async def _crawl(self, limit: int | None) -> int:
        cursor = self.catalog.get_meta("crawl_cursor") or ""
        next_at = self.clock()
        while limit is None or self.done < limit:
            batch = await self.catalog.run(self.catalog.unknown_projects, cursor, 100)
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
                await self.catalog.run(self.catalog.save_cursor, cursor)
                self.done += 1
                if self.done % 1000 == 0:
                    coverage = await self.catalog.run(self.catalog.coverage)
                    logger.info(
                        "crawled %d projects (%d of %d known)", self.done, coverage.with_metadata, coverage.projects
                    )
        return self.done

    async def _read(self, normalized: str) -> None:
        try:
            doc = await self.store.project(normalized)
        except UpstreamError as exc:
            logger.warning("crawler: %s not read (%s)", normalized, exc)
            return
        if doc is None:
            await self.catalog.run(self.catalog.store_releases, normalized, {}, None)
            return
        await self.catalog.run(self.catalog.store_releases, normalized, releases_of(doc), project_metadata(doc))
