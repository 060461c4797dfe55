"""The connection guards, over real sockets on 127.0.0.1, under each HTTP parser and event loop the command serves with.

The service runs in a thread as `pypi-xmlrpc-shim` serves it (`shim.web.server.guarded_config`), with timeouts of
0.3 s; every bound below is ten times the time expected.
"""

from __future__ import annotations

import asyncio
import select
import socket
import time
import xmlrpc.client
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, cast

import httpx
import pytest

from shim.app import create_app
from shim.web.connections import CHUNK, MAX_HEAD_BYTES, WRITE_HIGH_WATER
from shim.web.server import guarded_config
from testkit.fakeindex import FakeIndex
from testkit.servers import Served, serving_config

from .helpers import make_settings

# Each parser under each event loop: uvloop where it is installed (the default then), asyncio's own everywhere.
STACKS = [f"{parser}/{loop}" for loop in ("asyncio", "uvloop") for parser in ("h11", "httptools")]
TIMEOUT = 0.3
BOUND = 10 * TIMEOUT
BIG = 8 * 1024 * 1024  # more than the kernel's socket buffers take in on loopback (a few MB)

# Real sockets against a real server, waiting out real timeouts: the end-to-end stage.
pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("stack", STACKS)]


@contextmanager
def shim(
    stack: str, fake: FakeIndex | None = None, *, protocol: int = socket.IPPROTO_TCP, **overrides: Any
) -> Iterator[Served]:
    timeouts = {"header_timeout": TIMEOUT, "idle_timeout": TIMEOUT, "write_timeout": TIMEOUT}
    settings = make_settings(**{**timeouts, **overrides})
    app = create_app(settings, transport=httpx.ASGITransport(app=fake or FakeIndex()))
    parser, loop = stack.split("/")
    if loop == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop is not installed here (it is on every Linux and macOS CPython)")
    config = guarded_config(app, settings, parser=parser, loop=loop, access_log=False, log_level="warning")
    with serving_config(config, protocol=protocol) as served:
        yield served


def address(served: Served) -> tuple[str, int]:
    host, port = served.url.removeprefix("http://").split(":")
    return host, int(port)


def connect(served: Served, *, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:  # set before connecting, so that the window offered stays this small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(BOUND)
    sock.connect(address(served))
    return sock


def is_closed(sock: socket.socket) -> bool:
    """True once the server has closed `sock` (an end of file, or a reset); reads what it answered first."""
    while select.select([sock], [], [], 0)[0]:
        try:
            if not sock.recv(65536):
                return True
        except OSError:
            return True
    return False


def closed_after(sock: socket.socket, bound: float) -> float | None:
    """Seconds until the server closed `sock`, or None if it was still open after `bound` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < bound:
        if is_closed(sock):
            return time.monotonic() - started
        time.sleep(0.02)
    return None


def answers(served: Served) -> bool:
    with xmlrpc.client.ServerProxy(served.url + "/pypi") as proxy:
        return bool(proxy.package_hosting_mode("roundup") == "pypi-only")


def connections(served: Served) -> int:
    return len(served.server.server_state.connections)


def test_answers_go_out_without_waiting_for_the_clients_ack_on_a_socket_bound_as_workers_bind_it(stack: str) -> None:
    # The listening socket is bound with protocol 0, as uvicorn binds it for its workers, so asyncio never sets
    # TCP_NODELAY on the connections it accepts: Nagle's algorithm held each answer's body behind its head until
    # the client's delayed ACK, 40 ms a call.
    with shim(stack, protocol=0) as served, connect(served) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        (connection,) = served.server.server_state.connections
        accepted = connection.transport.get_extra_info("socket")
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(stack: str) -> None:
    with shim(stack) as served, connect(served) as silent:
        elapsed = closed_after(silent, BOUND)
    assert elapsed is not None and elapsed >= TIMEOUT * 0.9


def test_a_keep_alive_connection_is_closed_when_no_next_request_comes(stack: str) -> None:
    with shim(stack) as served, connect(served) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        assert closed_after(sock, BOUND) is not None  # uvicorn alone keeps it 5 s


def test_a_slow_request_head_is_closed_after_the_header_timeout_while_other_clients_get_answers(stack: str) -> None:
    # Slowloris: a header line every 0.1 s, so the connection is never idle but its head never ends.
    with shim(stack, idle_timeout=60) as served, ExitStack() as held:
        slow = [held.enter_context(connect(served)) for _ in range(20)]
        for sock in slow:
            sock.sendall(b"POST /pypi HTTP/1.1\r\nHost: x\r\n")
        started, open_ = time.monotonic(), set(slow)
        answered = 0
        while open_ and time.monotonic() - started < BOUND:
            for sock in list(open_):
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    open_.discard(sock)
                    continue
                if is_closed(sock):
                    open_.discard(sock)
            answered += answers(served)
            time.sleep(0.1)
        assert not open_, f"{len(open_)} slow heads still open after {BOUND} s"
        assert answered >= 1 and answers(served)


def answer_to(sock: socket.socket, request: bytes) -> bytes:
    """The first bytes the server answers `request` with; b"" when it closed the connection first."""
    try:
        sock.sendall(request)
        return sock.recv(65536)
    except OSError:
        return b""


def test_a_request_head_past_the_size_bound_is_refused(stack: str) -> None:
    with shim(stack) as served:
        with connect(served) as sock:  # a large but reasonable head is served
            answer = answer_to(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8192 + b"\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 200 ")
        with connect(served) as sock:
            head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaa\r\n" * 4000
            assert len(head) > MAX_HEAD_BYTES
            status = answer_to(sock, head + b"\r\n").split(b"\r\n", 1)[0]
    # h11 answers 400 at the bound, the guard 431; or the connection is gone before all of the head is sent.
    assert status in (b"", b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 431 Request Header Fields Too Large")


def test_past_the_connection_cap_the_longest_waiting_connection_makes_room(stack: str) -> None:
    with shim(stack, max_connections=10, idle_timeout=60) as served, ExitStack() as held:
        waiting = [held.enter_context(connect(served)) for _ in range(10)]
        time.sleep(0.2)  # all ten accepted and counted
        more = [held.enter_context(connect(served)) for _ in range(5)]
        assert answers(served)
        assert connections(served) <= 10
        assert all(closed_after(sock, BOUND) is not None for sock in waiting[:5])  # the oldest went first
        assert not any(is_closed(sock) for sock in more)


def test_past_the_connection_cap_with_none_waiting_a_new_connection_is_answered_503_at_once(stack: str) -> None:
    with shim(stack, max_connections=3, body_timeout=60) as served, ExitStack() as held:
        for _ in range(3):  # busy: their heads are in, their bodies are not
            busy = held.enter_context(connect(served))
            busy.sendall(b"POST /pypi HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 100\r\n\r\n<m")
        time.sleep(0.2)
        with connect(served) as refused:
            started = time.monotonic()
            answer = refused.recv(65536)
            assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") and b"retry-after: 1" in answer
            assert closed_after(refused, BOUND) is not None
            assert time.monotonic() - started < BOUND
        assert connections(served) == 3


def test_a_client_that_never_reads_a_large_answer_is_closed_and_the_answer_freed(stack: str) -> None:
    fake = FakeIndex()
    fake.add_release("big", "1.0", info={"description": "x" * BIG})
    call = xmlrpc.client.dumps(("big", "1.0"), "release_data").encode()
    with shim(stack, fake) as served, connect(served, receive_buffer=4096) as reader:
        reader.sendall(b"POST /pypi HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n")
        reader.sendall(b"Content-Length: %d\r\n\r\n%s" % (len(call), call))
        buffered: list[int] = []

        async def watch() -> None:
            # The largest send buffer any connection holds, until none is left and no request is in progress.
            state = served.server.server_state
            deadline = time.monotonic() + 10 * BOUND
            while not state.tasks and time.monotonic() < deadline:  # the request has yet to arrive
                await asyncio.sleep(0.01)
            while (state.connections or state.tasks) and time.monotonic() < deadline:
                buffered.append(max((p.transport.get_write_buffer_size() for p in state.connections), default=0))
                await asyncio.sleep(0.01)

        served.run(watch, timeout=20 * BOUND)
        assert connections(served) == 0 and not served.server.server_state.tasks
        assert max(buffered) <= WRITE_HIGH_WATER + 2 * CHUNK  # uvicorn alone buffers the whole answer
        with pytest.raises(ConnectionResetError):  # cut off with a reset: the kernel holds none of it either
            while reader.recv(1 << 20):
                pass
        with xmlrpc.client.ServerProxy(served.url + "/pypi") as proxy:  # a client that reads gets all of it
            assert len(cast(dict[str, Any], proxy.release_data("big", "1.0"))["description"]) == BIG


def test_a_client_that_asks_to_close_and_never_reads_its_answer_is_dropped(stack: str) -> None:
    # An answer that stays below the send buffer's high-water mark: no pause ever starts the write timer, and the
    # close that follows the answer (Connection: close) would wait for the client to read it, for ever.
    fake = FakeIndex()
    fake.add_release("mid", "1.0", info={"description": "x" * 60_000})
    call = xmlrpc.client.dumps(("mid", "1.0"), "release_data").encode()
    with shim(stack, fake, idle_timeout=60) as served, connect(served, receive_buffer=4096) as reader:

        async def small_kernel_buffer() -> None:  # so that the kernel cannot take in the whole answer
            while not served.server.server_state.connections:
                await asyncio.sleep(0.01)
            for protocol in served.server.server_state.connections:
                protocol.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

        served.run(small_kernel_buffer)
        reader.sendall(b"POST /pypi HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nConnection: close\r\n")
        reader.sendall(b"Content-Length: %d\r\n\r\n%s" % (len(call), call))
        started = time.monotonic()
        while connections(served) and time.monotonic() - started < BOUND:
            time.sleep(0.02)
        assert connections(served) == 0
