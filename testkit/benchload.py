"""The benchmark's load and its children: wrk with a Lua script that checks every answer, or a small Python loop
when wrk is absent; and a child process that prints its base URL on its first line and serves until stdin closes."""

from __future__ import annotations

import asyncio
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from .shimprocess import stop

__all__ = ["Load", "child", "python_load", "wrk_load", "wrk_path"]


@dataclass(frozen=True)
class Load:
    """One load run against one server: calls answered a second, and the answers that were not the expected bytes."""

    calls_per_second: float
    answers: int
    wrong: int
    errors: int  # connect/read/write errors and timeouts (not wrong answers: a time, not a value)


@contextmanager
def child(argv: list[str], *, cwd: Path, log: Path, timeout: float) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run `argv`; yield it and the base URL it prints on its first line; close its stdin and stop it on exit."""
    environ = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    with log.open("wb") as errors:
        process = subprocess.Popen(
            argv, cwd=cwd, env=environ, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors
        )
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], timeout)
            line = process.stdout.readline().decode().strip() if ready else ""
            if not line.startswith("http://127.0.0.1:"):
                raise RuntimeError(f"{' '.join(argv)} did not start: {log.read_text(errors='replace')[-2000:]}")
            yield process, line.rstrip("/")
        finally:
            stop(process)


def wrk_path() -> str | None:
    return shutil.which("wrk")


def _lua_string(data: bytes) -> str:
    level = 0
    while f"]{'=' * level}]".encode() in data:
        level += 1
    return f"[{'=' * level}[{data.decode('utf-8')}]{'=' * level}]"


LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "text/xml"
wrk.body = %(body)s
local expected = %(expected)s
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) wrong = 0; answers = 0 end
function response(status, headers, body)
  answers = answers + 1
  if status ~= 200 or body ~= expected then wrong = wrong + 1 end
end
function done(summary, latency, requests)
  local w, a = 0, 0
  for _, t in ipairs(threads) do w = w + t:get("wrong"); a = a + t:get("answers") end
  io.write(string.format("bench-answers %%d wrong %%d\\n", a, w))
end
"""


def wrk_load(url: str, body: bytes, expected: bytes, *, seconds: float, connections: int = 16) -> Load:
    """wrk, one thread and `connections` connections, POSTing `body` for `seconds`; every answer compared.

    One thread drives 16 connections past any server here, and leaves the most of this machine's two cores to the
    servers: with two threads, wrk took from `--workers 2` the core its second worker needs."""
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not installed")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", encoding="utf-8") as script:
        script.write(LUA % {"body": _lua_string(body), "expected": _lua_string(expected)})
        script.flush()
        argv = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s", "-s", script.name]
        run = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 30, check=False)
    out = run.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    checked = re.search(r"bench-answers (\d+) wrong (\d+)", out)
    if run.returncode != 0 or rate is None or checked is None:
        raise RuntimeError(f"wrk failed ({run.returncode}): {out}{run.stderr}")
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(int(g) for g in socket_errors.groups()) if socket_errors else 0
    return Load(float(rate.group(1)), int(checked.group(1)), int(checked.group(2)), errors)


def python_load(url: str, body: bytes, expected: bytes, *, seconds: float, connections: int = 16) -> Load:
    """The same load from `connections` httpx clients in one event loop (slower than wrk: for checks, not figures)."""

    async def main() -> Load:
        answers = wrong = errors = 0
        deadline = time.monotonic() + seconds
        limits = httpx.Limits(max_connections=connections)
        headers = {"Content-Type": "text/xml"}
        async with httpx.AsyncClient(limits=limits, timeout=5.0, trust_env=False) as client:

            async def loop() -> None:
                nonlocal answers, wrong, errors
                while time.monotonic() < deadline:
                    try:
                        response = await client.post(url, content=body, headers=headers)
                    except httpx.HTTPError:
                        errors += 1
                        continue
                    answers += 1
                    wrong += response.status_code != 200 or response.content != expected

            started = time.monotonic()
            await asyncio.gather(*(loop() for _ in range(connections)))
            elapsed = time.monotonic() - started
        return Load(answers / elapsed, answers, wrong, errors)

    return asyncio.run(main())
