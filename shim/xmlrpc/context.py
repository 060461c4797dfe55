"""What every method function receives first: the call's mode, the table, and the service around it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shim.catalog.election import Election
from shim.catalog.observations import Observations
from shim.catalog.reads import CatalogReader
from shim.metrics.instruments import Metrics
from shim.modes import Mode
from shim.upstream.documents import DocumentStore
from shim.upstream.simple_index import SimpleIndex
from shim.xmlrpc.protocol import Raw
from shim.xmlrpc.table import MethodTable

if TYPE_CHECKING:  # the Redis client is loaded only where SHIM_CACHE_URL is set (shim.shared.availability)
    from shim.shared.store import SharedRedis


__all__ = ["CallContext", "Services"]


@dataclass(frozen=True)
class Services:
    """The upstream's data, as the methods read it."""

    store: DocumentStore
    index: SimpleIndex
    base_url: str  # the upstream's base URL, for links PyPI built on its own domain
    catalog: CatalogReader  # read-only here: the refresher is its one writer
    # Set once the in-process refresher has made its first pass (None: the writer runs elsewhere).
    changes_ready: asyncio.Event | None = None
    # This process's part in the election of the catalog's writer (its role: /healthz).
    election: Election | None = None
    # Where the project documents read for calls go, for the catalog to keep (None: nowhere).
    observations: Observations | None = None
    # The Redis shared by replicas (SHIM_CACHE_URL), which the cache, limits and circuit use while it answers.
    shared: SharedRedis | None = None
    # What the service counts (shim.metrics): its calls, its upstream requests, its cache, its catalog.
    metrics: Metrics = field(default_factory=Metrics)


@dataclass(frozen=True)
class CallContext:
    mode: Mode
    table: MethodTable
    services: Services
    # The upstream index's host, for the messages that name it as PyPI names its own domain.
    domain: str
    # Dispatches one sub-call of system.multicall and gives back its encoded slot.
    subcall: Callable[[Any, Any], Awaitable[Raw]]
    nested: bool
    # The settings the methods read (SHIM_ALLOW_I8, SHIM_SEARCH_FILL_TIMEOUT): given by dispatch, never defaulted here.
    allow_i8: bool
    search_fill_timeout: float
