"""Serve an ASGI app for real on 127.0.0.1, in a thread, on a port the OS chooses."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import uvicorn
from starlette.types import ASGIApp


@contextmanager
def serve_in_thread(
    app: ASGIApp, *, startup_timeout: float = 10.0, lifespan: Literal["auto", "on", "off"] = "off"
) -> Iterator[str]:
    """Yield the server's base URL (`http://127.0.0.1:<port>`, no trailing slash); stop it on exit.

    The socket is bound before uvicorn starts, so the port is known at once and never raced for.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # The service needs lifespan="on" (it closes its upstream client there); the fake index has none.
    # As the service's own command runs it: the client address is the service's to work out (trusted proxies).
    config = uvicorn.Config(app, log_level="warning", lifespan=lifespan, access_log=False, proxy_headers=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=startup_timeout)
        sock.close()
