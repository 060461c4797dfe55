"""The ASGI application: the XML-RPC endpoints, pass-through, health, and the tasks that keep it fresh.

One event loop per process: anything that must be shared between processes goes through an external
store, never through state kept here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from shim.catalog.schema import ConnectionFactory, open_sqlite
from shim.config.settings import Settings, SettingsError
from shim.methods.table import METHODS
from shim.shared.availability import SharedStoreRequired
from shim.web.endpoint import MODE_PREFIXES, XMLRPCEndpoint, XMLRPCFront, collapsed, xmlrpc_endpoints, xmlrpc_routes
from shim.web.exchanges import Exchanges, RequestLog
from shim.web.exchanges import client_key as new_client_key
from shim.web.health import health_routes
from shim.web.passthrough import passthrough_routes
from shim.web.scrape import metrics_routes
from shim.web.vitals import Vitals
from shim.wiring import (
    CatalogRole,
    CatalogWork,
    build_services,
    configure_logging,
    keep_what_calls_read,
    open_catalog_writer,
)
from shim.xmlrpc.dispatch import Dispatcher
from shim.xmlrpc.ratelimit import RateLimiter
from shim.xmlrpc.table import MethodTable

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


class CollapseSlashes:
    """`//pypi` is `/pypi` (`collapsed`), for every route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            scope = {**scope, "path": collapsed(scope["path"])}
            if isinstance(scope.get("raw_path"), bytes):  # what the server received, kept consistent with `path`
                scope["raw_path"] = re.sub(b"/{2,}", b"/", scope["raw_path"])
        await self.app(scope, receive, send)


class ShimApp(Starlette):
    """The service's app: an XML-RPC POST goes to its endpoint before Starlette's middleware (which wraps every
    send of every request), everything else through it and the routes."""

    endpoints: dict[str, XMLRPCEndpoint]
    request_log: RequestLog  # every request's record for the logs (the endpoints open their calls' themselves)

    def build_middleware_stack(self) -> ASGIApp:
        return XMLRPCFront(Exchanges(super().build_middleware_stack(), self.request_log), self.endpoints)


def create_app(
    settings: Settings | None = None,
    *,
    methods: MethodTable = METHODS,
    transport: httpx.AsyncBaseTransport | None = None,
    catalog_connection_factory: ConnectionFactory = open_sqlite,
    client_key: bytes | None = None,
) -> Starlette:
    """The service. Without `settings`, they are read from the environment (uvicorn's `--factory`).

    `transport` replaces the network under the upstream client (tests pass a fake index);
    `catalog_connection_factory` opens the catalog's file, for its readers and its writer; `client_key` keys the
    clients' hashes in the logs (SHIM_LOG_CLIENT=hash: the same in every worker; else one of this app's own).
    """
    if settings is None:
        try:
            settings = Settings.load()
        except SettingsError as exc:
            print(f"pypi-xmlrpc-shim: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        configure_logging(settings)
    services, client = build_services(settings, transport, catalog_connection_factory=catalog_connection_factory)
    dispatcher = Dispatcher(
        methods,
        services,
        domain=settings.upstream.host,
        allow_i8=settings.allow_i8,
        search_fill_timeout=settings.search_fill_timeout,
        limiter=RateLimiter(settings.rate_limit, shared=services.shared) if settings.rate_limit is not None else None,
        metrics=services.metrics,
    )
    request_log = RequestLog(settings, client_key if client_key is not None else new_client_key())
    endpoints = xmlrpc_endpoints(settings, dispatcher, request_log)
    vitals = Vitals(services)
    routes = [
        *health_routes(),
        *metrics_routes(),
        *passthrough_routes(settings, services, list(MODE_PREFIXES)),
        *xmlrpc_routes(endpoints),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The Simple index loads in the background: the first calls that need it wait, the others don't.
        # The refresher keeps it fresh and, as the catalog's one writer, the change feed too.
        # What calls read reaches the catalog from every process; the change feed has one writer, elected.
        loop = type(asyncio.get_running_loop())
        logger.info("serving on %s's event loop", "uvloop" if loop.__module__.startswith("uvloop") else "asyncio")
        shared = services.shared
        if shared is not None:  # refuses to start only when SHIM_CACHE_REQUIRED says Redis must answer
            try:
                await shared.connect(required=settings.cache_required)
            except SharedStoreRequired as exc:
                logger.error("%s", exc)
                raise
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(keep_what_calls_read(services)),
            asyncio.create_task(vitals.run()),
        ]
        if shared is not None:
            tasks.append(asyncio.create_task(shared.watch()))
        role = None
        if settings.catalog_writer:
            role = CatalogRole(
                settings,
                services,
                lambda: open_catalog_writer(settings, services, connection_factory=catalog_connection_factory),
            )

            def started(work: CatalogWork) -> None:
                app.state.refresher = work.refresher

            if (work := role.start()) is not None:  # elected at once: its refresher is there for the first call
                started(work)
            tasks.append(asyncio.create_task(role.run(started)))
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
            if shared is not None:
                await shared.close()
            services.catalog.close()
            if role is not None:
                role.close()
            if services.observations is not None:
                services.observations.close()

    app = ShimApp(routes=routes, lifespan=lifespan, middleware=[Middleware(CollapseSlashes)])
    app.endpoints = endpoints
    app.request_log = request_log
    app.state.settings = settings
    app.state.dispatcher = dispatcher
    app.state.services = services
    app.state.vitals = vitals
    logger.info("answering XML-RPC from %s in %s mode", settings.upstream, settings.mode.value)
    return app
