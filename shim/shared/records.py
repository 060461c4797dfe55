"""Records on the shared Redis, and the locks that make one replica fetch while the others wait.

A record is a small header (its JSON `meta`: for a document its URL, ETag, serial, fetched-at...) and a body. The
body is compressed (zlib) above `COMPRESS_ABOVE` bytes, off the event loop above `THREAD_ABOVE`. Up to `PART` bytes
(as stored) it sits in the record's one value, after the header: one GET reads it. A larger one is kept in parts of
`PART` bytes in a hash of its own generation, each part one command, so that every command stays within
SHIM_CACHE_TIMEOUT and no single one holds Redis for long; the header, written last, names the generation, so a
reader never mixes two copies (a part gone midway reads as no record at all).

Every call raises `SharedUnavailable` when Redis is away (see shim.shared.store): the caller goes on in process. A
value that does not decode is no record (None), never an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shim.shared.availability import milliseconds

if TYPE_CHECKING:  # the Redis client is loaded only where SHIM_CACHE_URL is set (shim.shared.availability)
    import redis.asyncio

    from shim.shared.store import SharedRedis


__all__ = ["COMPRESS_ABOVE", "PART", "Header", "Record", "SharedRecords"]

logger = logging.getLogger(__name__)

COMPRESS_ABOVE = 1024  # bytes of body: below, zlib saves too little to be worth its header and its time
THREAD_ABOVE = 64 * 1024  # bytes: compressed and decompressed in a worker thread, as large documents are parsed
PART = 512 * 1024  # bytes as stored: at most this much travels in one command

# Releases a lock only for the token that took it: a holder whose lock expired never frees another's.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
# Rewrites a header (a later fetched-at for the same body) only over the one read, and keeps its parts as long.
_TOUCH = (
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) redis.call('PEXPIRE', KEYS[2], ARGV[3]) return 1"
)


@dataclass(frozen=True)
class Record:
    meta: dict[str, Any]
    body: bytes


@dataclass(frozen=True)
class Header:
    """A record's header as read: `raw` is the value as stored (what `touch` compares), `meta` what it says."""

    raw: bytes
    meta: dict[str, Any]
    compressed: bool
    parts: int  # 0: the body is `inline`
    generation: str
    inline: bytes

    @property
    def fetched_at(self) -> float:
        value = self.meta.get("fetched_at")
        return float(value) if isinstance(value, int | float) else float("-inf")


def _encode_header(meta: dict[str, Any], compressed: bool, parts: int, generation: str) -> bytes:
    header = {"m": meta, "z": compressed, "n": parts, "g": generation}
    return json.dumps(header, separators=(",", ":")).encode()


def _decode_header(raw: bytes) -> Header | None:
    text, _, inline = raw.partition(b"\n")
    try:
        header = json.loads(text)
        meta, compressed, parts, generation = header["m"], header["z"], header["n"], header["g"]
    except (ValueError, KeyError, TypeError):
        return None
    valid = isinstance(meta, dict) and isinstance(compressed, bool) and isinstance(generation, str)
    if not valid or type(parts) is not int or parts < 0:
        return None
    return Header(raw, meta, compressed, parts, generation, inline)


async def _off_loop(work: Callable[[bytes], bytes], data: bytes) -> bytes:
    return work(data) if len(data) < THREAD_ABOVE else await asyncio.to_thread(work, data)


class SharedRecords:
    """The records of one kind (`kind`: "document", "index"), each under its name, with a lock per name."""

    def __init__(
        self,
        shared: SharedRedis,
        kind: str,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shared = shared
        self.kind = kind
        self.sleep = sleep
        self.monotonic = monotonic

    def key(self, name: str) -> str:
        return self.shared.key(self.kind, name)

    def lock_key(self, name: str) -> str:
        return self.shared.key(self.kind + "-lock", name)

    def _parts_key(self, name: str, generation: str) -> str:
        return self.shared.key(self.kind + "-parts", generation, name)

    # --- records -----------------------------------------------------------------------------------------------

    async def header(self, name: str) -> Header | None:
        """The header of the record `name` (with its body when inline), or None."""
        key = self.key(name)
        raw = await self.shared.run(lambda client: client.get(key))
        if not isinstance(raw, bytes):
            return None
        header = _decode_header(raw)
        if header is None:
            logger.warning("a shared %s record does not decode: taken as none", self.kind)
        return header

    async def body(self, name: str, header: Header) -> bytes | None:
        """The body `header` names, decompressed; None when a part is gone (or it does not decompress)."""
        stored = header.inline
        if header.parts:
            key = self._parts_key(name, header.generation)
            pieces = []
            for index in range(header.parts):
                piece = await self._part(key, str(index))
                if not isinstance(piece, bytes):
                    return None  # overwritten or expired midway: no copy to adopt
                pieces.append(piece)
            stored = b"".join(pieces)
        if not header.compressed:
            return stored
        try:
            return await _off_loop(zlib.decompress, stored)
        except zlib.error:
            logger.warning("a shared %s record does not decompress: taken as none", self.kind)
            return None

    async def _part(self, key: str, field: str) -> object:
        return await self.shared.run(lambda client: client.hget(key, field))

    async def _put_part(self, key: str, field: str, piece: bytes, expiry: int) -> None:
        """One part, with the TTL of the whole: parts left by a write cut short expire with it."""

        async def put(client: redis.asyncio.Redis) -> None:
            async with client.pipeline(transaction=True) as pipeline:
                pipeline.hset(key, field, piece)
                pipeline.pexpire(key, expiry)
                await pipeline.execute()

        await self.shared.run(put)

    async def read(self, name: str) -> tuple[Header, Record] | None:
        header = await self.header(name)
        if header is None:
            return None
        body = await self.body(name, header)
        return None if body is None else (header, Record(header.meta, body))

    async def write(self, name: str, record: Record, ttl: float, *, max_bytes: int | None = None) -> bool:
        """Keep `record` for `ttl` seconds; False (nothing written) when it would store more than `max_bytes`."""
        if ttl <= 0:
            return False
        compressed = len(record.body) > COMPRESS_ABOVE
        stored = await _off_loop(zlib.compress, record.body) if compressed else record.body
        if max_bytes is not None and len(stored) > max_bytes:
            return False
        expiry = milliseconds(ttl)
        key = self.key(name)
        if len(stored) <= PART:
            value = _encode_header(record.meta, compressed, 0, "") + b"\n" + stored
            await self.shared.run(lambda client: client.set(key, value, px=expiry))
            return True
        generation = secrets.token_hex(8)
        parts_key = self._parts_key(name, generation)
        for start in range(0, len(stored), PART):
            await self._put_part(parts_key, str(start // PART), stored[start : start + PART], expiry)
        parts = -(-len(stored) // PART)
        value = _encode_header(record.meta, compressed, parts, generation) + b"\n"
        former = await self.shared.run(lambda client: client.get(key))
        await self.shared.run(lambda client: client.set(key, value, px=expiry))
        previous = _decode_header(former) if isinstance(former, bytes) else None
        if previous is not None and previous.parts and previous.generation != generation:
            gone = self._parts_key(name, previous.generation)
            await self.shared.run(lambda client: client.unlink(gone))  # a copy nobody can adopt any more
        return True

    async def touch(self, name: str, header: Header, meta: dict[str, Any], ttl: float) -> bool:
        """Give the record read as `header` a new `meta` (its body unchanged) and `ttl`, unless it changed since."""
        if ttl <= 0:
            return False
        value = _encode_header(meta, header.compressed, header.parts, header.generation) + b"\n" + header.inline
        keys = (self.key(name), self._parts_key(name, header.generation))
        expiry = milliseconds(ttl)
        done = await self.shared.run(lambda client: client.eval(_TOUCH, 2, *keys, header.raw, value, expiry))
        return bool(done)

    # --- locks -------------------------------------------------------------------------------------------------

    async def acquire(self, name: str, timeout: float) -> str | None:
        """A token when this replica now holds the lock on `name` (for `timeout` seconds at most), else None."""
        token = secrets.token_hex(16)
        key, expiry = self.lock_key(name), milliseconds(timeout)
        taken = await self.shared.run(lambda client: client.set(key, token, nx=True, px=expiry))
        return token if taken else None

    async def release(self, name: str, token: str) -> None:
        key = self.lock_key(name)
        await self.shared.run(lambda client: client.eval(_RELEASE, 1, key, token))

    async def held(self, name: str) -> bool:
        key = self.lock_key(name)
        return bool(await self.shared.run(lambda client: client.exists(key)))

    async def wait(self, name: str, *, timeout: float, poll: float) -> None:
        """Until nobody holds the lock on `name`, `timeout` seconds at most (a lock without its expiry, set by
        hand, delays no more than one that expires)."""
        deadline = self.monotonic() + timeout
        while await self.held(name):
            left = deadline - self.monotonic()
            if left <= 0:
                return
            await self.sleep(min(poll, left))
