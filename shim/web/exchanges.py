"""Every request's record for the logs (shim.exchange), its id echoed, and (SHIM_ACCESS_LOG) its access line.

Every answer carries `X-Request-ID`, the client's own when it is a short token of safe characters, else a fresh one:
`Exchanges` wraps the app's routes, and the XML-RPC endpoints' fast path (shim.web.endpoint) does the same itself
without wrapping `send` (measured: a wrapped `send` cost 2.5 µs of a cache hit's 22, the record alone about 1 µs).
The access line replaces uvicorn's (which the command turns off), so that both log formats carry the request's id,
method, outcome and upstream requests. The client is named only when a line needs it: its address as the rate
limits count it (trusted proxies only, shim.web.addresses), or, with SHIM_LOG_CLIENT=hash, a keyed hash of it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from contextvars import Token

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shim.config.setting import LogClient
from shim.config.settings import Settings
from shim.exchange import Exchange, begin, end, request_id
from shim.logs import ACCESS_LOGGER
from shim.web.addresses import PeerAddresses

__all__ = ["REQUEST_ID", "ClientNames", "Exchanges", "RequestLog", "client_key"]

access_logger = logging.getLogger(ACCESS_LOGGER)

REQUEST_ID = b"x-request-id"
HASH_CHARS = 16  # hex characters of a client's hash kept: 64 bits, no two clients of a log alike


def client_key() -> bytes:
    """The key of the clients' hashes for one start of the service: made where it starts, given to each of its
    workers, kept nowhere (README, "Logs")."""
    return secrets.token_bytes(32)


class ClientNames:
    """A client's name in the logs: its address, or (SHIM_LOG_CLIENT=hash) an HMAC-SHA256 of it under `key`,
    cut to HASH_CHARS; each address's worked out once while it is among the last few thousand."""

    def __init__(self, settings: Settings, key: bytes, *, size: int = 4096) -> None:
        self.addresses = PeerAddresses(settings)
        self.key = key if settings.log_client is LogClient.HASH else None
        self.size = size
        self._named: dict[str, str] = {}

    def __call__(self, scope: Scope) -> str:
        client = scope.get("client")
        forwarded = [value.decode("latin-1") for key, value in scope["headers"] if key == b"x-forwarded-for"]
        address = self.addresses(client[0] if client else "", forwarded)
        if self.key is None:
            return address
        name = self._named.get(address)
        if name is None:
            if len(self._named) >= self.size:
                self._named.clear()
            digest = hmac.new(self.key, address.encode(), hashlib.sha256).hexdigest()
            name = self._named[address] = digest[:HASH_CHARS]
        return name


class RequestLog:
    """What every request shares for the logs: the clients' names, and whether each request has its access line."""

    def __init__(self, settings: Settings, key: bytes) -> None:
        self.access = settings.access_log
        self.names = ClientNames(settings, key)

    def open(self, scope: Scope, given: bytes | None) -> tuple[Exchange, Token[Exchange | None]]:
        """The request's record (its id `given` by the client, if fit), current until `close`."""
        record = Exchange(request_id(given), lambda: self.names(scope))
        return record, begin(record)

    def close(self, scope: Scope, record: Exchange, token: Token[Exchange | None], status: int, started: float) -> None:
        """The access line, when asked (`started`: perf_counter() as the request came), and the record closed."""
        if self.access:
            self._write(scope, record, status, time.perf_counter() - started)
        end(token)

    def _write(self, scope: Scope, record: Exchange, status: int, duration: float) -> None:
        verb, path = scope["method"], scope["path"]  # the path only: a query string is the client's to keep
        fields: dict[str, object] = {
            "duration": round(duration, 6),
            "outcome": record.outcome,
            "upstream_requests": record.upstream_requests,
            "status": status,
            "path": path,
            "http_method": verb,
        }
        if record.inner:
            fields["multicall"] = record.inner
        version = scope.get("http_version", "1.1")
        access_logger.info('"%s %s HTTP/%s" %d', verb, path, version, status, extra=fields)


def given_id(scope: Scope) -> bytes | None:
    for key, value in scope["headers"]:
        if key == REQUEST_ID:
            return bytes(value)
    return None


class Exchanges:
    """Every request but an XML-RPC POST (its endpoint does the same on its fast path): its record opened, its id
    echoed in the answer, its access line written when asked."""

    def __init__(self, app: ASGIApp, log: RequestLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        record, token = self.log.open(scope, given_id(scope))
        echoed = (REQUEST_ID, record.request_id.encode())
        status = 500  # what the server answers for an app that raised, or returned without an answer

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.log.close(scope, record, token, status, started)
