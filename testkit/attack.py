"""Hostile connections over real sockets: slowloris, silent and non-reading ones, for the connection and load
scripts. Each may come from a source address of its own: on Linux every 127.x address is the loopback's, so one
machine can be many clients to the service's per-client limits."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter

__all__ = ["Attack", "loopback"]


def loopback(block: int, index: int) -> str:
    """The `index`-th address of 127.<block>.0.0/16, never ending in .0 or .255."""
    return f"127.{block}.{index // 254 % 256}.{index % 254 + 1}"


class Attack:
    """The attack's connections: each counted open until the service closes it, and counted once opened."""

    def __init__(self) -> None:
        self.open: Counter[str] = Counter({"slowloris": 0, "silent": 0, "non_readers": 0})
        self.opened: Counter[str] = Counter()

    async def hold(
        self, kind: str, port: int, request: bytes, line_every: float | None, source: str | None = None
    ) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if kind == "non_readers":  # a small window: the answer stays on the service's side
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            if source is not None:
                sock.bind((source, 0))
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock)
        except OSError:
            sock.close()
            return
        self.open[kind] += 1
        self.opened[kind] += 1
        try:
            writer.write(request)
            if kind == "non_readers":
                await _closed_by_peer(sock)
            elif line_every is not None:
                while True:
                    try:
                        if not await asyncio.wait_for(reader.read(65536), timeout=line_every):
                            break
                    except TimeoutError:
                        writer.write(b"X-Slow: 1\r\n")
                        await writer.drain()
            else:
                await reader.read()
        except OSError:
            pass
        finally:
            self.open[kind] -= 1
            writer.close()


async def _closed_by_peer(sock: socket.socket) -> None:
    """Wait, never reading, until the peer has closed or reset the connection."""
    while True:
        await asyncio.sleep(0.5)
        try:
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            peer = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        except OSError:
            return
        if error or peer == b"":
            return
