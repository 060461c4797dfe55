"""The XML-RPC endpoint: one per path and mode, with its guards before dispatch.

XML-RPC is answered on POST `/pypi`, `/pypi/`, `/RPC2`, `/RPC2/` and `/`, in the default mode, and under the
prefixes `/restore/`, `/today/` and `/removed/` in that mode, each form answered itself: xmlrpc.client follows
no redirect (a 307 is its ProtocolError). Before a body reaches dispatch it is bounded
in size (after decompression) and in time, the caller's address is worked out (trusted proxies only), and
the calls in progress are capped; a call is cut off at its deadline.

A POST to an endpoint's path is served straight from the ASGI scope (`XMLRPCFront`): on a cache hit, matching
the app's fifty routes in turn and building Starlette's request and response objects were a third of the call.
Every other request to those paths (the status page, a wrong method) goes through the routes.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shim import encodings
from shim.config.settings import Settings
from shim.metrics.clients import client_family
from shim.modes import Mode
from shim.web import compression
from shim.web.addresses import PeerAddresses
from shim.web.deadline import Deadline
from shim.web.exchanges import REQUEST_ID, RequestLog, client_key
from shim.web.responses import not_found
from shim.web.status import status_response
from shim.xmlrpc.dispatch import AnswerBody, Dispatcher, Unserved

__all__ = ["MODE_PREFIXES", "XMLRPCFront", "collapsed", "xmlrpc_endpoints", "xmlrpc_routes"]

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


class _Head:
    """The few request headers a call reads, taken from the scope in one pass."""

    __slots__ = (
        "accept_encoding",
        "content_encoding",
        "content_length",
        "forwarded",
        "media_type",
        "request_id",
        "user_agent",
    )

    def __init__(self, scope: Scope) -> None:
        self.media_type = self.content_length = self.content_encoding = ""
        self.accept_encoding: str | None = None
        self.user_agent: str | None = None
        self.forwarded: list[str] = []
        self.request_id: bytes | None = None
        typed = sized = False
        for key, value in scope["headers"]:
            if key == b"content-type":
                if not typed:  # the first line, as Starlette's headers give it
                    self.media_type, typed = value.decode("latin-1").split(";", 1)[0].strip().lower(), True
            elif key == b"content-length":
                if not sized:
                    self.content_length, sized = value.decode("latin-1"), True
            elif key == b"content-encoding":
                self.content_encoding = _listed(self.content_encoding or None, value)
            elif key == b"accept-encoding":
                self.accept_encoding = _listed(self.accept_encoding, value)
            elif key == b"x-forwarded-for":
                self.forwarded.append(value.decode("latin-1"))
            elif key == b"user-agent":
                self.user_agent = value.decode("latin-1")
            elif key == REQUEST_ID and self.request_id is None:
                self.request_id = value


def _listed(before: str | None, line: bytes) -> str:
    """A header's lines so far, with one more: several lines of a list header are one list (RFC 9110 §5.3)."""
    given = line.decode("latin-1")
    return given if before is None else f"{before}, {given}"


async def _chunks(receive: Receive, first: Message) -> AsyncIterator[bytes]:
    message = first
    while True:
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
        message = await receive()


async def _read_body(head: _Head, receive: Receive, limit: int) -> bytes:
    """The request body, decompressed, refused as soon as it would pass `limit` bytes."""
    declared = head.content_length
    if declared.isdigit() and int(declared) > limit:
        raise BodyRefused(f"Content-Length {declared}")
    first = await receive()
    if not head.content_encoding and first["type"] == "http.request" and not first.get("more_body", False):
        body: bytes = first.get("body", b"")  # the whole body in one message, as it is: nothing to undo
        if len(body) > limit:
            raise BodyRefused(f"a body over {limit} bytes")
        return body
    try:
        return await encodings.read_decoded(_chunks(receive, first), head.content_encoding, limit)
    except (encodings.TooLarge, encodings.Undecodable) as exc:
        raise BodyRefused(str(exc)) from None


class CallsInProgress:
    """What every endpoint shares: the count of calls in progress, under its cap (one event loop: a count, not a
    lock; past the cap a call is refused, never queued), the callers' addresses as the rate limits count them, and
    what the logs say of each call."""

    def __init__(self, settings: Settings, log: RequestLog) -> None:
        self.limit = settings.max_concurrent_calls
        self.count = 0
        self.addresses = PeerAddresses(settings)
        self.log = log  # each call's record for the logs, and its access line

    def full(self) -> bool:
        return self.count >= self.limit


class XMLRPCEndpoint:
    """Answers one XML-RPC path in a fixed mode, or in the default mode when `mode` is None."""

    def __init__(self, settings: Settings, dispatcher: Dispatcher, mode: Mode | None, calls: CallsInProgress) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.mode = mode
        self.calls = calls  # shared by every endpoint: the cap on calls in progress

    async def handle(self, request: Request) -> Response:
        """Anything but a POST (which `XMLRPCFront` sends to `post`)."""
        mode = self.mode or self.settings.mode
        if mode is Mode.REMOVED:
            return not_found("text")  # "removed" mode is the endpoint gone, as the index answers an unknown path
        if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() in XML_TYPES:
            # Warehouse answers another method on its XML-RPC route with this fault.
            return _xmlrpc_bytes(self.dispatcher.unserved(Unserved.WRONG_HTTP_METHOD))
        if request.method in ("GET", "HEAD") and request.url.path.endswith("/"):
            dispatcher = self.dispatcher
            return status_response(
                dispatcher.table,
                self.settings,
                dispatcher.services,
                prefixes=MODE_PREFIXES,
                here=self.mode,
                live_only="live" in request.query_params,
            )
        return PlainTextResponse(
            "This is an XML-RPC endpoint: POST a text/xml methodCall.\n", status_code=405, headers={"Allow": "POST"}
        )

    async def post(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        head = _Head(scope)
        log = self.calls.log
        record, token = log.open(scope, head.request_id)  # as shim.web.exchanges does for every other request
        status = 500
        try:
            outcome = await self._post(scope, receive, head)
            if isinstance(outcome, Response):
                outcome.headers["x-request-id"] = record.request_id
                status = outcome.status_code
                await outcome(scope, receive, send)
                return
            body, headers = outcome
            status = 200
            min_bytes = self.settings.compress_min_bytes
            if isinstance(body, bytes) and not compression.worth_compressing(len(body), min_bytes):
                # The common small answer, straight to the server: no response object to build.
                raw = [(b"content-type", XMLRPC_CONTENT_TYPE.encode()), (b"content-length", str(len(body)).encode())]
                raw += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
                raw += compression.vary(min_bytes)
                raw.append((REQUEST_ID, record.request_id.encode()))
                await send({"type": "http.response.start", "status": 200, "headers": raw})
                await send({"type": "http.response.body", "body": body})
                return
            sent = {"content-type": XMLRPC_CONTENT_TYPE, **headers, "x-request-id": record.request_id}
            response = await compression.encoded(head.accept_encoding, body, sent, min_bytes)
            await response(scope, receive, send)
        finally:
            log.close(scope, record, token, status, started)

    async def _post(self, scope: Scope, receive: Receive, head: _Head) -> Response | tuple[AnswerBody, dict[str, str]]:
        mode = self.mode or self.settings.mode
        if mode is Mode.REMOVED:
            return not_found("text")
        if head.media_type not in XML_TYPES:
            return PlainTextResponse("XML-RPC calls must be sent as text/xml or application/xml.\n", status_code=415)
        self.dispatcher.metrics.client(client_family(head.user_agent))
        settings = self.settings
        reading = True
        try:
            async with Deadline(settings.body_timeout) as deadline:  # the body's bound, then the call's
                try:
                    body = await _read_body(head, receive, settings.max_body_bytes)
                except BodyRefused as exc:
                    logger.warning("request body refused (%s); SHIM_MAX_BODY_BYTES is %d", exc, settings.max_body_bytes)
                    return self.dispatcher.unserved(Unserved.BODY_REFUSED), {}
                except ClientDisconnect:
                    return Response(status_code=400)
                reading = False
                if self.calls.full():
                    # Past the cap on calls in progress: a quick, well-formed refusal rather than a queue.
                    logger.warning("over SHIM_MAX_CONCURRENT_CALLS=%d: call refused", settings.max_concurrent_calls)
                    return self.dispatcher.unserved(Unserved.BUSY), {"Retry-After": "1"}
                deadline.move(settings.call_timeout)
                self.calls.count += 1
                try:
                    client = scope.get("client")
                    address = self.calls.addresses(client[0] if client else "", head.forwarded)
                    answer = await self.dispatcher.handle(body, mode, address)
                finally:
                    self.calls.count -= 1
        except TimeoutError:
            if reading:
                logger.warning("request body not received within SHIM_BODY_TIMEOUT=%ds", settings.body_timeout)
                return PlainTextResponse("Request body timed out.\n", status_code=408)
            logger.warning("a call took longer than SHIM_CALL_TIMEOUT=%gs", settings.call_timeout)
            return self.dispatcher.unserved(Unserved.TIMED_OUT), {}
        return answer.body, answer.headers


def collapsed(path: str) -> str:
    """`//pypi` is `/pypi`: some clients (stdeb's transport) double the slash, and PyPI answered them."""
    return re.sub("/{2,}", "/", path)


class XMLRPCFront:
    """Sends each POST to an XML-RPC path straight to its endpoint; every other request to the app's routes."""

    def __init__(self, app: ASGIApp, endpoints: dict[str, XMLRPCEndpoint]) -> None:
        self.app = app
        self.endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):  # as Starlette's routes match: the path below the app's root
                path = path[len(root) :]
            endpoint = self.endpoints.get(collapsed(path) if "//" in path else path)
            if endpoint is not None:
                await endpoint.post(scope, receive, send)
                return
        await self.app(scope, receive, send)


def xmlrpc_endpoints(
    settings: Settings, dispatcher: Dispatcher, log: RequestLog | None = None
) -> dict[str, XMLRPCEndpoint]:
    """Each XML-RPC path's endpoint (`log`: what the logs say of each call, shared with the app's other requests)."""
    endpoints: dict[str, XMLRPCEndpoint] = {}
    calls = CallsInProgress(settings, log if log is not None else RequestLog(settings, client_key()))
    for prefix, mode in MODE_PREFIXES.items():
        endpoint = XMLRPCEndpoint(settings, dispatcher, mode, calls)
        paths = {prefix + path for path in ENDPOINT_PATHS} | ({prefix} if prefix else set())
        endpoints.update((path, endpoint) for path in sorted(paths))
    return endpoints


def xmlrpc_routes(endpoints: dict[str, XMLRPCEndpoint]) -> list[Route]:
    """The routes of every request to an XML-RPC path but the POSTs, which `XMLRPCFront` answers."""
    return [
        Route(path, endpoint.handle, methods=ANY_METHOD, include_in_schema=False)
        for path, endpoint in endpoints.items()
    ]
