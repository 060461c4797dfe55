"""Per-client rate limiting, as PyPI's XML-RPC does it (spec §0.2, §2.2, §4 cases 8-10).

A moving window per client address: every call to a method that exists counts, faulting ones and
multicall sub-calls included; the hit is recorded, then tested, so the N-th call inside the window is
already refused (at most N-1 succeed). In process; a shared store replaces it when replicas must agree.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache

from shim.config.rates import RateLimit

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
        # Memory stays bounded: a client not seen for a whole window is forgotten.
        self._hits: TTLCache[str, deque[float]] = TTLCache(maxsize=max_clients, ttl=limit.window, timer=clock)

    def hit(self, client: str) -> Verdict:
        now = self.clock()
        hits = self._hits.get(client)
        if hits is None:
            hits = deque()
        while hits and hits[0] <= now - self.limit.window:
            hits.popleft()
        hits.append(now)
        self._hits[client] = hits
        resets_in = hits[0] + self.limit.window - now
        return Verdict(len(hits) < self.limit.amount, max(0, self.limit.amount - len(hits)), resets_in)

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
