"""Liveness and readiness: `/healthz` says what the service has learnt of its upstream and its stores, from memory
only, `/readyz` whether the first Simple index is loaded. Neither ever shows a credential."""

from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shim import __version__
from shim.web.vitals import Vitals
from shim.xmlrpc.context import Services

__all__ = ["health_routes"]


async def health(request: Request) -> Response:
    """Liveness: 200 whenever the process answers, never waiting on the catalog, Redis or the upstream; what they
    said when last sampled (shim.web.vitals) is in the body, and the parts that are degraded are named."""
    services: Services = request.app.state.services
    vitals: Vitals = request.app.state.vitals
    vitals.ask()
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
    state = services.catalog.state
    problem = state.problem
    store = services.store
    upstream = store.upstream
    capabilities: dict[str, object] = {
        "json_simple": None if snapshot is None else snapshot.is_json,
        "serials": None if snapshot is None else snapshot.listing.serials is not None,
        **store.capabilities.report(),
    }
    shared = services.shared
    # Degraded, never dead: a replica without its shared store still answers every call from its own state.
    degraded = ["shared"] if shared is not None and shared.degraded else []
    if problem is not None or (vitals.latest is not None and vitals.latest.problem is not None):
        degraded.append("catalog")
    return JSONResponse(
        {
            "status": "degraded" if degraded else "ok",
            "degraded": degraded,
            "shared": None if shared is None else shared.report(),
            "version": __version__,
            "upstream": services.base_url,
            # Reported, never used to leave the rotation: stale copies and faults still answer well.
            "upstream_health": upstream.guard.report(),  # the index's own origin, as in "origins"
            "origins": {origin: guard.report() for origin, guard in upstream.guards.items()},
            "optional_reads": upstream.optional.report(),
            "capabilities": capabilities,
            "stale_served": store.cache.stale_served,
            "index": index,
            "per_version_json": store.capabilities.per_version_json.offered,
            # The writer's and the reader's findings: an operator's error (permissions, a full disk) named.
            "catalog": {
                **vitals.catalog_report(),
                "writable": state.writable,
                "problem": None if problem is None else str(problem),
                **_role(services, vitals.role()),
            },
        }
    )


def _role(services: Services, role: str) -> dict[str, object]:
    """Whether this process writes the change feed (`writer`), stands by to (`standby`) or never does (`reader`),
    and what calls read that the catalog kept."""
    election, observations = services.election, services.observations
    return {
        "role": role,
        "pid": os.getpid(),
        "writer_pid": election.writer_pid if election is not None else None,
        "observed": None
        if observations is None
        else {"kept": observations.kept, "dropped": observations.dropped, "failed": observations.failed},
    }


async def ready(request: Request) -> Response:
    """Ready once the first Simple index is loaded; the upstream's later health does not change it."""
    services: Services = request.app.state.services
    if services.index.snapshot is None:
        return JSONResponse({"ready": False, "reason": "the Simple index is not loaded yet"}, status_code=503)
    return JSONResponse({"ready": True})


def health_routes() -> list[Route]:
    return [Route("/healthz", health, methods=["GET"]), Route("/readyz", ready, methods=["GET"])]
