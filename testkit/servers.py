"""Serve an ASGI app for real on 127.0.0.1, in a thread, on a port the OS chooses; and, for a server run as a
child process, a free port to give it and a wait until it answers."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
import uvicorn
from starlette.types import ASGIApp

__all__ = ["Served", "free_port", "serve_in_thread", "serving", "serving_config", "wait_until_answering"]

T = TypeVar("T")


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago, for a child process that binds it itself."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_answering(
    base: str, process: subprocess.Popen[Any], *, path: str = "/healthz", timeout: float = 15.0
) -> bool:
    """Poll `base + path` until it answers 200 (True); False once `process` has exited or `timeout` has passed."""
    deadline = time.monotonic() + timeout
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if client.get(base + path).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    return False


@dataclass(frozen=True)
class Served:
    """An app served in a thread: its base URL, its event loop, and the server (its connections)."""

    url: str  # `http://127.0.0.1:<port>`, no trailing slash
    loop: asyncio.AbstractEventLoop
    server: uvicorn.Server

    def run(self, step: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        """Run `step()` to its end on the server's event loop, the app's, and return its result."""

        async def main() -> T:
            return await step()

        return asyncio.run_coroutine_threadsafe(main(), self.loop).result(timeout)


Lifespan = Literal["auto", "on", "off"]


@contextmanager
def serve_in_thread(app: ASGIApp, *, startup_timeout: float = 10.0, lifespan: Lifespan = "off") -> Iterator[str]:
    """Yield the server's base URL (`http://127.0.0.1:<port>`, no trailing slash); stop it on exit."""
    with serving(app, startup_timeout=startup_timeout, lifespan=lifespan) as served:
        yield served.url


@contextmanager
def serving(app: ASGIApp, *, startup_timeout: float = 10.0, lifespan: Lifespan = "off") -> Iterator[Served]:
    """Serve `app` in a thread until the block ends; yield its URL and loop."""
    # The service needs lifespan="on" (it closes its upstream client there); the fake index has none.
    # As the service's own command runs it: the client address is the service's to work out (trusted proxies).
    config = uvicorn.Config(app, log_level="warning", lifespan=lifespan, access_log=False, proxy_headers=False)
    with serving_config(config, startup_timeout=startup_timeout) as served:
        yield served


@contextmanager
def serving_config(
    config: uvicorn.Config, *, startup_timeout: float = 10.0, protocol: int = socket.IPPROTO_TCP
) -> Iterator[Served]:
    """Serve with this uvicorn config (its host and port are ignored) in a thread until the block ends.

    The socket is bound before uvicorn starts, so the port is known at once and never raced for.
    """
    # Bound as IPPROTO_TCP, so that asyncio sets TCP_NODELAY on what it accepts (else each answer waits on
    # Nagle's algorithm for the client's delayed ACK: 40 ms); `protocol=0` binds it as uvicorn's workers bind theirs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield Served(f"http://127.0.0.1:{port}", server.servers[0].get_loop(), server)
    finally:
        server.should_exit = True
        thread.join(timeout=startup_timeout)
        sock.close()
