"""The plain answers the pass-through routes and the file proxy share: not found, and the upstream failing."""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse, PlainTextResponse, Response

from shim.errors import UpstreamError

__all__ = ["not_found", "unavailable"]

logger = logging.getLogger(__name__)


def not_found(kind: str) -> Response:
    if kind == "json":
        return JSONResponse({"message": "Not Found"}, status_code=404)
    return PlainTextResponse("404 Not Found", status_code=404)


def unavailable(exc: UpstreamError) -> Response:
    logger.warning("pass-through failed: %s", exc)
    return PlainTextResponse("502 Bad Gateway: the upstream index did not answer.", status_code=502)
