"""The service as its own process (`python -m shim`) for the scripts that load or measure it, and a clean stop."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from .servers import free_port

__all__ = ["STOP_TIMEOUT", "service", "stop"]

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
