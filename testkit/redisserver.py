"""A real, throwaway `redis-server` on a free loopback port, for the tests and scripts of the shared state.

Debian's package (`apt-get install redis-server`; scripts/test installs it when it can). Nothing is saved to disk;
its folder is a temporary one. It can be killed and started again on the same port (a Redis that goes away and
comes back), and started with a password.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from .servers import free_port

__all__ = ["RedisServer", "redis_server_path", "running_redis"]

START_TIMEOUT = 10.0


def redis_server_path() -> str | None:
    """The redis-server binary, or None when this machine has none."""
    return shutil.which("redis-server") or next(
        (path for path in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if Path(path).exists()), None
    )


class RedisServer:
    def __init__(self, folder: Path, *, password: str | None = None, port: int | None = None) -> None:
        binary = redis_server_path()
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.folder = folder
        self.password = password
        self.port = port if port is not None else free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL, with the password when it has one."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", str(self.folder), "--daemonize", "no", "--loglevel", "warning"]
        # As the README asks of an operator: bounded, the least recently used keys evicted first.
        command += ["--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru"]
        if self.password:
            command += ["--requirepass", self.password]
        with (self.folder / "redis.log").open("ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {(self.folder / 'redis.log').read_text()[-500:]}")
            time.sleep(0.02)

    def _answers(self) -> bool:
        """A PING answered (PONG, or the refusal a password-protected server gives): it serves."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def kill(self) -> None:
        """Gone at once (SIGKILL), as a crashed Redis is; `start` brings it back on the same port, empty."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def client(self) -> redis.Redis:
        """A plain client, for tests that look inside or empty it."""
        return redis.Redis.from_url(self.url)


@contextlib.contextmanager
def running_redis(*, password: str | None = None) -> Iterator[RedisServer]:
    """A started server in a temporary folder, killed on exit."""
    with tempfile.TemporaryDirectory(prefix="shim-redis-") as folder:
        server = RedisServer(Path(folder), password=password)
        server.start()
        try:
            yield server
        finally:
            server.kill()
