"""Guards on every connection, whichever HTTP parser uvicorn runs: uvicorn's own protocols, extended.

uvicorn starts its keep-alive timer only after a first answer, has no bound on the time a request head takes
or on the time an answer may sit unread, and its `--limit-concurrency` counts requests, not connections. Here
each connection is in one of three phases, with one timer:

- waiting: no byte of a request yet (a new connection, or between keep-alive requests): `idle_timeout`;
- head: some bytes of a request head, not all: the whole head within `header_timeout` of its first byte
  (and at most `MAX_HEAD_BYTES`);
- busy: a request whose answer is not complete: the body and the call have their own bounds in the app.

The timer moves (`shim.web.deadline.MovableTimer`): a bound moved later leaves it set, and a request that comes
whole in one packet sets none, so a keep-alive connection's requests cost no timer each, where setting and
cancelling two per request was a twentieth of a cache-hit call.

An answer is sent in chunks, each written once the connection's send buffer has drained below its low-water
mark, so a connection holds at most about `WRITE_HIGH_WATER` bytes beyond the answer itself; a buffer that has
not drained within `write_timeout` is dropped with the connection. Past `max_connections`, a new connection
closes the connection that has waited longest for a request; when none is waiting, it is answered 503 at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from weakref import WeakKeyDictionary

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from shim.web.deadline import MovableTimer

__all__ = [
    "MAX_HEAD_BYTES",
    "WRITE_HIGH_WATER",
    "ChunkedAnswers",
    "GuardedH11Protocol",
    "GuardedHttpToolsProtocol",
    "Guards",
    "guarded_protocol",
]

logger = logging.getLogger(__name__)

WRITE_HIGH_WATER = 64 * 1024  # past it the answer waits; below the low-water mark it goes on
WRITE_LOW_WATER = 16 * 1024
CHUNK = 64 * 1024
MAX_HEAD_BYTES = 64 * 1024  # h11 is given the same bound, so both parsers refuse the same heads
REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 19\r\n"
    b"retry-after: 1\r\nconnection: close\r\n\r\nService Unavailable"
)
TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 31\r\nconnection: close\r\n\r\nRequest header fields too large"
)


@dataclass(frozen=True)
class Guards:
    """The bounds of one process's connections (the settings of the same names)."""

    header_timeout: float = 10.0
    idle_timeout: float = 30.0
    write_timeout: float = 30.0
    max_connections: int = 1000


def guards_of(config: Any) -> Guards:
    # uvicorn's plain Config (`uvicorn --http shim.web.connections:GuardedH11Protocol`) gets the defaults.
    guards = getattr(config, "guards", None)
    return guards if isinstance(guards, Guards) else Guards()


# Per server: the connections waiting for a request, the longest-waiting first (the first to close at the cap).
_waiting: WeakKeyDictionary[ServerState, OrderedDict[_Guarded, None]] = WeakKeyDictionary()

# mypy checks the mixin against one of uvicorn's protocols; at run time it sits before either in the MRO.
if TYPE_CHECKING:
    _Base = H11Protocol
else:
    _Base = asyncio.Protocol


_HEAD_END = re.compile(rb"\n\r?\n")  # a blank line: h11 and httptools take a bare LF too
_TAIL = 2  # the bytes of the reads before that a head's end may start in


def _ends_within(tail: bytes, read: bytes, left: int) -> bool:
    """Whether a head whose reads so far ended in `tail` ends in `read` within its first `left` bytes."""
    return _HEAD_END.search(tail + read, 0, left + len(tail)) is not None


def _no_delay(transport: asyncio.Transport) -> None:
    """Answers go out at once. asyncio sets TCP_NODELAY only where the listening socket was bound as IPPROTO_TCP,
    and uvicorn binds its workers' socket with protocol 0: Nagle's algorithm then held each answer's body behind
    its head until the client's delayed ACK, 40 ms a call."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Guarded(_Base):
    _guards: Guards
    _timer: MovableTimer | None = None  # the phase's bound
    _reason = ""
    _write_timer: asyncio.TimerHandle | None = None
    _queue: OrderedDict[_Guarded, None] | None = None  # the server's connections waiting for a request
    _phase = "waiting"
    _head_bytes = 0
    _tail = b""  # the last bytes of a head's reads so far
    _refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport has asyncio.Transport's methods without being one of its subclasses.
        transport = cast(asyncio.Transport, transport)
        _no_delay(transport)
        self._guards = guards_of(self.config)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)
        if len(self.server_state.connections) >= self._guards.max_connections and not self._make_room():
            self._refused = True  # never counted as a connection: closed as soon as the 503 is out
            transport.write(REFUSED)
            transport.close()
            return
        super().connection_made(transport)
        self._wait()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        if self._timer is not None:  # gone with the connection, never left to fire
            self._timer.cancel()
        self._cancel_write()
        if self._refused:
            return
        self._waiting().pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        starting = False
        if self._phase != "busy":
            seen = self._head_bytes
            self._head_bytes += len(data)
            if self._phase == "waiting":
                self._phase, starting = "head", True
            # A whole head in one read is parsed whole, past any bound the parser has for heads still incomplete:
            # past the bound, its end must lie within it (a body may follow it in the same read).
            if self._head_bytes > MAX_HEAD_BYTES and not _ends_within(self._tail, data, MAX_HEAD_BYTES - seen):
                self._refuse_head()
                return
        super().data_received(data)
        if self._phase == "busy" or self.transport.is_closing():
            return
        if self._busy():
            self._phase = "busy"
            self._cancel()
            self._waiting().pop(self, None)
            return
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse_head()
            return
        self._tail = (self._tail + data)[-_TAIL:]  # a head's end may straddle two reads
        if starting:  # the head's first bytes, and not all of it: its bound runs from now
            self._arm(self._guards.header_timeout, "its request head took too long")

    def _refuse_head(self) -> None:
        self.transport.write(TOO_LARGE)
        self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._unset_keepalive_if_required()  # uvicorn's own keep-alive timer: the idle timer below decides
        if self.transport.is_closing():
            # The close waits for the buffer to drain: bounded as any unread answer is.
            if self.transport.get_write_buffer_size():
                self._arm_write()
            return
        if not self._busy():  # else a pipelined request has started
            self._wait()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._arm_write()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_write()

    # The phases

    def _busy(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _wait(self) -> None:
        self._phase = "waiting"
        self._head_bytes = 0
        self._tail = b""
        waiting = self._waiting()
        waiting[self] = None
        waiting.move_to_end(self)
        self._arm(self._guards.idle_timeout, "it sent no request")

    def _waiting(self) -> OrderedDict[_Guarded, None]:
        # Looked up once per connection: a weak-keyed lookup per request made a weak reference each time.
        if self._queue is None:
            self._queue = _waiting.setdefault(self.server_state, OrderedDict())
        return self._queue

    def _make_room(self) -> bool:
        """Close the connection that has waited longest for a request; False when none is waiting."""
        waiting = self._waiting()
        if not waiting:
            return False
        oldest, _ = waiting.popitem(last=False)
        oldest._drop("a new connection needed its place")
        return True

    # Timers

    def _arm(self, seconds: float, reason: str) -> None:
        if self._timer is None:
            self._timer = MovableTimer(self.loop, lambda: self._drop(self._reason))
        self._reason = reason
        self._timer.set(self.loop.time() + seconds)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.clear()

    def _arm_write(self) -> None:
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self._guards.write_timeout, self._drop, "its answer was not read")

    def _cancel_write(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _drop(self, reason: str) -> None:
        self._cancel()
        self._cancel_write()
        logger.debug("closing a connection from %s: %s", self.client, reason)
        if not self.transport.get_write_buffer_size():
            self.transport.close()
            return
        # close() would wait for an unread buffer forever: abort() drops it, and with it the answer. A zero linger
        # makes the close a reset, so the kernel drops what it still holds for the client too.
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class GuardedH11Protocol(_Guarded, H11Protocol):
    """uvicorn's h11 protocol with the connection guards."""


# The two protocols' request cycles are different classes of the same shape: the mixin reads only what they share.
class GuardedHttpToolsProtocol(_Guarded, HttpToolsProtocol):  # type: ignore[misc]
    """uvicorn's httptools protocol with the connection guards."""


class ChunkedAnswers:
    """Send each answer body in chunks, so that uvicorn waits for the send buffer to drain between them."""

    def __init__(self, app: ASGIApp, chunk: int = CHUNK) -> None:
        self.app = app
        self.chunk = chunk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def chunked(message: Message) -> None:
            body = message.get("body", b"")
            if message["type"] != "http.response.body" or len(body) <= self.chunk:
                await send(message)
                return
            more = bool(message.get("more_body", False))
            view = memoryview(body)
            for start in range(0, len(body), self.chunk):
                last = start + self.chunk >= len(body)
                await send(
                    {
                        "type": "http.response.body",
                        "body": bytes(view[start : start + self.chunk]),
                        "more_body": more or not last,
                    }
                )

        await self.app(scope, receive, chunked)


PARSERS: dict[str, type[asyncio.Protocol]] = {"h11": GuardedH11Protocol, "httptools": GuardedHttpToolsProtocol}


def guarded_protocol(parser: str = "httptools") -> type[asyncio.Protocol]:
    """The guarded protocol of `parser`: `httptools` (the default: the faster parser) or `h11`."""
    return PARSERS[parser]
