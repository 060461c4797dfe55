"""The request head's size bound, whichever way the head arrives: fed to each guarded protocol in reads of chosen
sizes, since over a real socket the reads the kernel hands the server are not the test's to choose."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, cast

import pytest
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from shim.web.connections import MAX_HEAD_BYTES, PARSERS
from shim.web.server import guarded_config

from .helpers import make_settings


class Transport(asyncio.Transport):
    """What a connection's transport is asked, and what was written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def answer_ok(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class Connection:
    """One guarded connection of a parser, fed a request in reads of a chosen size."""

    def __init__(self, parser: str) -> None:
        self.loop = asyncio.new_event_loop()
        config = guarded_config(answer_ok, make_settings(), parser=parser, loop="asyncio")
        config.load()
        # Both guarded protocols take uvicorn's protocol arguments (typed as plain asyncio protocols).
        protocol_class = cast("type[H11Protocol]", config.http_protocol_class)
        self.protocol = protocol_class(config=config, server_state=ServerState(), app_state={}, _loop=self.loop)
        self.transport = Transport()
        self.protocol.connection_made(self.transport)

    def send(self, request: bytes, read: int) -> bytes:
        """The first line of the answer to `request` (b"" when none)."""
        for start in range(0, len(request), read):
            if self.transport.closed:
                break
            self.protocol.data_received(request[start : start + read])
        for _ in range(10):  # the request's cycle runs as a task on the connection's loop
            self.loop.run_until_complete(asyncio.sleep(0))
        return bytes(self.transport.written).split(b"\r\n", 1)[0]

    def close(self) -> None:
        self.protocol.connection_lost(None)
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()


@pytest.fixture(params=sorted(PARSERS))
def connection(request: pytest.FixtureRequest) -> Iterator[Connection]:
    opened = Connection(request.param)
    try:
        yield opened
    finally:
        opened.close()


def head(size: int, first: bytes = b"GET /healthz HTTP/1.1\r\nHost: x\r\n") -> bytes:
    """A request head of exactly `size` bytes."""
    filler = b"X-Filler: "
    return first + filler + b"a" * (size - len(first) - len(filler) - 4) + b"\r\n\r\n"


READS = [256 * 1024, 65536, 1000, 7]
REFUSED = (b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 431 Request Header Fields Too Large")


@pytest.mark.parametrize("read", READS, ids=lambda size: f"reads of {size}")
def test_a_whole_head_past_the_bound_is_refused_however_it_is_read(connection: Connection, read: int) -> None:
    oversized = head(MAX_HEAD_BYTES + 1)
    assert connection.send(oversized, read) in REFUSED
    assert connection.transport.closed


@pytest.mark.parametrize("read", READS, ids=lambda size: f"reads of {size}")
def test_a_head_at_the_bound_is_served_with_the_body_that_follows_it_in_the_same_read(
    connection: Connection, read: int
) -> None:
    body = b"x" * (2 * MAX_HEAD_BYTES)
    first = b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body)
    assert connection.send(head(MAX_HEAD_BYTES, first) + body, read) == b"HTTP/1.1 200 OK"
