"""A flaky upstream: the fake index behind a wrapper that fails a set fraction of its requests, seeded.

A third of the failures each: a 503, a body cut in half (with a Content-Length that matches the cut), or a slow
answer. The load script serves it on 127.0.0.1; a test that needs the same failures in process can serve it
through httpx's ASGITransport.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

from starlette.types import Message, Receive, Scope, Send

from testkit.fakeindex import FakeIndex

__all__ = ["FlakyIndex", "UpstreamStats"]


@dataclass
class UpstreamStats:
    requests: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    # Requests per path (query included), kept apart from the fake's own log, which is cleared as it grows.
    paths: Counter[str] = field(default_factory=Counter)


class FlakyIndex:
    """ASGI: the fake index, failing `fraction` of its requests (a third each 503, truncated body, slow; seeded)."""

    def __init__(self, fake: FakeIndex, fraction: float, seed: int) -> None:
        self.fake = fake
        self.fraction = fraction
        self.random = random.Random(seed)
        self.stats = UpstreamStats()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fake(scope, receive, send)
            return
        self.stats.requests += 1
        path = scope["path"] + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
        self.stats.paths[path] += 1
        if len(self.fake.requests) > 1000:  # the fake logs every request: keep this process's memory flat
            self.fake.requests.clear()
        roll = self.random.random()
        if roll < self.fraction / 3:
            self.stats.failures["503"] += 1
            await send({"type": "http.response.start", "status": 503, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
        elif roll < 2 * self.fraction / 3:
            self.stats.failures["truncated"] += 1
            await self._truncated(scope, receive, send)
        elif roll < self.fraction:
            self.stats.failures["slow"] += 1
            await asyncio.sleep(self.random.uniform(0.5, 3.0))
            await self.fake(scope, receive, send)
        else:
            await self.fake(scope, receive, send)

    async def _truncated(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The fake's answer cut to half its body (Content-Length matching the cut, no validator)."""
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        # Unconditional, so that a revalidation gets a (cut) 200 rather than an empty 304.
        conditional = {b"if-none-match", b"if-modified-since"}
        plain = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k.lower() not in conditional]}
        await self.fake(plain, receive, capture)
        body = b"".join(chunks)
        body = body[: len(body) // 2]
        dropped = {b"content-length", b"etag", b"last-modified"}
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in dropped]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 200), "headers": headers})
        await send({"type": "http.response.body", "body": body})
