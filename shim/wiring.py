"""One place that wires the services from the settings, for both the app and the CLI.

The upstream client and its guard, the Simple index, the document cache and store, and the catalog (read
here; the writer is opened where it runs). Logging is set up here too, so that both entry points log alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from uvicorn.logging import ColourizedFormatter

from shim import __version__
from shim.catalog.crawler import Crawler
from shim.catalog.election import Election
from shim.catalog.followed import FollowedSerials
from shim.catalog.observations import CatalogObserver, Observations
from shim.catalog.poller import FeedPoller
from shim.catalog.reads import CatalogReader
from shim.catalog.refresher import Refresher
from shim.catalog.schema import ConnectionFactory, adopt, open_sqlite
from shim.catalog.seed import seed_catalog
from shim.catalog.writes import CatalogWriter
from shim.config.defaults import default_catalog_path, former_default_catalog_path, shared_catalog_path
from shim.config.setting import LogFormat
from shim.config.settings import Settings
from shim.logs import ACCESS_LOGGER, TEXT_FORMAT, UVICORN_LOGGERS, AccessText, JsonLines
from shim.metrics.instruments import Metrics
from shim.upstream.cache import DocumentCache, MemoryStorage, Policy
from shim.upstream.client import Upstream, build_client
from shim.upstream.documents import DocumentStore
from shim.upstream.file_metadata import ArchiveLimits
from shim.upstream.resilience import Guard, GuardConfig
from shim.upstream.shared_documents import LOCK_SLACK, SharedDocumentCache
from shim.upstream.shared_index import LOCK_SLACK as INDEX_LOCK_SLACK
from shim.upstream.shared_index import SharedIndex
from shim.upstream.simple_index import SimpleIndex
from shim.xmlrpc.context import Services

if TYPE_CHECKING:  # the Redis client is loaded only where SHIM_CACHE_URL is set (shim.shared.availability)
    from shim.shared.store import SharedRedis


logger = logging.getLogger(__name__)

__all__ = [
    "CatalogRole",
    "CatalogWork",
    "adopt_former_catalog",
    "build_services",
    "configure_logging",
    "guard_config",
    "keep_what_calls_read",
    "open_catalog_writer",
]


def configure_logging(settings: Settings) -> None:
    """Log the service's own messages beside uvicorn's, at the configured level, as text or JSON lines (shim.logs);
    the access line (SHIM_ACCESS_LOG) whatever the level. Again for other settings, it replaces what it set."""
    as_json = settings.log_format is LogFormat.JSON
    shim_logger = logging.getLogger("shim")
    shim_logger.setLevel(settings.log_level.value.upper())
    _handled_by(shim_logger, sys.stderr, JsonLines() if as_json else logging.Formatter(TEXT_FORMAT))
    access = logging.getLogger(ACCESS_LOGGER)
    access.setLevel(logging.INFO)
    _handled_by(access, sys.stdout, JsonLines() if as_json else AccessText())  # where uvicorn writes its own
    if as_json:  # served by bare uvicorn (`--factory`), its loggers were configured for text: its own formatters
        for name in UVICORN_LOGGERS:
            for handler in logging.getLogger(name).handlers:
                if isinstance(handler.formatter, ColourizedFormatter):
                    handler.setFormatter(JsonLines())
    # The service writes the access line: a bare uvicorn's own would be a second one.
    logging.getLogger("uvicorn.access").disabled = settings.access_log


class _ServiceHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler configure_logging sets, replaced when it is called again."""


def _handled_by(logger: logging.Logger, stream: Any, formatter: logging.Formatter) -> None:
    for handler in [h for h in logger.handlers if isinstance(h, _ServiceHandler)]:
        logger.removeHandler(handler)
    handler = _ServiceHandler(stream)
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    logger.propagate = False


def adopt_former_catalog(settings: Settings) -> None:
    """A catalog at a former default path moves to this upstream's default one, when that is the path in use: the
    one every upstream shared, when it records this upstream (or none), else the one of the metadata index."""
    if settings.catalog_path == default_catalog_path(os.environ, settings.upstream):
        for former in (shared_catalog_path(os.environ), former_default_catalog_path(os.environ)):
            if adopt(former, settings.catalog_path, settings.upstream.base):
                return


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


def upstream_for(
    settings: Settings,
    client: httpx.AsyncClient,
    guard: Guard | None = None,
    *,
    shared: SharedRedis | None = None,
    metrics: Metrics | None = None,
) -> Upstream:
    """The upstream client over `client`, with the settings' limits (and `guard`, else one of its own); with
    `shared`, its circuits and pauses are the other replicas' too."""
    guard = guard if guard is not None else Guard(guard_config(settings))
    return Upstream(
        client,
        settings.upstream,
        guard=guard,
        max_bytes=settings.max_document_bytes,
        optional_deadline=settings.upstream_timeout,
        shared=shared,
        metrics=metrics,
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
    shared = shared_store(settings)
    metrics = Metrics()
    metrics.gauge("shim_info", 1, __version__, settings.mode.value)
    upstream = upstream_for(settings, client, shared=shared, metrics=metrics)
    index = SimpleIndex(upstream, refresh_every=settings.index_refresh, shared=shared_index(settings, shared))
    cache = document_cache(settings, shared)
    cache.counted = metrics.looked_up
    adopt_former_catalog(settings)
    catalog = CatalogReader(
        settings.catalog_path, connection_factory=catalog_connection_factory, upstream=settings.upstream
    )
    ready = asyncio.Event() if settings.catalog_writer else None
    files_base = settings.files_upstream.base if settings.files_upstream is not None else None
    store = DocumentStore(upstream, cache, index, recheck=settings.probe_interval, files_base=files_base)
    if settings.max_archive_bytes:
        store.archives = ArchiveLimits(network=settings.max_archive_bytes, member=settings.max_document_bytes)
    if not settings.catalog_writer:
        follow_catalog(store, catalog, following=True)
    # The election is only taken part in where asked (the service's lifespan, `catalog refresh`).
    election = Election(settings.catalog_path, retry=settings.catalog_takeover)
    observer = CatalogObserver(settings.catalog_path, connection_factory=catalog_connection_factory)
    services = Services(
        store,
        index,
        settings.upstream.base,
        catalog,
        ready,
        election,
        Observations(observer, ready=ready),
        shared,
        metrics,
    )
    return services, client


def shared_store(settings: Settings) -> SharedRedis | None:
    """The Redis every replica shares (SHIM_CACHE_URL), or None: everything in process. Every key it is given has a
    time to live; what that adds up to, measured, and the `maxmemory` and policy Redis needs for it are in README,
    "Replicas on one Redis" (the store warns at start when Redis has neither)."""
    if settings.cache_url is None:
        return None
    from shim.shared.store import SharedRedis  # here: redis-py is loaded only by a service that shares

    credentials = settings.upstream.credentials
    identity = "" if credentials is None else f"{credentials.username}\0{credentials.password.reveal()}"
    return SharedRedis(
        settings.cache_url,
        timeout=settings.cache_timeout,
        upstream_base=settings.upstream.base,
        upstream_identity=identity,
    )


def document_cache(settings: Settings, shared: SharedRedis | None) -> DocumentCache:
    """The document cache: in process, and with `shared` its second level on Redis (the lock of a fetch lasting
    the upstream deadline and a margin: see shim.upstream.shared_documents, also for Redis's `maxmemory`)."""
    storage = MemoryStorage(settings.cache_max_bytes)
    policy = Policy(
        soft_ttl=settings.cache_soft_ttl,
        hard_ttl=settings.cache_hard_ttl,
        not_found_ttl=settings.not_found_ttl,
        stale_if_error=settings.stale_if_error,
    )
    if shared is None:
        return DocumentCache(storage, **policy)
    return SharedDocumentCache(storage, shared=shared, lock_timeout=settings.upstream_deadline + LOCK_SLACK, **policy)


def shared_index(settings: Settings, shared: SharedRedis | None) -> SharedIndex | None:
    """The Simple index's copy on Redis, which replicas take in turn to fetch (None: each fetches its own)."""
    if shared is None:
        return None
    return SharedIndex(shared, lock_timeout=settings.upstream_deadline + INDEX_LOCK_SLACK)


def follow_catalog(store: DocumentStore, catalog: CatalogReader, *, following: bool) -> None:
    """While the change feed is written elsewhere it may be ahead of this process: its serials are floors too."""
    if following:
        store.reported_serial = FollowedSerials(catalog).serial_of
    else:
        store.reported_serial = None


async def keep_what_calls_read(services: Services) -> None:
    """For the service's life: every project document read for a call or a pass-through goes to the catalog."""
    observations = services.observations
    if observations is None:
        return
    services.store.on_project = observations.offer
    try:
        await observations.run()
    finally:
        services.store.on_project = None


@dataclass(frozen=True)
class CatalogWork:
    """The catalog's one writer and the work that runs on it, in the service or as `pypi-xmlrpc-shim catalog`."""

    writer: CatalogWriter
    refresher: Refresher
    crawler: Crawler | None  # only when SHIM_CRAWL_RATE is above 0
    poller: FeedPoller | None = None  # the change feed's fast path, unless SHIM_FEED_POLL is 0

    async def run(self, settings: Settings, *, crawl: bool = True) -> None:
        """The catalog's background work, for ever: the seed first, then the refresher and its feed poller and (with
        `crawl`, when set) the crawler. The service's lifespan starts it as one task, `pypi-xmlrpc-shim catalog
        refresh` without the crawler; cancelled, it stops them all."""
        await self.seed(settings)
        jobs: list[Coroutine[Any, Any, object]] = [self.refresher.run(settings.index_refresh)]
        if self.poller is not None:
            jobs.append(self.poller.run())
        if crawl and self.crawler is not None:
            jobs.append(self.crawler.follow())
        # One job that ends (or fails) never stops the others: the change feed outlives a crawler's bug.
        for outcome in await asyncio.gather(*jobs, return_exceptions=True):
            if isinstance(outcome, Exception):
                logger.error("catalog work stopped: %r", outcome)

    async def seed(self, settings: Settings) -> None:
        """SHIM_CATALOG_SEED, imported before the first refresh when the catalog is empty or missing."""
        if settings.catalog_seed is not None:
            upstream, limit = self.refresher.store.upstream, settings.snapshot_max_bytes
            await seed_catalog(
                self.writer, upstream, settings.catalog_seed, max_bytes=limit, timeout=settings.seed_timeout
            )

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
    the refresher's and the poller's turns are timed by `clock` and `sleep` (a test's fake clock; the crawler keeps
    its own, as it starts a minute after the first look)."""
    # The writer shares what it finds of the file with the reader: /healthz and the faults report it.
    writer = CatalogWriter(
        settings.catalog_path,
        connection_factory=connection_factory,
        state=services.catalog.state,
        upstream=settings.upstream,
    )
    refresher = Refresher(
        writer, services.store, services.index, clock=clock, sleep=sleep, ready=services.changes_ready
    )
    crawler = Crawler(writer, services.store, rate=settings.crawl_rate) if settings.crawl_rate > 0 else None
    if crawler is not None:  # the names calls and pass-through ask about are read first
        services.store.asked = crawler.want
    poller = None
    if settings.feed_poll > 0:
        poller = FeedPoller(refresher, every=settings.feed_poll, recheck=settings.index_refresh, sleep=sleep)
    return CatalogWork(writer, refresher, crawler, poller)


class CatalogRole:
    """This process's part in writing the catalog: elected, its writer (`CatalogWork.run`); else a standby that
    answers from the file the writer keeps, keeps its own Simple index fresh, and takes over when the writer goes,
    continuing from the serials the catalog holds (the refresher reads them from the file as it starts)."""

    def __init__(self, settings: Settings, services: Services, open_work: Callable[[], CatalogWork]) -> None:
        assert services.election is not None
        self.settings = settings
        self.services = services
        self.election = services.election
        self.open_work = open_work
        self.work: CatalogWork | None = None

    def start(self) -> CatalogWork | None:
        """The first try, at once: the work, when this process is elected."""
        if self.work is None and self.election.try_acquire():
            self.work = self.open_work()
        return self.work

    async def run(self, started: Callable[[CatalogWork], None] = lambda work: None) -> None:
        if self.start() is None:
            await self._stand_by()
            self.start()
            assert self.work is not None
            started(self.work)
        assert self.work is not None
        await self.work.run(self.settings)

    async def _stand_by(self) -> None:
        services = self.services
        if services.changes_ready is not None:
            services.changes_ready.set()  # no first pass here to wait for: callers read the writer's file
        follow_catalog(services.store, services.catalog, following=True)
        index = asyncio.create_task(services.index.run())
        try:
            await self.election.elected()
        finally:
            index.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await index
        follow_catalog(services.store, services.catalog, following=False)

    def close(self) -> None:
        """The writer's file first, then the role: no write can follow the lock's release."""
        if self.work is not None:
            self.work.close()
        self.election.close()
