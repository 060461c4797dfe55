"""The XML-RPC endpoint: one per path and mode, with its guards before dispatch.

XML-RPC is answered on POST `/pypi`, `/pypi/`, `/RPC2`, `/RPC2/` and `/`, in the default mode, and under the
prefixes `/restore/`, `/today/` and `/removed/` in that mode, each form answered itself: xmlrpc.client follows
no redirect (a 307 is its ProtocolError). Before a body reaches dispatch it is bounded
in size (after decompression) and in time, the caller's address is worked out (trusted proxies only), and
the calls in progress are capped; a call is cut off at its deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re

from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from shim import encodings
from shim.config.settings import Settings
from shim.modes import Mode
from shim.web import compression
from shim.web.docs import docs_page
from shim.web.responses import not_found
from shim.xmlrpc.dispatch import Dispatcher, Unserved

__all__ = ["MODE_PREFIXES", "client_address", "xmlrpc_routes"]

logger = logging.getLogger(__name__)

XML_TYPES = ("text/xml", "application/xml")
XMLRPC_CONTENT_TYPE = "text/xml; charset=UTF-8"
ENDPOINT_PATHS = ("/pypi", "/pypi/", "/RPC2", "/RPC2/", "/")
# Every method reaches the endpoint, which answers the wrong ones as Warehouse does.
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
MODE_PREFIXES = {"": None, "/restore": Mode.RESTORE, "/today": Mode.PYPI_TODAY, "/removed": Mode.REMOVED}


class BodyRefused(Exception):
    """The body is too large, or encoded in a way we do not read; answered as unparsable."""


def _xmlrpc_bytes(body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, headers={"content-type": XMLRPC_CONTENT_TYPE, **(headers or {})})


def client_address(request: Request, settings: Settings) -> str:
    """The caller, as the rate limits count it: the peer, or the client a trusted proxy forwarded.

    Every X-Forwarded-For line is read, in order, as one list (a proxy may add a line of its own rather than
    append to the client's). Walking it from the right, past the trusted proxies, the first other entry is the
    client. An entry that is no address (garbage, or a proxy's obfuscated name) is never a client: the hop that
    passed it on is. IPv6 clients are grouped by their SHIM_IPV6_PREFIX network, as a host holds a whole one.
    """
    peer = request.client.host if request.client else ""
    hop = _address(peer)
    if hop is None:
        return peer  # not an IP peer (a test client, a Unix socket): the only name there is
    if _trusted(hop, settings):
        lines = request.headers.getlist("x-forwarded-for")
        entries = [entry for line in lines for entry in line.split(",") if entry.strip()]
        for entry in reversed(entries):
            address = _address(entry)
            if address is None:
                break
            hop = address
            if not _trusted(address, settings):
                break
    return _client_key(hop, settings.ipv6_prefix)


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# uvicorn's own proxy-header middleware reads one header line and no ports, hence this. Quotes are allowed.
_ENTRY = re.compile(
    r"""
    "?(?:
        \[(?P<bracketed>[0-9A-Fa-f:.]+)\](?::[0-9]{1,5})?  # [2001:db8::1], [2001:db8::1]:443
      | (?P<v4>[0-9.]+)(?::[0-9]{1,5})?                   # 1.2.3.4, 1.2.3.4:5678
      | (?P<v6>[0-9A-Fa-f:.]+)                            # 2001:db8::1, ::ffff:1.2.3.4
    )"?
    """,
    re.VERBOSE,
)


def _address(text: str) -> IPAddress | None:
    """The IP address an X-Forwarded-For entry (or the peer) names, its port dropped; None for anything else."""
    match = _ENTRY.fullmatch(text.strip())
    if match is None:
        return None
    try:
        address = ipaddress.ip_address(match["bracketed"] or match["v4"] or match["v6"])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket's view of an IPv4 client
    return address


def _client_key(address: IPAddress, ipv6_prefix: int) -> str:
    if isinstance(address, ipaddress.IPv6Address) and ipv6_prefix < 128:
        return str(ipaddress.IPv6Network((address, ipv6_prefix), strict=False))
    return str(address)


def _trusted(address: IPAddress, settings: Settings) -> bool:
    return any(address in network for network in settings.trusted_proxies)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, decompressed, refused as soon as it would pass `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyRefused(f"Content-Length {declared}")
    try:
        return await encodings.read_decoded(request.stream(), request.headers.get("content-encoding", ""), limit)
    except (encodings.TooLarge, encodings.Undecodable) as exc:
        raise BodyRefused(str(exc)) from None


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
            return not_found("text")  # "removed" mode is the endpoint gone, as the index answers an unknown path
        is_xml = _media_type(request) in XML_TYPES
        if request.method != "POST":
            if is_xml:  # Warehouse answers another method on its XML-RPC route with this fault.
                return _xmlrpc_bytes(self.dispatcher.unserved(Unserved.WRONG_HTTP_METHOD))
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
            return _xmlrpc_bytes(self.dispatcher.unserved(Unserved.BODY_REFUSED))
        except TimeoutError:
            logger.warning("request body not received within SHIM_BODY_TIMEOUT=%ds", self.settings.body_timeout)
            return PlainTextResponse("Request body timed out.\n", status_code=408)
        except ClientDisconnect:
            return Response(status_code=400)
        if self.calls.locked():
            # Past the cap on calls in progress: a quick, well-formed refusal rather than a queue.
            logger.warning("over SHIM_MAX_CONCURRENT_CALLS=%d: call refused", self.settings.max_concurrent_calls)
            return _xmlrpc_bytes(self.dispatcher.unserved(Unserved.BUSY), {"Retry-After": "1"})
        async with self.calls:
            try:
                async with asyncio.timeout(self.settings.call_timeout):
                    answer = await self.dispatcher.handle(body, mode, client_address(request, self.settings))
            except TimeoutError:
                logger.warning("a call took longer than SHIM_CALL_TIMEOUT=%gs", self.settings.call_timeout)
                return _xmlrpc_bytes(self.dispatcher.unserved(Unserved.TIMED_OUT))
        headers = {"content-type": XMLRPC_CONTENT_TYPE, **answer.headers}
        accept = request.headers.get("accept-encoding")
        return await compression.encoded(accept, answer.body, headers, self.settings.compress_min_bytes)


def xmlrpc_routes(settings: Settings, dispatcher: Dispatcher) -> list[Route]:
    routes = []
    calls = asyncio.Semaphore(settings.max_concurrent_calls)
    for prefix, mode in MODE_PREFIXES.items():
        endpoint = XMLRPCEndpoint(settings, dispatcher, mode, calls)
        paths = {prefix + path for path in ENDPOINT_PATHS} | ({prefix} if prefix else set())
        for path in sorted(paths):
            routes.append(Route(path, endpoint.handle, methods=ANY_METHOD, include_in_schema=False))
    return routes
