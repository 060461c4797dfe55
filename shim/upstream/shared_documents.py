"""The document cache shared by replicas (SHIM_CACHE_URL): each document asked of the upstream once per TTL by all.

Two levels. The first stays in process (`MemoryStorage`, with each document's parsed form and derived bodies): a
hit there never touches Redis nor parses again. On a local miss, or a local entry that is not fresh, the one load
of the key (concurrent misses in process still share it) reads the shared entry and adopts it when it is newer (by
fetched-at): parsed once here, kept locally, and judged by the same ETag/serial/floor/changed-at/stale-if-error
policy as a copy of this replica's own. Only when that does not do is the upstream asked, by one replica at a time:
the one that takes the key's lock (SET NX PX, a token of its own, released by compare-and-delete) fetches and
stores; the others poll the lock every `POLL` seconds and adopt what it stored. The lock lasts the upstream
deadline and `LOCK_SLACK`: a replica that dies mid-fetch delays the others that long at most, after which one of
them fetches itself.

On Redis an entry keeps its bytes-level fields only (status, body, URL, ETag, serial, content type, headers,
fetched-at, floor), its body compressed (shim.shared.records), for as long as the policy can still use it: the hard
TTL, or the soft TTL and SHIM_STALE_IF_ERROR when longer, for a 200; SHIM_NOT_FOUND_TTL for a 404. A document that
stores (compressed) larger than `MAX_SHARED_BYTES` is kept locally only.

Redis away (`SharedUnavailable`, at once while it is): the load goes on exactly as in process, never an error.

What Redis needs for it (`maxmemory` and its policy): see `shim.wiring.shared_store`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, TypeGuard, Unpack

from shim.shared.availability import SharedUnavailable
from shim.shared.records import Record, SharedRecords
from shim.upstream.cache import Asked, DocumentCache, Entry, Loader, Policy, Storage
from shim.upstream.urls import redact_url

if TYPE_CHECKING:  # the Redis client is loaded only where SHIM_CACHE_URL is set (shim.shared.availability)
    from shim.shared.store import SharedRedis


__all__ = ["LOCK_SLACK", "MAX_SHARED_BYTES", "POLL", "SharedDocumentCache", "entry_record", "record_entry"]

logger = logging.getLogger(__name__)

MAX_SHARED_BYTES = 8 * 1024 * 1024  # a document storing more (compressed) is kept in process only
POLL = 0.02  # seconds between a waiting replica's looks at the lock of a fetch another holds
LOCK_SLACK = 5.0  # seconds a lock outlasts the upstream deadline: parsing and storing what was fetched


def entry_record(entry: Entry) -> Record:
    """What Redis keeps of `entry`: its bytes-level fields, never its parsed form nor its derived bodies."""
    meta = {
        "status": entry.status,
        "url": entry.url,
        "fetched_at": entry.fetched_at,
        "etag": entry.etag,
        "serial": entry.serial,
        "content_type": entry.content_type,
        "headers": entry.headers,
        "floor": entry.floor,
    }
    return Record(meta, entry.body)


def record_entry(record: Record) -> Entry | None:
    """The entry `record` holds, or None when it is not one (a value of another version, or damaged)."""
    meta = record.meta
    headers = meta.get("headers")
    valid = (
        meta.get("status") in (200, 404)
        and isinstance(meta.get("url"), str)
        and type(meta.get("fetched_at")) in (int, float)
        and isinstance(meta.get("etag"), str | None)
        and all(type(meta.get(name)) in (int, type(None)) for name in ("serial", "floor"))
        and isinstance(meta.get("content_type"), str)
        and isinstance(headers, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    )
    if not valid:
        return None
    return Entry(
        status=meta["status"],
        body=record.body,
        url=meta["url"],
        fetched_at=float(meta["fetched_at"]),
        etag=meta.get("etag"),
        serial=meta.get("serial"),
        content_type=meta["content_type"],
        headers=dict(meta["headers"]),
        floor=meta.get("floor"),
    )


class SharedDocumentCache(DocumentCache):
    """A `DocumentCache` whose loads look at, wait on and fill the entries on Redis (`shared`) first."""

    adopts = True

    def __init__(
        self,
        storage: Storage,
        *,
        shared: SharedRedis,
        lock_timeout: float,
        poll: float = POLL,
        max_shared_bytes: int = MAX_SHARED_BYTES,
        **policy: Unpack[Policy],
    ) -> None:
        super().__init__(storage, **policy)
        self.shared = shared
        self.records = SharedRecords(shared, "document")
        self.lock_timeout = lock_timeout
        self.poll = poll
        self.max_shared_bytes = max_shared_bytes

    def shared_ttl(self, entry: Entry) -> float:
        """The seconds left in which the policy can still use `entry`: how long Redis keeps it."""
        keep = self.not_found_ttl if entry.status == 404 else max(self.hard_ttl, self.soft_ttl + self.stale_if_error)
        return entry.fetched_at + keep - self.clock()

    async def _load(self, key: str, loader: Loader, entry: Entry | None, asked: Asked) -> Entry:
        token = None
        try:
            entry = await self._newer(key, entry, asked)
            if self._answers(entry, asked):
                self.counted("shared")
                return entry
            token = await self.records.acquire(key, self.lock_timeout)
            if token is not None:
                # Another replica may have stored it and let go of the lock since the look above: look once more.
                entry = await self._newer(key, entry, asked)
                if self._answers(entry, asked):
                    self.counted("shared")
                    return entry
            else:  # another replica fetches it: what it stores is ours too
                await self.records.wait(key, timeout=self.lock_timeout, poll=self.poll)
                found = await self._newer(key, entry, asked)
                if found is not entry and found is not None and self._settles(found, asked):
                    self.counted("shared")
                    return found
                entry = found
                token = await self.records.acquire(key, self.lock_timeout)  # None: a lock that outlived its holder
        except SharedUnavailable:
            pass  # in process from here, as without Redis
        try:
            fresh = await self._fetched(key, loader, self._revalidating(entry, asked), asked.floor)
            with contextlib.suppress(SharedUnavailable):
                await self._share(key, fresh)
            return fresh
        finally:
            if token is not None:
                with contextlib.suppress(SharedUnavailable):
                    await self.records.release(key, token)

    def _flight(self, key: str, asked: Asked) -> str:
        """A load here may end on another replica's copy without asking the upstream: only a caller that asked as
        much (a stale copy allowed or not, the same serial floor) may join it."""
        return f"{key}\0{asked.stale_ok}\0{asked.floor}"

    def _answers(self, entry: Entry | None, asked: Asked) -> TypeGuard[Entry]:
        """Whether `entry` answers this load without asking the upstream: fresh, and a stale copy may do."""
        return entry is not None and asked.stale_ok and self._fresh(entry, asked.changed_at, asked.floor, True)

    async def _newer(self, key: str, held: Entry | None, asked: Asked) -> Entry | None:
        """The shared entry for `key`, adopted and kept locally, when it is newer than `held`; else `held`."""
        read = await self.records.read(key)
        found = record_entry(read[1]) if read is not None else None
        if found is None or (held is not None and found.fetched_at <= held.fetched_at):
            return held
        if held is not None and held.parsed is not None and (held.status, held.body) == (found.status, found.body):
            # The same document confirmed later (a 304 elsewhere): its parsed form and derived bodies still hold.
            found.parsed, found.parsed_bytes, found.variants = held.parsed, held.parsed_bytes, held.variants
        elif found.status == 200 and asked.adopt is not None:
            try:
                await asked.adopt(found)
            except ValueError as exc:
                logger.warning("the shared copy of %s is malformed, not used: %s", redact_url(key)[:200], exc)
                return held
        await self.storage.set(key, found)
        return found

    def _settles(self, entry: Entry, asked: Asked) -> bool:
        """Whether `entry`, stored by the fetch waited on, answers this load (as joining a fetch in process does):
        not older than the Simple index shows the project, whatever the soft TTL says."""
        if entry.status == 404:
            return asked.changed_at is None or entry.fetched_at >= asked.changed_at
        return self._usable(entry, asked.changed_at, asked.floor)

    async def _share(self, key: str, entry: Entry) -> None:
        shared = await self.records.write(
            key, entry_record(entry), self.shared_ttl(entry), max_bytes=self.max_shared_bytes
        )
        if not shared and entry.status == 200 and self.shared_ttl(entry) > 0:
            logger.info(
                "%s is larger than the shared cache keeps (%d bytes): kept in process",
                redact_url(key)[:200],
                len(entry.body),
            )
