"""One place that wires the services from the settings, for both the app and the CLI.

The upstream client and its guard, the Simple index, the document cache and store, and the catalog (read
here; the writer is opened where it runs). Logging is set up here too, so that both entry points log alike.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx

from shim.catalog.crawler import Crawler
from shim.catalog.poller import FeedPoller
from shim.catalog.reads import CatalogReader
from shim.catalog.refresher import Refresher
from shim.catalog.schema import ConnectionFactory, adopt, open_sqlite
from shim.catalog.writes import CatalogWriter
from shim.config.defaults import default_catalog_path, former_default_catalog_path
from shim.config.settings import Settings
from shim.upstream.cache import DocumentCache, MemoryStorage
from shim.upstream.client import Upstream, build_client
from shim.upstream.documents import DocumentStore
from shim.upstream.resilience import Guard, GuardConfig
from shim.upstream.simple_index import SimpleIndex
from shim.xmlrpc.context import Services

logger = logging.getLogger(__name__)

__all__ = [
    "CatalogWork",
    "adopt_former_catalog",
    "build_services",
    "configure_logging",
    "guard_config",
    "open_catalog_writer",
]


def configure_logging(settings: Settings) -> None:
    """Log the service's own messages beside uvicorn's, at the configured level."""
    shim_logger = logging.getLogger("shim")
    shim_logger.setLevel(settings.log_level.value.upper())
    if not shim_logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        shim_logger.addHandler(handler)
        shim_logger.propagate = False


def adopt_former_catalog(settings: Settings) -> None:
    """A catalog at the former default path moves to the default one, when that is the path in use."""
    if settings.catalog_path == default_catalog_path(os.environ):
        adopt(former_default_catalog_path(os.environ), settings.catalog_path)


def guard_config(settings: Settings) -> GuardConfig:
    """The upstream guard's limits, from their settings."""
    return GuardConfig(
        retries=settings.upstream_retries,
        deadline=settings.upstream_deadline,
        threshold=settings.circuit_threshold,
        cooldown=settings.circuit_cooldown,
        max_retry_after=settings.max_retry_after,
        max_concurrent=settings.upstream_concurrency,
    )


def upstream_for(settings: Settings, client: httpx.AsyncClient, guard: Guard | None = None) -> Upstream:
    """The upstream client over `client`, with the settings' limits (and `guard`, else one of its own)."""
    guard = guard if guard is not None else Guard(guard_config(settings))
    return Upstream(
        client,
        settings.upstream,
        guard=guard,
        max_bytes=settings.max_document_bytes,
        optional_deadline=settings.upstream_timeout,
    )


def build_services(
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    catalog_connection_factory: ConnectionFactory = open_sqlite,
) -> tuple[Services, httpx.AsyncClient]:
    """The upstream client, the Simple index, the document cache and store, and the catalog, wired together;
    `catalog_connection_factory` opens the catalog's file."""
    client = build_client(timeout=settings.upstream_timeout, ca_bundle=settings.ca_bundle, transport=transport)
    upstream = upstream_for(settings, client)
    index = SimpleIndex(upstream, refresh_every=settings.index_refresh)
    cache = DocumentCache(
        MemoryStorage(settings.cache_max_bytes),
        soft_ttl=settings.cache_soft_ttl,
        hard_ttl=settings.cache_hard_ttl,
        not_found_ttl=settings.not_found_ttl,
        stale_if_error=settings.stale_if_error,
    )
    adopt_former_catalog(settings)
    catalog = CatalogReader(settings.catalog_path, connection_factory=catalog_connection_factory)
    ready = asyncio.Event() if settings.catalog_writer else None
    files_base = settings.files_upstream.base if settings.files_upstream is not None else None
    store = DocumentStore(upstream, cache, index, recheck=settings.probe_interval, files_base=files_base)
    if not settings.catalog_writer:
        # The change feed is written elsewhere and may be ahead of this process: its serials are floors too.
        store.reported_serial = lambda project: catalog.run(catalog.serial_of, project)
    return Services(store, index, settings.upstream.base, catalog, ready), client


@dataclass(frozen=True)
class CatalogWork:
    """The catalog's one writer and the work that runs on it, in the service or as `pypi-xmlrpc-shim catalog`."""

    writer: CatalogWriter
    refresher: Refresher
    crawler: Crawler | None  # only when SHIM_CRAWL_RATE is above 0
    poller: FeedPoller | None = None  # the change feed's fast path, unless SHIM_FEED_POLL is 0

    async def run(self, settings: Settings) -> None:
        """The catalog's background work, for ever: the refresher and its feed poller and, when set, the crawler.
        Started as one task by the service's lifespan; cancelled, it stops them all."""
        jobs: list[Coroutine[Any, Any, object]] = [self.refresher.run(settings.index_refresh)]
        if self.poller is not None:
            jobs.append(self.poller.run())
        if self.crawler is not None:
            jobs.append(self.crawler.run())
        # One job that ends (or fails) never stops the others: the change feed outlives a crawler's bug.
        for outcome in await asyncio.gather(*jobs, return_exceptions=True):
            if isinstance(outcome, Exception):
                logger.error("catalog work stopped: %r", outcome)

    async def refresh(self, settings: Settings) -> None:
        """The refresher and its feed poller, for ever, without the crawler: `pypi-xmlrpc-shim catalog refresh`."""
        polling = [self.poller.run()] if self.poller is not None else []
        await asyncio.gather(self.refresher.run(settings.index_refresh), *polling)

    def close(self) -> None:
        self.writer.close()


def open_catalog_writer(
    settings: Settings,
    services: Services,
    *,
    connection_factory: ConnectionFactory = open_sqlite,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> CatalogWork:
    """Open the catalog for writing, with its refresher, its feed poller and (when a crawl rate is set) its crawler;
    the refresher's and the poller's turns are timed by `clock` and `sleep` (a test's fake clock)."""
    # The writer shares what it finds of the file with the reader: /healthz and the faults report it.
    writer = CatalogWriter(settings.catalog_path, connection_factory=connection_factory, state=services.catalog.state)
    refresher = Refresher(
        writer, services.store, services.index, clock=clock, sleep=sleep, ready=services.changes_ready
    )
    crawler = Crawler(writer, services.store, rate=settings.crawl_rate) if settings.crawl_rate > 0 else None
    poller = None
    if settings.feed_poll > 0:
        poller = FeedPoller(refresher, every=settings.feed_poll, recheck=settings.index_refresh, sleep=sleep)
    return CatalogWork(writer, refresher, crawler, poller)
