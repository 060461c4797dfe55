"""The service as its own process (`python -m shim`) for the scripts that load or measure it, the `pypi-xmlrpc-shim`
command for the tests that run it, and a clean stop."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import tempfile
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx

from .servers import free_port, wait_until_answering

__all__ = ["COMMAND", "STOP_TIMEOUT", "Running", "command", "service", "stop"]

ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT = 5.0  # seconds a process has to exit on SIGTERM before it is killed


def stop(process: subprocess.Popen[bytes]) -> None:
    """Close its stdin (the children that serve until EOF), then SIGTERM, then SIGKILL after STOP_TIMEOUT."""
    if process.stdin is not None:
        process.stdin.close()
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def service(upstream: str, state: Path, changed: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The service with its defaults, but for where it serves from and the `changed` settings; its output in
    `state`/service.log. Yields at once (the caller waits for what it needs), stops it on exit."""
    state.mkdir(parents=True, exist_ok=True)
    port = free_port()
    environ = {
        **os.environ,
        "SHIM_HOST": "127.0.0.1",
        "SHIM_UPSTREAM": upstream,
        "SHIM_CATALOG_PATH": str(state / "catalog.sqlite3"),
        **changed,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    with (state / "service.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "shim", "--port", str(port)],
            cwd=ROOT,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process, f"http://127.0.0.1:{port}"
        finally:
            stop(process)


COMMAND = str(Path(sys.executable).with_name("pypi-xmlrpc-shim"))
START_TIMEOUT = 30.0  # seconds for the command to answer its first request


@dataclasses.dataclass
class Running:
    """The `pypi-xmlrpc-shim` command, serving: its base URL, its process, and its output so far."""

    base: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def rpc(self, method: str, *params: Any) -> Any:
        with xmlrpc.client.ServerProxy(self.base + "/pypi", allow_none=True) as proxy:
            return getattr(proxy, method)(*params)

    def health(self) -> dict[str, Any]:
        """/healthz, over a new connection (with several workers, any of them answers)."""
        with httpx.Client(trust_env=False, timeout=10) as client:
            found: dict[str, Any] = client.get(self.base + "/healthz").json()
            return found


@contextlib.contextmanager
def command(settings: dict[str, str]) -> Iterator[Running]:
    """The command with `settings` over a clean environment (no SHIM_*, pip index or WEB_CONCURRENCY of the caller's),
    answering; stopped on exit as `stop` does (already killed, it is only waited for)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIM_", "PIP_INDEX", "WEB_CONCURRENCY"))}
    env.update(settings)
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([COMMAND, "--port", str(port)], env=env, stdout=log, stderr=log)
        try:
            running = Running(f"http://127.0.0.1:{port}", process, log)
            assert wait_until_answering(running.base, process, timeout=START_TIMEOUT), running.output()
            yield running
        finally:
            stop(process)
