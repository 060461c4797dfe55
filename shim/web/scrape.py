"""`GET /metrics`: the Prometheus text format (OpenMetrics when the scraper asks), of every worker under
`--workers` (shim.metrics.processes). SHIM_METRICS=false answers it 404; with SHIM_METRICS_TOKEN, only a request
carrying that bearer token is answered (401 otherwise, compared in constant time)."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from shim.config.settings import Settings
from shim.metrics.exposition import exposition
from shim.web.responses import not_found
from shim.web.vitals import Vitals
from shim.xmlrpc.context import Services

__all__ = ["metrics_routes"]

UNAUTHORIZED = "401 Unauthorized: /metrics needs the bearer token SHIM_METRICS_TOKEN names.\n"


def _authorized(request: Request, settings: Settings) -> bool:
    token = settings.metrics_token
    if token is None:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.reveal().encode())


async def metrics(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    if not settings.metrics:
        return not_found("text")
    if not _authorized(request, settings):
        return PlainTextResponse(UNAUTHORIZED, status_code=401, headers={"WWW-Authenticate": "Bearer"})
    vitals: Vitals = request.app.state.vitals
    vitals.ask()  # the gauges of what memory holds set now; the catalog's as last sampled
    services: Services = request.app.state.services
    body, content_type = exposition(services.metrics, request.headers.get("accept", ""))
    return Response(body, headers={"content-type": content_type, "cache-control": "no-store"})


def metrics_routes() -> list[Route]:
    return [Route("/metrics", metrics, methods=["GET"])]
