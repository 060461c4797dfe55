"""The upstream's circuit and Retry-After pause, shared per origin by the replicas over Redis (SHIM_CACHE_URL).

Each replica keeps its own `Guard` per origin (shim.upstream.resilience); this puts what one of them learns before
the others. Before each request the client adopts what Redis holds for the request's origin (one round trip), and
after it publishes what the request taught its guard: the circuit opened (or a probe failed), a pause asked for, a
probe answered. Each key's own expiry carries the time, so that no two machines' clocks are ever compared:

- `circuit:<origin>:open`, set for the cooldown when a replica opens the circuit or its probe fails: while it lives
  every replica refuses, as its own open circuit does;
- `circuit:<origin>:tripped`, set beside it and longer-lived: once `open` is gone the circuit is half-open on
  every replica, until a probe's answer deletes both (closed everywhere);
- `circuit:<origin>:probe`, taken (`SET NX`) by the one request of all the replicas that probes a half-open
  circuit, for a request's deadline at most (a replica that dies mid-probe keeps no one out); the others refuse;
- `pause:<origin>`, the Retry-After pause, only ever lengthened;
- `origins`, the origins whose circuit opened, so that /healthz shows the files host's as well as the index's.

Every command goes through `SharedRedis.run`, bounded by SHIM_CACHE_TIMEOUT: while Redis is away
(SharedUnavailable) the local guard alone decides, as it does without SHIM_CACHE_URL, and a circuit it opened
meanwhile is published once Redis answers again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shim.errors import UpstreamUnavailable
from shim.shared.availability import SharedUnavailable, milliseconds, text
from shim.upstream.resilience import Guard
from shim.upstream.urls import redact_url

if TYPE_CHECKING:  # the Redis client is loaded only where SHIM_CACHE_URL is set (shim.shared.availability)
    import redis.asyncio

    from shim.shared.store import SharedRedis


__all__ = ["HALF_OPEN_MEMORY", "SharedCircuit"]

# Seconds past its cooldown that a half-open circuit no replica has probed is remembered: after that the next
# request anywhere goes as to a closed one (and a replica's own guard opens it again if the upstream still fails).
HALF_OPEN_MEMORY = 3600.0
MISSING = -2  # PTTL of a key that does not exist

# Sets KEYS[1] for ARGV[1] ms unless it lives longer already: a pause is only ever lengthened.
_LENGTHEN = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 0
"""


@dataclass
class _Mark:
    """A guard as a request found it once admitted: what changed by its end is news for the other replicas."""

    tripped: bool
    openings: int
    resume_at: float
    probe: bool = False  # this request holds the probe of every replica


@dataclass(frozen=True)
class _Keys:
    open: str
    tripped: str
    probe: str
    pause: str


class SharedCircuit:
    """The circuits and pauses of every origin of one Upstream, shared through `shared` (None: in process only)."""

    def __init__(self, shared: SharedRedis | None) -> None:
        self.shared = shared
        # Origins whose circuit Redis holds open as far as this replica knows: one tripped here but not in Redis
        # was opened while Redis was away, and is published; one Redis forgot was closed by another's probe.
        self.published: set[str] = set()

    def _keys(self, shared: SharedRedis, origin: str) -> _Keys:
        return _Keys(
            shared.key("circuit", origin, "open"),
            shared.key("circuit", origin, "tripped"),
            shared.key("circuit", origin, "probe"),
            shared.key("pause", origin),
        )

    @asynccontextmanager
    async def attempt(self, guard: Guard, url: str, deadline: float | None = None) -> AsyncIterator[None]:
        """One request to `guard`'s origin: admitted after the shared pause (waited out when it ends before
        `deadline`; without one, not waited for) and the circuit, else UpstreamUnavailable naming `url` (redacted); what
        the guard learnt by the end of the block is published."""
        await self.adopt(guard)
        refused = guard.refusal()
        if refused is None and deadline is not None:
            refused = await guard.pause(deadline)
        refused = refused or guard.admit()
        mark = _Mark(guard.tripped, guard.openings, guard.resume_at)
        if refused is None and guard.probing:
            claimed = await self._claim(guard)
            if claimed is False:
                refused = guard.refused_elsewhere()
            mark.probe = claimed is True
        if refused:
            raise UpstreamUnavailable(redact_url(url), refused)
        try:
            yield
        finally:
            await self._settle(guard, mark)

    async def adopt(self, guard: Guard) -> None:
        """What Redis holds for `guard`'s origin, made the guard's own: an open or half-open circuit, a pause."""
        shared = self.shared
        if shared is None:
            return
        keys = self._keys(shared, guard.origin)

        async def read(client: redis.asyncio.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for key in (keys.open, keys.tripped, keys.pause):
                pipe.pttl(key)
            return await pipe.execute()

        try:
            opened, tripped, paused = await shared.run(read)
        except SharedUnavailable:
            self.published.discard(guard.origin)
            return
        if opened != MISSING or tripped != MISSING:
            guard.opened_elsewhere(max(opened, 0) / 1000)
            self.published.add(guard.origin)
        elif guard.tripped and guard.origin in self.published:
            self.published.discard(guard.origin)
            guard.closed_elsewhere()
        elif guard.tripped:  # opened here while Redis was away: news for the others still
            await self._publish(guard, _Mark(tripped=False, openings=0, resume_at=guard.resume_at), reopened=True)
        if paused > 0:
            guard.paused_elsewhere(paused / 1000)

    async def _claim(self, guard: Guard) -> bool | None:
        """Take the probe of every replica: True when taken, False when another holds it, None when Redis is away
        (the local guard's own probe goes)."""
        shared = self.shared
        if shared is None:
            return None
        key = self._keys(shared, guard.origin).probe
        ttl = milliseconds(guard.config.deadline + shared.timeout)
        try:
            return bool(await shared.run(lambda client: client.set(key, b"1", nx=True, px=ttl)))
        except SharedUnavailable:
            self.published.discard(guard.origin)
            return None

    async def _settle(self, guard: Guard, mark: _Mark) -> None:
        if self.shared is not None:
            await self._publish(guard, mark)

    async def _publish(self, guard: Guard, mark: _Mark, *, reopened: bool = False) -> None:
        """What changed in `guard` since `mark`, told to every replica: opened (or, `reopened`, open still),
        closed, paused, or a probe that ended with no word on the upstream (the next request anywhere probes)."""
        shared = self.shared
        assert shared is not None
        keys = self._keys(shared, guard.origin)
        cooldown = max(0.0, guard.open_until - guard.clock())
        wait = guard.resume_at - guard.clock()
        opened = guard.tripped and (reopened or guard.openings > mark.openings)
        closed = mark.tripped and not guard.tripped

        async def write(client: redis.asyncio.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            if opened:
                pipe.set(keys.open, b"1", px=milliseconds(cooldown))
                pipe.set(keys.tripped, b"1", px=milliseconds(cooldown + HALF_OPEN_MEMORY))
                pipe.sadd(shared.key("origins"), guard.origin)
                pipe.pexpire(shared.key("origins"), milliseconds(cooldown + HALF_OPEN_MEMORY))
            if opened or closed or mark.probe:
                pipe.delete(*((keys.open, keys.tripped, keys.probe) if closed else (keys.probe,)))
            if guard.resume_at > mark.resume_at and wait > 0:
                pipe.eval(_LENGTHEN, 1, keys.pause, milliseconds(wait))
            if len(pipe):
                await pipe.execute()

        try:
            await shared.run(write)
        except SharedUnavailable:
            self.published.discard(guard.origin)
            return
        if opened:
            self.published.add(guard.origin)
        elif closed:
            self.published.discard(guard.origin)

    async def look(self, guards: dict[str, Guard], guard_for: Callable[[str], Guard]) -> None:
        """For /healthz: what every replica found of each origin, adopted, the origins whose circuit opened
        elsewhere among them."""
        shared = self.shared
        if shared is None:
            return
        try:
            origins = await shared.run(lambda client: client.smembers(shared.key("origins")))
        except SharedUnavailable:
            return
        for origin in sorted(text(origin) for origin in origins):
            if origin.startswith(("http://", "https://")):
                guard_for(origin)
        for guard in list(guards.values()):
            await self.adopt(guard)
