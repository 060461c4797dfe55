"""Per-client rate limiting, as PyPI's XML-RPC does it (spec §0.2, §2.2, §4 cases 8-10).

A moving window per client address: every call to a method that exists counts, faulting ones and
multicall sub-calls included; the hit is recorded, then tested, so the N-th call inside the window is
already refused (at most N-1 succeed). Counted as Warehouse counts, by `limits`' MovingWindowRateLimiter:
on Redis when replicas share one (SHIM_CACHE_URL), so that a client's window counts its calls on every
replica, else in process (shim.xmlrpc.windows). While Redis is away a call is counted in process instead,
and on Redis again once it answers: the same strategy either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from limits import RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter

from shim.config.rates import RateLimit
from shim.shared.availability import SharedUnavailable
from shim.xmlrpc.windows import MovingWindows

if TYPE_CHECKING:  # the Redis client is loaded only where SHIM_CACHE_URL is set (shim.shared.availability)
    from limits.aio.storage import RedisStorage

    from shim.shared.store import SharedRedis


__all__ = ["RateLimiter", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    remaining: int
    resets_in: float  # seconds until the oldest hit in the window leaves it


class RateLimiter:
    def __init__(
        self,
        limit: RateLimit,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 100_000,
        name: str = "xmlrpc.client",
        shared: SharedRedis | None = None,
    ):
        self.limit = limit
        self.name = name  # the limiter's name in the RateLimit headers, as PyPI names its XML-RPC one
        self.clock = clock  # the in-process windows' (Redis's are on the wall clock, as `limits` keeps them there)
        # The limiter's name keeps its windows apart from another limiter's for the same client (XML-RPC, pass-through).
        self.item = RateLimitItemPerSecond(limit.amount, limit.window, namespace=name)
        # Memory stays bounded: a window is forgotten once its newest hit has left it; at most max_clients are held.
        self.memory = MovingWindows(clock=clock, max_clients=max_clients)
        self.in_process = MovingWindowRateLimiter(self.memory)
        self.shared = shared
        self.on_redis = MovingWindowRateLimiter(redis_storage(shared)) if shared is not None else None
        self.refused: Callable[[str], None] = lambda name: None  # told the limiter's name at each refusal (metrics)

    async def hit(self, client: str) -> Verdict:
        """Count a call of `client`'s, and say whether it may go on: on Redis while it answers, else in process."""
        shared, on_redis = self.shared, self.on_redis
        if shared is not None and on_redis is not None:
            try:
                return await shared.run(lambda _: self._count(on_redis, client, time.time()))
            except SharedUnavailable:
                pass  # counted here for this call; the store has logged the loss, and /healthz shows it
        return await self._count(self.in_process, client, self.clock())

    async def _count(self, windows: MovingWindowRateLimiter, client: str, now: float) -> Verdict:
        """Warehouse's hit, then its test: two round trips, the stats giving the test, the remainder and the reset."""
        await windows.hit(self.item, client)
        reset_at, remaining = await windows.get_window_stats(self.item, client)
        # At most a window away, though a replica whose clock runs ahead wrote the oldest hit on Redis.
        if remaining <= 0:
            self.refused(self.name)
        return Verdict(remaining > 0, max(0, remaining), min(reset_at - now, self.limit.window))

    def headers(self, verdict: Verdict) -> dict[str, str]:
        """The RateLimit headers PyPI sends on every XML-RPC answer (and Retry-After when refused)."""
        headers = {
            "RateLimit-Policy": f'"{self.name}";q={self.limit.amount};w={self.limit.window};pk=:ip:',
            "RateLimit": f'"{self.name}";r={verdict.remaining};t={max(0, int(verdict.resets_in))}',
        }
        if not verdict.allowed:
            headers["Retry-After"] = str(max(1, int(verdict.resets_in)))
        return headers

    @staticmethod
    def refusal(verdict: Verdict) -> str:
        return (
            "HTTPTooManyRequests: The action could not be performed because there were too many requests by the "
            f"client. Limit may reset in {max(1, int(verdict.resets_in))} seconds."
        )


def redis_storage(shared: SharedRedis) -> RedisStorage:
    """`limits`' Redis storage over the replica's one pool (which carries the password and the timeouts), on redis-py,
    its keys under this upstream's namespace."""
    from limits.aio.storage import RedisStorage  # here: it loads redis-py, which only a shared service needs

    pool: Any = shared.pool  # `limits` types its pass-through options as scalars; redis-py takes the pool
    # The URL only picks `limits`' Redis storage: the pool connects (TLS for rediss:// included), never this URL.
    return RedisStorage(
        "async+redis://", implementation="redispy", connection_pool=pool, key_prefix=shared.prefix + "limits"
    )
