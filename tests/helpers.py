"""What the tests share that is not a fixture: settings and apps over the fake index, one real XML-RPC round trip
(stdlib dumps, POST text/xml, stdlib loads, as Warehouse's functional tests do), and child processes of the shim.
Fixtures are in conftest.py, which pytest loads; test modules import these from here."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
import xmlrpc.client
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import pytest
from starlette.testclient import TestClient

from shim.app import create_app
from shim.config.settings import Settings
from shim.shared.address import RedisURL
from shim.shared.store import SharedRedis
from shim.upstream.resilience import Guard
from shim.upstream.urls import UpstreamURL
from testkit.fakeindex import FakeIndex
from testkit.wheels import wheel_file

from .clock import FakeClock

UPSTREAM = "https://upstream.test/"


Rpc = Callable[..., Any]


T = TypeVar("T")


# Every app a test builds gets a catalog of its own, in a directory removed at exit; a service a test
# starts as a child process (which reads the default location) writes there too, never in the home directory.
_STATE = tempfile.TemporaryDirectory(prefix="shim-tests-")


os.environ["XDG_STATE_HOME"] = str(Path(_STATE.name) / "state")


def make_settings(**overrides: Any) -> Settings:
    catalog_path = Path(tempfile.mkdtemp(dir=_STATE.name)) / "catalog.sqlite3"
    values: dict[str, Any] = {"upstream": UpstreamURL.parse(UPSTREAM), "catalog_path": catalog_path}
    values.update(overrides)
    return Settings(**values)


# The Redis command bound in the tests of what replicas share: a loaded CI machine may take longer than the default
# SHIM_CACHE_TIMEOUT to schedule an answer, which would fall back to in-process state (a test of it sets its own).
SHARED_TIMEOUT = 2.0


def shared_settings(url: str, **overrides: Any) -> Settings:
    """Settings over the Redis at `url` (SHIM_CACHE_URL), with the tests' command bound unless given."""
    return make_settings(cache_url=RedisURL.parse(url), **{"cache_timeout": SHARED_TIMEOUT, **overrides})


async def away_within(shared: SharedRedis, seconds: float) -> bool:
    """Whether `shared` takes Redis for away within `seconds` (its own ping decides, after a command timed out)."""
    deadline = time.monotonic() + seconds
    while shared.available and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return not shared.available


def served(
    fake: FakeIndex,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    clock: FakeClock | None = None,
    **settings: Any,
) -> TestClient:
    """A client of the service over `fake` (or over `transport`, which wraps it), with these settings; with
    `clock`, its upstream guard runs on that fake clock (see `on_fake_clock`)."""
    app = create_app(make_settings(**settings), transport=transport or httpx.ASGITransport(app=fake))
    if clock is not None:
        on_fake_clock(app, clock)
    return TestClient(app)


def guard_of(app: Any) -> Guard:
    """The app's upstream guard: retries, back-off, the shared pause and the circuit."""
    guard: Guard = app.state.services.store.upstream.guard
    return guard


def on_fake_clock(app: Any, clock: FakeClock | None = None) -> FakeClock:
    """Put the app's upstream guard on a fake clock (a new one unless given), and return the clock: back-offs
    and pauses pass at once (or when the test advances a held clock), the circuit cools down as it advances."""
    clock = clock or FakeClock()
    guard = guard_of(app)
    guard.clock, guard.sleep = clock, clock.sleep
    return clock


def in_app(client: TestClient, step: Callable[[], Awaitable[T]]) -> T:
    """Run `step()` to its end on the app's event loop (the running TestClient's portal); return its result."""

    async def run() -> T:
        return await step()

    assert client.portal is not None, "the TestClient is not running: use it in a `with` block"
    return client.portal.call(run)


def sampled_health(client: TestClient) -> dict[str, Any]:
    """/healthz once what the catalog and the shared circuit say has been sampled now: the sampler's next turn,
    brought forward (/healthz itself reads memory only, shim.web.vitals)."""
    in_app(client, client.app.state.vitals.sample)  # type: ignore[attr-defined]
    answer: dict[str, Any] = client.get("/healthz").json()
    return answer


def refresh_index(client: TestClient) -> None:
    """Refresh the Simple index the app holds, now: the background task's next turn, brought forward."""
    in_app(client, client.app.state.services.index.refresh)  # type: ignore[attr-defined]


def after_first_pass(client: TestClient) -> None:
    """Wait until the app's refresher has made its first pass (whatever it found), as /readyz and the
    change feed's first callers do; bounded, so that a test that goes wrong fails instead of hanging."""
    ready: Any = client.app.state.services.changes_ready  # type: ignore[attr-defined]

    async def wait() -> None:
        with anyio.fail_after(10):
            await ready.wait()

    in_app(client, wait)


def call(client: TestClient, method: str, *params: Any, path: str = "/pypi") -> Any:
    """One XML-RPC call; returns the value or raises xmlrpc.client.Fault."""
    body = xmlrpc.client.dumps(params, methodname=method, allow_none=True)
    response = client.post(path, content=body.encode(), headers={"Content-Type": "text/xml"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/xml; charset=UTF-8"
    (value,), _ = xmlrpc.client.loads(response.content, use_builtin_types=False)
    return value


def rpc_for(client: TestClient) -> Rpc:
    """`rpc(method, *params, path=...)` against `client`."""

    def _rpc(method: str, *params: Any, path: str = "/pypi") -> Any:
        return call(client, method, *params, path=path)

    return _rpc


def stable_id(value: object) -> str:
    """A test id for a parameter that is the same in every process: its repr without object addresses."""
    return re.sub(r" at 0x[0-9a-f]+", "", repr(value))


def rolesy_index() -> FakeIndex:
    """The fake index with `rolesy`, owned by alice, kept by bob; its summary and keywords are known."""
    fake = FakeIndex()
    fake.add_release(
        "rolesy",
        "1.0",
        files=[wheel_file("rolesy", "1.0", upload="2024-01-02T03:04:05Z")],
        info={"summary": "Roles for everyone", "keywords": "roles owners", "classifiers": ["Framework :: Rolesy"]},
        created="2024-01-02T03:04:05Z",
    )
    fake.project("rolesy").roles = [{"role": "Owner", "user": "alice"}, {"role": "Maintainer", "user": "bob"}]
    return fake


def upstream_paths(fake: FakeIndex) -> list[str]:
    """What the service asked the upstream for, the Simple index (loaded at start) left out."""
    return [r.path for r in fake.requests if r.path != "/simple/"]


def fault_of(rpc: Rpc, method: str, *params: Any, path: str = "/pypi") -> tuple[int, str]:
    with pytest.raises(xmlrpc.client.Fault) as caught:
        rpc(method, *params, path=path)
    return caught.value.faultCode, caught.value.faultString


def shim_environ(upstream: str, catalog: Path, home: Path, **settings: str) -> dict[str, str]:
    """The whole environment of a child `python -m shim`: its upstream and catalog, a home of its own, no pip
    configuration of the machine's, and `settings` (`SHIM_...` names)."""
    return {
        "SHIM_UPSTREAM": upstream,
        "SHIM_CATALOG_PATH": str(catalog),
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "PIP_CONFIG_FILE": "/dev/null",
        **settings,
    }


def run_shim(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m shim ARGS` in a child process with exactly `env`; bounded in time."""
    return subprocess.run(
        [sys.executable, "-m", "shim", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_shim_json(*args: str, env: dict[str, str]) -> dict[str, Any]:
    """`python -m shim ARGS` that must succeed and print one JSON object (the catalog verbs); that object."""
    done = run_shim(*args, env=env)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@contextlib.contextmanager
def client_leaks_collected() -> Iterator[None]:
    """Run a third-party client that leaves its sockets to the garbage collector (qypi's requests session,
    stdeb's streamed responses): collect them here, so their ResourceWarnings are theirs and stay quiet."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # stdeb still uses distutils' version classes
        try:
            yield
        finally:
            gc.collect()


def raw_post(client: TestClient, body: bytes, accept_encoding: str | None, path: str = "/pypi") -> Any:
    """POST `body` with this Accept-Encoding (None: no such header at all); the response, its bytes as sent."""
    headers = {"Content-Type": "text/xml"}
    if accept_encoding is not None:
        headers["Accept-Encoding"] = accept_encoding
    saved = client.headers.pop("accept-encoding", None)  # httpx sends its own unless told otherwise
    try:
        with client.stream("POST", path, content=body, headers=headers) as response:
            response.raw_bytes = b"".join(response.iter_raw())
    finally:
        if saved is not None:
            client.headers["accept-encoding"] = saved
    return response


def value_of(body: bytes) -> Any:
    """The value an XML-RPC response body carries (xmlrpc.client.Fault for a fault)."""
    return xmlrpc.client.loads(body)[0][0]
