"""What the logs say of the request being answered: one record per request, in a context variable.

The web layer opens it (`begin`) as a request arrives; dispatch notes the XML-RPC method called and the outcome, the
upstream client counts each request it sends to the index, and a log line written while it is open carries its
request id, method and client. Noting costs an attribute write: nothing is formatted unless a line is logged, and
the client is named (its address, or a hash of it) only then.

A task started during a request copies the context, and with it the record: an upstream fetch that several
requests wait for is counted by the request that started it.
"""

from __future__ import annotations

import contextvars
import random
import re
from collections.abc import Callable

__all__ = [
    "VALUE",
    "Exchange",
    "begin",
    "current",
    "end",
    "note_method",
    "note_outcome",
    "request_id",
    "upstream_request",
]

# The outcome of an XML-RPC call answered with a value; a fault's is its code, as text (one type for a log store).
VALUE = "value"
# A client's X-Request-ID kept as it is: a short token of characters no log reader or header splits on.
_SAFE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
# Inner methods of one system.multicall noted at most: the table's names, each once, so this bounds nothing
# a client chooses; a guard all the same.
MAX_INNER_METHODS = 32


def request_id(given: bytes | None) -> str:
    """The client's X-Request-ID when it is a short token of safe characters, else a fresh one."""
    if given is not None and _SAFE_ID.fullmatch(given):
        return given.decode("ascii")
    # 64 random bits, no secret: a name unique among any log's requests, without a system call (secrets makes one).
    return random.randbytes(8).hex()


class Exchange:
    """One request as the logs tell it."""

    __slots__ = ("_client", "_name_client", "inner", "method", "outcome", "request_id", "upstream_requests")

    def __init__(self, request_id: str, name_client: Callable[[], str]) -> None:
        self.request_id = request_id
        # The XML-RPC method called (a name from the method table), if any; the methods a system.multicall called,
        # each once, in order (None: none); VALUE or the fault's code (None for anything but an XML-RPC call).
        self.method: str | None
        self.inner: list[str] | None
        self.outcome: str | None
        self._client: str | None
        self.method = self.inner = self.outcome = self._client = None  # one store for all four: each call makes one
        self.upstream_requests = 0  # requests sent to the upstream for this one, each retry and redirect counted
        self._name_client = name_client

    @property
    def client(self) -> str:
        """Who sent it, as SHIM_LOG_CLIENT names clients: worked out the first time a line needs it."""
        if self._client is None:
            self._client = self._name_client()
        return self._client


_CURRENT: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar("shim_exchange", default=None)


def begin(exchange: Exchange) -> contextvars.Token[Exchange | None]:
    """Make `exchange` the current request's record (until `end` with the token returned)."""
    return _CURRENT.set(exchange)


def end(token: contextvars.Token[Exchange | None]) -> None:
    _CURRENT.reset(token)


def current() -> Exchange | None:
    """The record of the request being answered, or None outside a request (the background tasks)."""
    return _CURRENT.get()


def note_method(name: str, *, nested: bool) -> None:
    """An XML-RPC method called: the request's own, or (`nested`) one slot of its system.multicall."""
    exchange = _CURRENT.get()
    if exchange is None:
        return
    if not nested:
        exchange.method = name
    elif exchange.inner is None:
        exchange.inner = [name]
    elif name not in exchange.inner and len(exchange.inner) < MAX_INNER_METHODS:
        exchange.inner.append(name)


def note_outcome(fault_code: int | None) -> None:
    """How the XML-RPC call was answered: with a value (None), or with the fault of this code."""
    exchange = _CURRENT.get()
    if exchange is not None:
        exchange.outcome = VALUE if fault_code is None else str(fault_code)


def upstream_request() -> None:
    """One request sent to the upstream (the upstream client calls this as it sends each)."""
    exchange = _CURRENT.get()
    if exchange is not None:
        exchange.upstream_requests += 1
