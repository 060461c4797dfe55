"""The ASGI application: XML-RPC endpoints per mode, the docs page, and the request-body guard.

XML-RPC is answered on POST `/pypi`, `/pypi/`, `/RPC2` and `/`, in the default mode, and under the
prefixes `/restore/`, `/today/` and `/removed/` in that mode. One event loop per process: anything that
must be shared between processes goes through an external store, never through state kept here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import re
import sys
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from shim import __version__
from shim.cache import DocumentCache, MemoryStorage
from shim.context import Services
from shim.dispatch import Dispatcher
from shim.docs import docs_page
from shim.documents import DocumentStore
from shim.faults import APPLICATION_ERROR, NOT_WELL_FORMED, SERVICE_UNAVAILABLE
from shim.index import ProjectIndex
from shim.metaindex import MetaIndex
from shim.methods import METHODS
from shim.passthrough import passthrough_routes
from shim.protocol import dump_fault
from shim.ratelimit import RateLimiter
from shim.refresher import Crawler, Refresher
from shim.resilience import Guard, GuardConfig
from shim.settings import Settings, SettingsError
from shim.table import MethodTable, Mode
from shim.upstream import Upstream, build_client

__all__ = ["create_app"]

logger = logging.getLogger("shim.app")

XML_TYPES = ("text/xml", "application/xml")
XMLRPC_CONTENT_TYPE = "text/xml; charset=UTF-8"
ENDPOINT_PATHS = ("/pypi", "/pypi/", "/RPC2", "/")
# Every method reaches the endpoint, which answers the wrong ones as Warehouse does.
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
MODE_PREFIXES = {"": None, "/restore": Mode.RESTORE, "/today": Mode.PYPI_TODAY, "/removed": Mode.REMOVED}


class CollapseSlashes:
    """`//pypi` is `/pypi`: some clients (stdeb's transport) double the slash, and PyPI answered them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            scope = {**scope, "path": re.sub("/{2,}", "/", scope["path"])}
        await self.app(scope, receive, send)


class BodyRefused(Exception):
    """The body is too large, or encoded in a way we do not read; answered as unparsable."""


def _xmlrpc_bytes(body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, headers={"content-type": XMLRPC_CONTENT_TYPE, **(headers or {})})


def client_address(request: Request, settings: Settings) -> str:
    """The caller: the peer, or the address a trusted proxy forwarded (X-Forwarded-For, nearest untrusted)."""
    peer = request.client.host if request.client else ""
    if not _trusted(peer, settings):
        return peer
    forwarded = [a.strip() for a in request.headers.get("x-forwarded-for", "").split(",") if a.strip()]
    for address in reversed(forwarded):
        if not _trusted(address, settings):
            return address
    return forwarded[0] if forwarded else peer


def _trusted(address: str, settings: Settings) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in settings.trusted_proxies)


def _not_found() -> Response:
    # The index answers an unknown path this way; "removed" mode is the endpoint gone.
    return PlainTextResponse("404 Not Found", status_code=404)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, decompressed, refused as soon as it would pass `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyRefused(f"Content-Length {declared}")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        decoder: Any = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        decoder = zlib.decompressobj()
    elif encoding in ("identity", ""):
        decoder = None
    else:
        raise BodyRefused(f"Content-Encoding {encoding!r}")
    parts: list[bytes] = []
    size = 0
    chunks: AsyncIterator[bytes] = request.stream()
    async for chunk in chunks:
        if decoder is not None:
            try:
                # max_length bounds what one chunk may expand to: a small bomb never grows past the cap.
                chunk = decoder.decompress(chunk, limit + 1 - size)
            except zlib.error as exc:
                raise BodyRefused(f"bad {encoding} data: {exc}") from None
            if decoder.unconsumed_tail:
                raise BodyRefused("decompressed body over the limit")
        size += len(chunk)
        if size > limit:
            raise BodyRefused("body over the limit")
        parts.append(chunk)
    return b"".join(parts)


class XMLRPCEndpoint:
    """Answers one XML-RPC path in a fixed mode, or in the default mode when `mode` is None."""

    def __init__(self, settings: Settings, dispatcher: Dispatcher, mode: Mode | None, calls: asyncio.Semaphore) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.mode = mode
        self.calls = calls  # shared by every endpoint: the cap on calls in progress

    async def handle(self, request: Request) -> Response:
        mode = self.mode or self.settings.mode
        if mode is Mode.REMOVED:
            return _not_found()
        is_xml = _media_type(request) in XML_TYPES
        if request.method != "POST":
            if is_xml:  # Warehouse answers another method on its XML-RPC route with this fault.
                return _xmlrpc_bytes(dump_fault(APPLICATION_ERROR.code, APPLICATION_ERROR.string))
            if request.method in ("GET", "HEAD") and request.url.path.endswith("/"):
                return HTMLResponse(docs_page(self.dispatcher.table, self.settings, mode))
            return PlainTextResponse(
                "This is an XML-RPC endpoint: POST a text/xml methodCall.\n", status_code=405, headers={"Allow": "POST"}
            )
        if not is_xml:
            return PlainTextResponse("XML-RPC calls must be sent as text/xml or application/xml.\n", status_code=415)
        try:
            async with asyncio.timeout(self.settings.body_timeout):
                body = await _read_body(request, self.settings.max_body_bytes)
        except BodyRefused as exc:
            logger.warning("request body refused (%s); SHIM_MAX_BODY_BYTES is %d", exc, self.settings.max_body_bytes)
            return _xmlrpc_bytes(dump_fault(NOT_WELL_FORMED.code, NOT_WELL_FORMED.string))
        except TimeoutError:
            logger.warning("request body not received within SHIM_BODY_TIMEOUT=%ds", self.settings.body_timeout)
            return PlainTextResponse("Request body timed out.\n", status_code=408)
        except ClientDisconnect:
            return Response(status_code=400)
        if self.calls.locked():
            # Past the cap on calls in progress: a quick, well-formed refusal rather than a queue.
            logger.warning("over SHIM_MAX_CONCURRENT_CALLS=%d: call refused", self.settings.max_concurrent_calls)
            return _xmlrpc_bytes(dump_fault(SERVICE_UNAVAILABLE.code, SERVICE_UNAVAILABLE.string), {"Retry-After": "1"})
        async with self.calls:
            try:
                async with asyncio.timeout(self.settings.call_timeout):
                    answer = await self.dispatcher.handle(body, mode, client_address(request, self.settings))
            except TimeoutError:
                logger.warning("a call took longer than SHIM_CALL_TIMEOUT=%gs", self.settings.call_timeout)
                return _xmlrpc_bytes(dump_fault(SERVICE_UNAVAILABLE.code, SERVICE_UNAVAILABLE.string))
        return _xmlrpc_bytes(answer.body, answer.headers)


def _routes(settings: Settings, dispatcher: Dispatcher) -> list[Route]:
    routes = []
    calls = asyncio.Semaphore(settings.max_concurrent_calls)
    for prefix, mode in MODE_PREFIXES.items():
        endpoint = XMLRPCEndpoint(settings, dispatcher, mode, calls)
        paths = {prefix + path for path in ENDPOINT_PATHS} | ({prefix} if prefix else set())
        for path in sorted(paths):
            routes.append(Route(path, endpoint.handle, methods=ANY_METHOD, include_in_schema=False))
    return routes


async def _health(request: Request) -> Response:
    """Liveness, and what the service has learnt of its upstream so far (never a credential)."""
    services: Services = request.app.state.services
    snapshot = services.index.snapshot
    index = None
    if snapshot is not None:
        index = {
            "projects": len(snapshot.listing.names),
            "last_serial": snapshot.listing.last_serial,
            "format": "json" if snapshot.is_json else "html",
            "serials": snapshot.listing.serials is not None,
            "fetched_at": snapshot.fetched_at,
        }
    coverage = await services.meta.run(services.meta.coverage)
    guard = services.store.upstream.guard
    return JSONResponse(
        {
            "status": "ok",
            "version": __version__,
            "upstream": services.base_url,
            # Reported, never used to leave the rotation: stale copies and faults still answer well.
            "upstream_health": {"circuit": guard.state, "consecutive_failures": guard.failures, **guard.counters},
            "stale_served": services.store.cache.stale_served,
            "index": index,
            "per_version_json": services.store.capabilities.per_version_json,
            "metadata_index": dataclasses.asdict(coverage),
        }
    )


async def _ready(request: Request) -> Response:
    """Ready once the first Simple index is loaded; the upstream's later health does not change it."""
    services: Services = request.app.state.services
    if services.index.snapshot is None:
        return JSONResponse({"ready": False, "reason": "the Simple index is not loaded yet"}, status_code=503)
    return JSONResponse({"ready": True})


def configure_logging(settings: Settings) -> None:
    """Log the service's own messages beside uvicorn's, at the configured level."""
    shim_logger = logging.getLogger("shim")
    shim_logger.setLevel(settings.log_level.value.upper())
    if not shim_logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        shim_logger.addHandler(handler)
        shim_logger.propagate = False


def build_services(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> tuple[Services, httpx.AsyncClient]:
    """The upstream client, the Simple index and the document cache, wired together."""
    client = build_client(timeout=settings.upstream_timeout, ca_bundle=settings.ca_bundle, transport=transport)
    guard = Guard(
        GuardConfig(
            retries=settings.upstream_retries,
            deadline=settings.upstream_deadline,
            threshold=settings.circuit_threshold,
            cooldown=settings.circuit_cooldown,
            max_concurrent=settings.upstream_concurrency,
        )
    )
    upstream = Upstream(client, settings.upstream, guard=guard, max_bytes=settings.max_document_bytes)
    index = ProjectIndex(upstream, refresh_every=settings.index_refresh)
    cache = DocumentCache(
        MemoryStorage(settings.cache_max_bytes),
        soft_ttl=settings.cache_soft_ttl,
        hard_ttl=settings.cache_hard_ttl,
        not_found_ttl=settings.not_found_ttl,
        stale_if_error=settings.stale_if_error,
    )
    meta = MetaIndex(settings.index_path, writer=False)
    ready = asyncio.Event() if settings.index_writer else None
    store = DocumentStore(upstream, cache, index)
    if not settings.index_writer:
        # The change feed is written elsewhere and may be ahead of this process: its serials are floors too.
        store.reported_serial = lambda project: meta.run(meta.serial_of, project)
    return Services(store, index, settings.upstream.base, meta, ready), client


def create_app(
    settings: Settings | None = None,
    *,
    methods: MethodTable = METHODS,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The service. Without `settings`, they are read from the environment (uvicorn's `--factory`).

    `transport` replaces the network under the upstream client (tests pass a fake index).
    """
    if settings is None:
        try:
            settings = Settings.load()
        except SettingsError as exc:
            print(f"pypi-xmlrpc-shim: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        configure_logging(settings)
    services, client = build_services(settings, transport)
    dispatcher = Dispatcher(
        methods,
        services,
        domain=settings.upstream.host,
        allow_i8=settings.allow_i8,
        search_fill_timeout=settings.search_fill_timeout,
        limiter=RateLimiter(settings.rate_limit) if settings.rate_limit is not None else None,
    )
    routes = [
        Route("/healthz", _health, methods=["GET"]),
        Route("/readyz", _ready, methods=["GET"]),
        *passthrough_routes(settings, services, list(MODE_PREFIXES)),
        *_routes(settings, dispatcher),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The Simple index loads in the background: the first calls that need it wait, the others don't.
        # The index refresher keeps it fresh and, as the metadata index's one writer, the change feed too.
        tasks: list[asyncio.Task[Any]] = []
        writer = None
        if settings.index_writer:
            writer = MetaIndex(settings.index_path, writer=True)
            refresher = Refresher(writer, services.store, services.index, ready=services.changes_ready)
            app.state.refresher = refresher
            tasks.append(asyncio.create_task(refresher.run(settings.index_refresh)))
            if settings.crawl_rate > 0:
                crawler = Crawler(writer, services.store, rate=settings.crawl_rate)
                tasks.append(asyncio.create_task(crawler.run()))
        else:
            tasks.append(asyncio.create_task(services.index.run()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await client.aclose()
            services.meta.close()
            if writer is not None:
                writer.close()

    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(CollapseSlashes)])
    app.state.settings = settings
    app.state.dispatcher = dispatcher
    app.state.services = services
    logger.info("answering XML-RPC from %s in %s mode", settings.upstream, settings.mode.value)
    return app
