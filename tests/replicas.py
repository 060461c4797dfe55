"""Replicas of the service's stack (as shim.wiring builds it) over one real Redis and one fake index, for the tests
of what they share."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from shim.shared.store import SharedRedis
from shim.upstream.documents import DocumentStore
from shim.upstream.shared_documents import SharedDocumentCache
from shim.upstream.shared_index import SharedIndex
from shim.upstream.simple_index import SimpleIndex
from shim.wiring import build_services
from shim.xmlrpc.context import Services
from testkit.fakeindex import FakeIndex

from .clock import FakeClock
from .helpers import shared_settings

__all__ = ["Replica", "replicas"]


@dataclass
class Replica:
    services: Services
    client: httpx.AsyncClient

    @property
    def store(self) -> DocumentStore:
        return self.services.store

    @property
    def cache(self) -> SharedDocumentCache:
        cache = self.services.store.cache
        assert isinstance(cache, SharedDocumentCache)
        return cache

    @property
    def index(self) -> SimpleIndex:
        return self.services.index

    @property
    def shared_index(self) -> SharedIndex:
        assert self.services.index.shared is not None
        return self.services.index.shared

    @property
    def shared(self) -> SharedRedis:
        assert self.services.shared is not None
        return self.services.shared


@contextlib.asynccontextmanager
async def replicas(
    url: str, fake: FakeIndex, clock: FakeClock, count: int = 2, **settings: Any
) -> AsyncIterator[list[Replica]]:
    """`count` replicas of the service's stack (as shim.wiring builds it) over one Redis and one fake index, their
    caches on `clock`."""
    built = []
    for _ in range(count):
        services, client = build_services(shared_settings(url, **settings), httpx.ASGITransport(app=fake))
        services.store.cache.clock = clock
        services.index.clock = clock
        replica = Replica(services, client)
        await replica.shared.connect(required=False)
        replica.cache.poll = replica.shared_index.poll = 0.005
        built.append(replica)
    try:
        yield built
    finally:
        for replica in built:
            await replica.shared.close()
            await replica.client.aclose()
            replica.services.catalog.close()
