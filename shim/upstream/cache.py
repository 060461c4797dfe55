"""The document cache: upstream documents (body, ETag, serial, fetched-at), not answers.

Policy, in `DocumentCache.get`:
- an entry younger than the soft TTL is served as it is; an older one is revalidated with a
  conditional request (its ETag), and one older than the hard TTL is fetched afresh;
- an entry with a serial is stale when the Simple index shows a higher one for its project (`floor`); one
  without (a not-found, a metadata file, or no serial in the index) when it was fetched before the project
  last changed there (`changed_at`);
- a genuine 404 is remembered for its own, short, TTL;
- errors, timeouts and malformed bodies are never stored (the loader raises, nothing is written);
- concurrent misses for one key share one upstream request.

Storage sits behind `Storage`; the in-process one is per process. With SHIM_CACHE_URL, replicas share their
entries on Redis as a second level beneath it (shim.upstream.shared_documents), under the same policy.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, Required, TypedDict

from cachetools import LRUCache

from shim.errors import UpstreamError

__all__ = ["Adopt", "Asked", "DocumentCache", "Entry", "Loader", "MemoryStorage", "Policy", "Storage", "footprint"]

logger = logging.getLogger(__name__)

# What an entry costs beyond what `Entry.size` measures: the entry object, its key, the store's bookkeeping.
_OVERHEAD = 512


def footprint(value: object) -> int:
    """The bytes `value` holds in memory, as tracemalloc counts them: every object reachable through containers and
    instance attributes, each once.

    A parsed document is many small objects, from 2x its JSON text (files with long URLs and digests) to 12x (many
    releases without files): no factor of the body's length fits every shape. The walk costs less than the parse
    did, once per fetched document (`DocumentStore` measures a large one off the event loop, with its parse)."""
    seen: set[int] = set()  # containers, and keys: json.loads shares one string per key among a document's objects
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        children: Iterable[Any]
        if type(item) is dict:
            for key in item:
                if id(key) not in seen:
                    seen.add(id(key))
                    total += sys.getsizeof(key)
            children = item.values()
        elif type(item) is list or type(item) is tuple:
            children = item
        elif isinstance(item, str | bytes | int | float):
            continue
        elif isinstance(item, Mapping):
            children = [*item.keys(), *item.values()]
        elif isinstance(item, list | tuple | set | frozenset):
            children = item
        elif hasattr(item, "__dict__") and not isinstance(item, type):  # a dataclass such as ProjectDoc
            children = [vars(item)]
        else:
            continue
        # Leaves inline, as the walk's cost is mostly per object: a value's string is its own, never shared.
        for child in children:
            kind = type(child)
            if kind is str or kind is float:
                total += sys.getsizeof(child)
            elif child is None or kind is bool or (kind is int and -5 <= child <= 256):
                pass  # the interpreter's own objects, shared by everyone
            else:
                stack.append(child)
    return total


@dataclass
class Entry:
    status: int  # 200, or 404 for a remembered not-found
    body: bytes
    url: str
    fetched_at: float
    etag: str | None = None
    serial: int | None = None
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # the upstream's, for pass-through
    # The Simple index serial this entry was last fetched to satisfy: a CDN may still serve an older
    # document after a refetch, and asking again for the same serial would only storm the upstream.
    floor: int | None = None
    # Bodies derived from this one (file URLs rewritten for a service URL), kept in process beside it, least
    # recently used first (see `DocumentCache.keep_variant`), and counted in its size.
    variants: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)
    # The parsed document, kept in process beside its bytes; a shared store keeps only the bytes.
    parsed: Any = field(default=None, compare=False, repr=False)
    # The footprint of `parsed`, measured once when it was made (measuring again at every store would cost a walk).
    parsed_bytes: int = field(default=0, compare=False, repr=False)

    def size(self) -> int:
        """The bytes this entry holds: its body, its parsed form, what it derived, and its own fields."""
        derived = sum(_OVERHEAD + (len(body) if body is not self.body else 0) for body in self.variants.values())
        own = footprint((self.url, self.etag, self.content_type, self.headers))
        return _OVERHEAD + own + sys.getsizeof(self.body) + self.parsed_bytes + derived


class Storage(Protocol):
    async def get(self, key: str) -> Entry | None: ...

    async def set(self, key: str, entry: Entry) -> None: ...

    async def delete(self, key: str) -> None: ...


class MemoryStorage:
    """In-process storage, least recently used first out, bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self._entries: LRUCache[str, Entry] = LRUCache(maxsize=max_bytes, getsizeof=Entry.size)

    async def get(self, key: str) -> Entry | None:
        return self._entries.get(key)

    async def set(self, key: str, entry: Entry) -> None:
        """Keep `entry` for `key`, its size counted as it is now (set it again after it grew)."""
        if entry.size() <= self._entries.maxsize:
            self._entries[key] = entry
        else:  # larger than the whole cache: serve it, don't keep it (nor an earlier copy)
            self._entries.pop(key, None)

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    @property
    def bytes_used(self) -> int:
        return int(self._entries.currsize)

    def __len__(self) -> int:
        return len(self._entries)


# A loader is given the entry to revalidate (None for a full fetch) and returns the new entry: the same
# one with a new `fetched_at` after a 304, a fresh one after a 200 or a 404. It raises on every failure.
Loader = Callable[[Entry | None], Awaitable[Entry]]
# Readies an entry read from a shared store, which keeps bytes only (its parsed form made here); ValueError for one
# that is malformed (then not used).
Adopt = Callable[[Entry], Awaitable[None]]


class Policy(TypedDict, total=False):
    """The policy's settings, as `DocumentCache` takes them (and a cache built on it passes them on)."""

    soft_ttl: Required[float]
    hard_ttl: Required[float]
    not_found_ttl: Required[float]
    stale_if_error: float
    clock: Callable[[], float]


@dataclass(frozen=True)
class Asked:
    """What a caller of `DocumentCache.get` asked for, as the load it waits on sees it."""

    changed_at: float | None
    floor: int | None
    stale_ok: bool
    adopt: Adopt | None = None


def _uncounted(result: str) -> None:
    pass


class DocumentCache:
    # Whether entries may come from another replica, bytes only, to be readied by the caller's `adopt`.
    adopts = False

    def __init__(
        self,
        storage: Storage,
        *,
        soft_ttl: float,
        hard_ttl: float,
        not_found_ttl: float,
        stale_if_error: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stale_if_error = stale_if_error
        self.stale_served = 0
        # For the metrics (set by the wiring): each lookup answered from here (`hit`) or by a stale copy (`stale`),
        # each load the upstream answered (`miss`, `revalidated`), each copy another replica loaded (`shared`).
        self.counted: Callable[[str], None] = _uncounted
        self.storage = storage
        self.soft_ttl = soft_ttl
        self.hard_ttl = hard_ttl
        self.not_found_ttl = not_found_ttl
        self.clock = clock
        self._inflight: dict[str, asyncio.Task[Entry]] = {}

    def _usable(self, entry: Entry, changed_at: float | None, floor: int | None = None, lag_ok: bool = True) -> bool:
        """May `entry` be revalidated (True) or must it be fetched afresh (False)?"""
        age = self.clock() - entry.fetched_at
        if entry.status == 404:
            return False  # a not-found is never revalidated: either fresh or gone
        if age >= self.hard_ttl:
            return False
        if floor is not None and entry.serial is not None and entry.serial < floor:
            # Older than the serial the index (and so XML-RPC) reports: fetch once more for that serial.
            return lag_ok and entry.floor is not None and entry.floor >= floor
        if floor is not None and entry.serial is not None:
            # As new as the index says the project is: a change it showed since is one this copy has.
            return True
        # Fetched before the Simple index showed the project change: only a full fetch will do.
        return changed_at is None or entry.fetched_at >= changed_at

    def _fresh(self, entry: Entry, changed_at: float | None, floor: int | None, lag_ok: bool) -> bool:
        age = self.clock() - entry.fetched_at
        if entry.status == 404:
            return age < self.not_found_ttl and (changed_at is None or entry.fetched_at >= changed_at)
        return age < self.soft_ttl and self._usable(entry, changed_at, floor, lag_ok)

    async def get(
        self,
        key: str,
        loader: Loader,
        *,
        changed_at: float | None = None,
        floor: int | None = None,
        stale_ok: bool = True,
        adopt: Adopt | None = None,
    ) -> Entry:
        """The entry for `key`, fetched or revalidated by `loader` when it is not fresh.

        `changed_at` is when the Simple index last showed the document's project change; `floor` is the
        serial it shows for the project now: an entry with a lower serial is fetched again, once.
        `stale_ok=False` accepts no older copy, neither stale-if-error nor one that lags `floor`, nor one still
        fresh without asking (it is revalidated, a conditional request): for a reader that must see the upstream's
        current copy (the change feed's writer, told of a change the Simple index does not show yet).
        `adopt` readies an entry another replica fetched (a shared cache's) before it is kept and served.
        """
        entry = await self.storage.get(key)
        if entry is not None and stale_ok and self._fresh(entry, changed_at, floor, stale_ok):
            self.counted("hit")
            return entry
        try:
            return await self._fetch(key, entry, loader, Asked(changed_at, floor, stale_ok, adopt))
        except UpstreamError as exc:
            held = await self.storage.get(key)  # a copy adopted meanwhile (see shim.upstream.shared_documents)
            if held is not None and (entry is None or held.fetched_at > entry.fetched_at):
                entry = held
            # Stale-if-error: a copy past its soft expiry, within the window, beats no answer.
            if (
                not stale_ok
                or entry is None
                or entry.status != 200
                or self.clock() - entry.fetched_at >= self.soft_ttl + self.stale_if_error
            ):
                raise
            self.stale_served += 1
            self.counted("stale")
            logger.warning("serving a stale copy of %s (%.0f s old): %s", key, self.clock() - entry.fetched_at, exc)
            return entry

    def _flight(self, key: str, asked: Asked) -> str:
        """Which load in flight a caller may join: here any of the key's, as every load asks the upstream."""
        return key

    async def _fetch(self, key: str, entry: Entry | None, loader: Loader, asked: Asked) -> Entry:
        flight = self._flight(key, asked)
        pending = self._inflight.get(flight)
        if pending is None:
            # The fetch runs as its own task: a caller that goes away does not cancel it for the others.
            pending = asyncio.create_task(self._load(key, loader, entry, asked))
            self._inflight[flight] = pending
            pending.add_done_callback(lambda task: self._settle(flight, task))
        return await asyncio.shield(pending)

    def _revalidating(self, entry: Entry | None, asked: Asked) -> Entry | None:
        """The entry a conditional request may revalidate, or None: a full fetch."""
        return entry if entry is not None and self._usable(entry, asked.changed_at, asked.floor) else None

    async def _load(self, key: str, loader: Loader, entry: Entry | None, asked: Asked) -> Entry:
        """The one load of `key` every caller waiting on it shares (a shared cache looks at the others' first)."""
        return await self._fetched(key, loader, self._revalidating(entry, asked), asked.floor)

    async def _fetched(self, key: str, loader: Loader, revalidate: Entry | None, floor: int | None) -> Entry:
        fresh = await loader(revalidate)
        # Counted once per load, however many callers share it: each load is one the upstream answered.
        self.counted("revalidated" if fresh is revalidate and revalidate is not None else "miss")
        if fresh is revalidate and revalidate is not None:
            fresh = replace(revalidate, fetched_at=self.clock(), parsed=revalidate.parsed)
        if floor is not None and fresh.serial is not None and fresh.serial < floor:
            # Older than the index says the project is (a lagging CDN copy): one more full fetch, then
            # accept what comes, marked so that the same serial does not send us back again.
            again = await loader(None)
            if again.serial is not None and again.serial >= fresh.serial:
                fresh = again
            if fresh.serial is not None and fresh.serial < floor:
                fresh.floor = floor
        await self.storage.set(key, fresh)
        return fresh

    def _settle(self, key: str, task: asyncio.Task[Entry]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # every waiter may have gone: the failure is theirs to see, not a warning

    async def keep_variant(self, key: str, entry: Entry, name: str, body: bytes, *, keep: int) -> None:
        """Keep `body`, derived from `entry` for `name`, beside it: at most `keep` such bodies, the least recently
        used going first, and the entry's size counted again so that the storage's budget holds."""
        entry.variants.pop(name, None)
        entry.variants[name] = body
        while len(entry.variants) > keep:
            del entry.variants[next(iter(entry.variants))]
        stored = await self.storage.get(key)
        # The stored entry, or its revalidated copy sharing these variants; not a newer document.
        if stored is not None and stored.variants is entry.variants:
            await self.storage.set(key, stored)
