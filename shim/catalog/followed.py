"""The serials a process that does not write the change feed reads from the catalog: the floors of its documents.

The writer, in another process, may be ahead of this one's copy of the Simple index; a document read here is never
older than the serial it recorded. Each project's serial is read once a second at most: per call it was a trip to
a worker thread and the catalog file, more than the rest of a cache-hit call twice over. The second is nothing
beside the writer's own lag behind the upstream (its feed poll, SHIM_FEED_POLL).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cachetools import TTLCache

from shim.catalog.reads import CatalogReader

__all__ = ["FOLLOWED_TTL", "FollowedSerials"]

FOLLOWED_TTL = 1.0  # seconds a project's serial, as the catalog reports it, is taken as read


class FollowedSerials:
    def __init__(
        self, catalog: CatalogReader, *, ttl: float = FOLLOWED_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.catalog = catalog
        self._read: TTLCache[str, int | None] = TTLCache(maxsize=65_536, ttl=ttl, timer=clock)

    async def serial_of(self, normalized: str) -> int | None:
        """The serial the catalog reports for the project, as read within the last `ttl` seconds."""
        try:
            return self._read[normalized]
        except KeyError:
            serial = await self.catalog.run(self.catalog.serial_of, normalized)
            self._read[normalized] = serial
            return serial
