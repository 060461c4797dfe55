"""The Simple index shared by replicas (SHIM_CACHE_URL): fetched by one of them per refresh interval, not by each.

The whole index (tens of MB for the public one, every project's name and serial) is stored on Redis once, compressed
(15 MB for 927,088 projects: README, "Replicas on one Redis"), with its URL, ETag, content type, serial and
fetched-at. A replica whose refresh is due looks there first: a copy another replica fetched within
SHIM_INDEX_REFRESH is taken without asking the upstream (parsed here, in a worker thread, as a fetched one is; only
its header is read when it is the copy this replica holds). Else the replica that takes the index's lock fetches and
stores what it fetched once it parsed: a conditional request when Redis holds the copy it holds (a 304 extends that
one), else a full one, so that there is a copy to take (Redis emptied, or the copy expired: one full download, once,
rather than a 304 for each replica ever after); another that is due meanwhile waits for it (polling the lock, `POLL`
seconds apart, at most the lock's time: the upstream deadline and `LOCK_SLACK`) and takes what it stored, or fetches
itself when nothing came.

On Redis the copy lives `KEEP` refresh intervals; while Redis is away each replica refreshes its own, as without it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shim.shared.availability import SharedUnavailable
from shim.shared.records import Header, Record, SharedRecords
from shim.upstream.answers import Fetched

if TYPE_CHECKING:  # the Redis client is loaded only where SHIM_CACHE_URL is set (shim.shared.availability)
    from shim.shared.store import SharedRedis


__all__ = ["KEEP", "LOCK_SLACK", "POLL", "SharedIndex", "Turn"]

NAME = "simple"
KEEP = 3  # refresh intervals a stored copy lives: one to be taken as it is, the others to be revalidated
POLL = 0.05  # seconds between a waiting replica's looks at the lock of a refresh another holds
LOCK_SLACK = 15.0  # seconds a lock outlasts the upstream deadline: parsing and storing tens of MB


@dataclass(frozen=True)
class Turn:
    """A replica's turn to refresh: the copy to take (`copy`, fetched by another replica; a 304 when it is the one
    held here), else the lock it holds (`token`, None when Redis is away or a lock outlived its holder), and the
    stored copy as read (`header`)."""

    copy: Fetched | None = None
    header: Header | None = None
    token: str | None = None

    def revalidates(self, etag: str | None) -> str | None:
        """The ETag to send: none when this turn's fetch must bring a body to store, as Redis holds no copy of the
        one held here (emptied, or expired) and a 304 would leave the others nothing to take."""
        if self.token is not None and (self.header is None or self.header.meta.get("etag") != etag):
            return None
        return etag


def _fetched(header: Header, body: bytes | None, etag: str | None) -> Fetched | None:
    meta = header.meta
    url, stored_etag, content_type, serial = (
        meta.get("url"),
        meta.get("etag"),
        meta.get("content_type"),
        meta.get("serial"),
    )
    valid = isinstance(url, str) and isinstance(stored_etag, str | None) and isinstance(content_type, str)
    if not valid or type(serial) not in (int, type(None)):
        return None
    assert isinstance(url, str) and isinstance(content_type, str)
    if etag is not None and stored_etag == etag:
        return Fetched(url, 304, b"", content_type, etag, None, serial)
    if body is None:
        return None
    return Fetched(url, 200, body, content_type, stored_etag, None, serial)


class SharedIndex:
    def __init__(self, shared: SharedRedis, *, lock_timeout: float, poll: float = POLL) -> None:
        self.records = SharedRecords(shared, "index")
        self.lock_timeout = lock_timeout
        self.poll = poll

    async def begin(self, etag: str | None, clock: Callable[[], float], within: float) -> Turn:
        """The turn of a refresh due now, for the replica holding the copy of `etag`; never raises."""
        try:
            header = await self.records.header(NAME)
            copy = await self._recent(header, etag, clock, within)
            if copy is not None:
                return Turn(copy, header)
            token = await self.records.acquire(NAME, self.lock_timeout)
            if token is None:  # another replica refreshes it now: what it stores is ours too
                await self.records.wait(NAME, timeout=self.lock_timeout, poll=self.poll)
                token = await self.records.acquire(NAME, self.lock_timeout)
            # Stored by another replica since the first look (it let go of the lock, or this one waited on it).
            header = await self.records.header(NAME)
            copy = await self._recent(header, etag, clock, within)
            if copy is not None:
                if token is not None:
                    await self.records.release(NAME, token)
                return Turn(copy, header)
            return Turn(None, header, token)
        except SharedUnavailable:
            return Turn()

    async def _recent(
        self, header: Header | None, etag: str | None, clock: Callable[[], float], within: float
    ) -> Fetched | None:
        """The stored copy when another replica fetched it within `within` seconds, else None."""
        if header is None or clock() - header.fetched_at >= within:
            return None
        same = etag is not None and header.meta.get("etag") == etag
        body = None if same else await self.records.body(NAME, header)
        return _fetched(header, body, etag)

    async def store(self, turn: Turn, fetched: Fetched, sent_etag: str | None, fetched_at: float, every: float) -> None:
        """What this replica's turn fetched (and parsed) at `fetched_at`, for the others; never raises."""
        meta = {
            "url": fetched.url,
            "etag": fetched.etag if fetched.status == 200 else sent_etag,
            "content_type": fetched.content_type,
            "serial": fetched.serial,
            "fetched_at": fetched_at,
        }
        ttl = KEEP * every
        with contextlib.suppress(SharedUnavailable):
            if fetched.status == 200:
                await self.records.write(NAME, Record(meta, fetched.body), ttl)
            elif turn.header is not None and sent_etag is not None and turn.header.meta.get("etag") == sent_etag:
                meta["content_type"] = turn.header.meta.get("content_type", fetched.content_type)
                await self.records.touch(NAME, turn.header, meta, ttl)

    async def end(self, turn: Turn) -> None:
        if turn.token is not None:
            with contextlib.suppress(SharedUnavailable):
                await self.records.release(NAME, turn.token)
