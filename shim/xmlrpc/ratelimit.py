"""Per-client rate limiting, as PyPI's XML-RPC does it (spec §0.2, §2.2, §4 cases 8-10).

A moving window per client address: every call to a method that exists counts, faulting ones and
multicall sub-calls included; the hit is recorded, then tested, so the N-th call inside the window is
already refused (at most N-1 succeed). Counted as Warehouse counts, by `limits`' MovingWindowRateLimiter,
in process (shim.xmlrpc.windows).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter

from shim.config.rates import RateLimit
from shim.xmlrpc.windows import MovingWindows

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
    ):
        self.limit = limit
        self.name = name  # the limiter's name in the RateLimit headers, as PyPI names its XML-RPC one
        self.clock = clock
        # The limiter's name keeps its windows apart from another limiter's for the same client (XML-RPC, pass-through).
        self.item = RateLimitItemPerSecond(limit.amount, limit.window, namespace=name)
        # Memory stays bounded: a client not seen for a whole window is forgotten, and at most max_clients are held.
        self.memory = MovingWindows(clock=clock, max_clients=max_clients)
        self.in_process = MovingWindowRateLimiter(self.memory)

    async def hit(self, client: str) -> Verdict:
        """Count a call of `client`'s, and say whether it may go on."""
        return await self._count(self.in_process, client, self.clock())

    async def _count(self, windows: MovingWindowRateLimiter, client: str, now: float) -> Verdict:
        """Warehouse's hit, then its test: two round trips, the stats giving the test, the remainder and the reset."""
        await windows.hit(self.item, client)
        reset_at, remaining = await windows.get_window_stats(self.item, client)
        return Verdict(remaining > 0, max(0, remaining), reset_at - now)

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
