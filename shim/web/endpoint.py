"""The XML-RPC endpoint: one per path and mode, with its guards before dispatch.

XML-RPC is answered on POST `/pypi`, `/pypi/`, `/RPC2` and `/`, in the default mode, and under the
prefixes `/restore/`, `/today/` and `/removed/` in that mode. Before a body reaches dispatch it is bounded
in size (after decompression) and in time, the caller's address is worked out (trusted proxies only), and
the calls in progress are capped; a call is cut off at its deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import zlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from shim.config.settings import Settings
from shim.modes import Mode
from shim.web.docs import docs_page
from shim.xmlrpc.dispatch import Dispatcher
from shim.xmlrpc.faults import APPLICATION_ERROR, NOT_WELL_FORMED, SERVICE_UNAVAILABLE
from shim.xmlrpc.protocol import dump_fault

__all__ = ["MODE_PREFIXES", "client_address", "xmlrpc_routes"]

logger = logging.getLogger("shim.web")

XML_TYPES = ("text/xml", "application/xml")
XMLRPC_CONTENT_TYPE = "text/xml; charset=UTF-8"
ENDPOINT_PATHS = ("/pypi", "/pypi/", "/RPC2", "/")
# Every method reaches the endpoint, which answers the wrong ones as Warehouse does.
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
MODE_PREFIXES = {"": None, "/restore": Mode.RESTORE, "/today": Mode.PYPI_TODAY, "/removed": Mode.REMOVED}


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


def xmlrpc_routes(settings: Settings, dispatcher: Dispatcher) -> list[Route]:
    routes = []
    calls = asyncio.Semaphore(settings.max_concurrent_calls)
    for prefix, mode in MODE_PREFIXES.items():
        endpoint = XMLRPCEndpoint(settings, dispatcher, mode, calls)
        paths = {prefix + path for path in ENDPOINT_PATHS} | ({prefix} if prefix else set())
        for path in sorted(paths):
            routes.append(Route(path, endpoint.handle, methods=ANY_METHOD, include_in_schema=False))
    return routes
