"""When the upstream fails: retries, timeouts and deadlines, Retry-After, the circuit, stale-if-error,
malformed data, readiness, and 100 concurrent calls over an upstream that fails 30% of the time."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import xmlrpc.client
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from shim.app import create_app
from shim.upstream.urls import UpstreamURL
from testkit.fakeindex import FakeIndex
from testkit.servers import serve_in_thread

from .clock import FakeClock
from .helpers import after_first_pass, guard_of, make_settings, on_fake_clock, rpc_for, served
from .transports import Gate, Tampered

PROJECT_JSON = "/pypi/roundup/json"
UNAVAILABLE = (-32403, "server error; service unavailable")


def answer(rpc: Any, method: str, *params: Any) -> Any:
    try:
        return rpc(method, *params)
    except xmlrpc.client.Fault as fault:
        return (fault.faultCode, fault.faultString)


def count(fake: FakeIndex, path: str = PROJECT_JSON) -> int:
    return sum(1 for r in fake.requests if r.path == path)


@pytest.mark.parametrize(
    "failure", [{"status": 500}, {"status": 502}, {"status": 503}, {"exception": httpx.ConnectError}]
)
def test_a_passing_failure_is_retried(failure: dict[str, Any]) -> None:
    fake = FakeIndex()
    fake.fail(PROJECT_JSON, times=2, **failure)
    clock = FakeClock()
    with served(fake, clock=clock, upstream_retries=2) as client:
        guard_of(client.app).jitter = lambda: 0.5  # the middle of the jitter: the back-off as configured
        assert rpc_for(client)("package_releases", "roundup") == ["1.6.1"]
    assert count(fake) == 3
    assert clock.slept == [0.2, 0.4]  # exponential back-off between the tries


def test_retries_are_bounded_then_the_call_is_unavailable() -> None:
    fake = FakeIndex()
    fake.fail(PROJECT_JSON, status=503)
    clock = FakeClock()
    with served(fake, clock=clock, upstream_retries=3) as client:
        guard_of(client.app).jitter = lambda: 0.0  # the least jitter: half the back-off
        assert answer(rpc_for(client), "package_releases", "roundup") == UNAVAILABLE
    assert count(fake) == 4
    assert clock.slept == [0.1, 0.2, 0.4]  # no back-off after the last try


@pytest.mark.parametrize("status", [401, 403, 410])
def test_client_errors_are_not_retried(status: int) -> None:
    fake = FakeIndex()
    fake.fail(PROJECT_JSON, status=status)
    with served(fake, upstream_retries=3) as client:
        assert answer(rpc_for(client), "package_releases", "roundup") == UNAVAILABLE
    assert count(fake) == 1


class RetryAfter(httpx.AsyncBaseTransport):
    """The fake index, but the project document answers 429 with `Retry-After` for its first request."""

    def __init__(self, fake: FakeIndex, retry_after: str) -> None:
        self.inner = httpx.ASGITransport(app=fake)
        self.retry_after = retry_after
        self.throttled = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/pypi/") and not self.throttled:
            self.throttled += 1
            return httpx.Response(429, headers={"Retry-After": self.retry_after})
        return await self.inner.handle_async_request(request)


@pytest.mark.anyio
async def test_retry_after_pauses_every_caller() -> None:
    fake = FakeIndex()
    transport = RetryAfter(fake, "1")
    app = create_app(make_settings(upstream_retries=2), transport=transport)
    clock = on_fake_clock(app, FakeClock(held=True))
    guard_of(app).jitter = lambda: 0.5
    started = clock()
    body = xmlrpc.client.dumps(("roundup",), methodname="package_releases").encode()
    other = xmlrpc.client.dumps(("httpx",), methodname="package_releases").encode()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shim.test") as client:
        first = asyncio.create_task(client.post("/pypi", content=body, headers={"Content-Type": "text/xml"}))
        await clock.until_sleeping(1)  # the 429 has come: its caller backs off
        second = asyncio.create_task(client.post("/pypi", content=other, headers={"Content-Type": "text/xml"}))
        await clock.until_sleeping(2)  # a second caller, for another project, waits too
        clock.advance(0.999)
        await asyncio.sleep(0)
        assert not first.done() and not second.done()  # neither goes before the pause is over
        clock.advance(0.001)  # the pause the upstream asked for is over
        first_answer, second_answer = await first, await second
    assert xmlrpc.client.loads(first_answer.content)[0][0] == ["1.6.1"]
    assert xmlrpc.client.loads(second_answer.content)[0][0] == ["0.28.1"]
    # The first caller backed off (0.2 s), the second waited the whole pause (1 s); once the back-off was
    # over the first waited what was left of the pause too.
    assert clock.slept == pytest.approx([0.2, 1.0, 0.001]) and clock() - started == pytest.approx(1.0)
    httpx_requests = [r for r in fake.requests if r.path == "/pypi/httpx/json"]
    assert len(httpx_requests) == 1  # the second caller never met a throttled upstream


def test_a_pause_past_the_deadline_fails_at_once_without_asking() -> None:
    fake = FakeIndex()
    transport = RetryAfter(fake, "3600")
    clock = FakeClock()
    with served(fake, transport, clock=clock, upstream_retries=2, upstream_deadline=5) as client:
        guard_of(client.app).jitter = lambda: 0.5
        rpc = rpc_for(client)
        started = time.monotonic()
        assert answer(rpc, "package_releases", "roundup") == UNAVAILABLE
        assert answer(rpc, "package_releases", "httpx") == UNAVAILABLE
        assert time.monotonic() - started < 4  # never waited for the deadline (5 s) to cut it off
        assert guard_of(client.app).counters["refused_by_backoff"] == 2
    assert clock.slept == [0.2]  # the back-off after the 429, and no wait for the pause itself
    assert [r.path for r in fake.requests if r.path.startswith("/pypi/")] == []  # the 429 was the transport's


@pytest.fixture
def slow_index() -> Iterator[tuple[FakeIndex, str]]:
    """The fake index on 127.0.0.1, where httpx's own timeouts fire."""
    fake = FakeIndex()
    with serve_in_thread(fake) as url:
        fake.set_urls(url + "/")
        yield fake, url + "/"


def test_a_read_timeout_is_unavailable(slow_index: tuple[FakeIndex, str]) -> None:
    fake, url = slow_index
    fake.slow(PROJECT_JSON, 5)  # ends when the service hangs up, so the server stops at once
    settings = make_settings(upstream=UpstreamURL.parse(url), upstream_timeout=0.3, upstream_retries=0)
    with TestClient(create_app(settings)) as client:
        started = time.monotonic()
        assert answer(rpc_for(client), "package_releases", "roundup") == UNAVAILABLE
        assert time.monotonic() - started < 3  # ten times the timeout, and well short of the 5 s answer


def test_the_whole_request_deadline_bounds_retries(slow_index: tuple[FakeIndex, str]) -> None:
    fake, url = slow_index
    fake.slow(PROJECT_JSON, 1)
    settings = make_settings(
        upstream=UpstreamURL.parse(url), upstream_timeout=0.2, upstream_retries=10, upstream_deadline=0.7
    )
    app = create_app(settings)
    on_fake_clock(app)  # the back-off between tries takes no time: only the tries count against the deadline
    with TestClient(app) as client:
        started = time.monotonic()
        assert answer(rpc_for(client), "package_releases", "roundup") == UNAVAILABLE
        assert time.monotonic() - started < 7  # ten times the deadline
    assert 1 <= count(fake) <= 4  # the deadline cut the tries short: without it, 11 tries of 0.2 s each


def test_the_circuit_opens_then_probes_and_closes() -> None:
    fake = FakeIndex()
    fake.fail("/pypi/*", status=500)
    clock = FakeClock()
    with served(fake, clock=clock, upstream_retries=0, circuit_threshold=3, circuit_cooldown=30) as client:
        rpc = rpc_for(client)
        for name in ("roundup", "httpx", "starlette"):
            assert answer(rpc, "package_releases", name) == UNAVAILABLE
        asked = len([r for r in fake.requests if r.path.startswith("/pypi/")])
        assert answer(rpc, "package_releases", "defusedxml") == UNAVAILABLE  # refused by the circuit
        assert len([r for r in fake.requests if r.path.startswith("/pypi/")]) == asked == 3
        health = client.get("/healthz").json()["upstream_health"]
        assert health["circuit"] == "open" and health["refused_by_circuit"] == 1
        fake.clear_rules()
        clock.advance(29.9)
        assert answer(rpc, "package_releases", "defusedxml") == UNAVAILABLE  # still cooling down
        assert len([r for r in fake.requests if r.path.startswith("/pypi/")]) == 3
        clock.advance(0.1)
        assert client.get("/healthz").json()["upstream_health"]["circuit"] == "half-open"
        assert rpc("package_releases", "defusedxml") == ["0.7.1"]  # the probe, and the circuit closes
        assert rpc("package_releases", "roundup") == ["1.6.1"]
        assert client.get("/healthz").json()["upstream_health"]["circuit"] == "closed"


def test_stale_if_error_serves_the_last_good_copy(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeIndex()
    with served(fake, cache_soft_ttl=0, upstream_retries=0) as client, caplog.at_level(logging.WARNING, "shim"):
        rpc = rpc_for(client)
        assert rpc("package_releases", "roundup") == ["1.6.1"]
        fake.fail(PROJECT_JSON, status=503)
        assert rpc("package_releases", "roundup") == ["1.6.1"]
        assert client.get("/healthz").json()["stale_served"] == 1
    assert "serving a stale copy of project:roundup" in caplog.text


def test_without_a_stale_window_the_failure_is_the_answer() -> None:
    fake = FakeIndex()
    with served(fake, cache_soft_ttl=0, upstream_retries=0, stale_if_error=0) as client:
        rpc = rpc_for(client)
        rpc("package_releases", "roundup")
        fake.fail(PROJECT_JSON, status=503)
        assert answer(rpc, "package_releases", "roundup") == UNAVAILABLE


MALFORMED = {
    "truncated JSON": b'{"info": {"name": "roundup", "version": "1.6.1"}, "releases": {',
    "garbage": b"\x00\xff\xfe garbage",
    "HTML where JSON was asked": b"<html><body>Please log in to the captive portal</body></html>",
    "a field of the wrong type": b'{"info": {"name": "roundup", "version": 1.61}}',
    "releases of the wrong type": b'{"info": {"name": "roundup", "version": "1.6.1"}, "releases": []}',
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_data_is_unavailable_logged_with_its_url_and_never_cached(
    body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeIndex()
    with (
        served(fake, Tampered(fake, PROJECT_JSON, body), upstream_retries=0) as client,
        caplog.at_level(logging.WARNING, "shim"),
    ):
        rpc = rpc_for(client)
        assert answer(rpc, "package_releases", "roundup") == UNAVAILABLE
        assert rpc("package_releases", "roundup") == ["1.6.1"]
    logged = [r for r in caplog.records if "https://upstream.test/pypi/roundup/json" in r.getMessage()]
    assert len(logged) == 1


def test_an_oversized_document_is_refused_without_reading_it_whole() -> None:
    fake = FakeIndex()
    with served(fake, max_document_bytes=3000, upstream_retries=0) as client:
        assert answer(rpc_for(client), "package_releases", "roundup") == UNAVAILABLE  # its JSON is ~4 KB
        assert rpc_for(client)("package_releases", "relative-urls") == ["1.0"]  # a small one still reads


class RedirectLoop(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": request.url.path + "x"})


def test_a_redirect_loop_is_unavailable() -> None:
    with served(FakeIndex(), RedirectLoop(), upstream_retries=0) as client:
        assert answer(rpc_for(client), "package_roles", "roundup") == UNAVAILABLE


def test_ready_once_the_first_index_is_loaded_and_not_unready_when_the_upstream_fails() -> None:
    fake = FakeIndex()
    gate = Gate(fake, holding=True)
    with served(fake, gate) as client:
        assert client.get("/readyz").status_code == 503
        assert client.portal is not None
        client.portal.call(gate.opened.set)
        after_first_pass(client)  # the index held at the gate is loaded
        assert client.get("/readyz").status_code == 200
        fake.fail("*", status=503)
        assert client.get("/readyz").status_code == 200
        assert client.get("/healthz").status_code == 200


class Flaky(httpx.AsyncBaseTransport):
    """The fake index, failing a set fraction of requests (seeded: the same run every time). A transport, not
    testkit's FlakyIndex (an ASGI app): it can fail to connect at all, which no app behind the socket can."""

    def __init__(self, fake: FakeIndex, fraction: float) -> None:
        self.inner = httpx.ASGITransport(app=fake)
        self.fraction = fraction
        self.random = random.Random(1234)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        roll = self.random.random()
        if roll < self.fraction / 3:
            raise httpx.ConnectError("refused", request=request)
        if roll < 2 * self.fraction / 3:
            return httpx.Response(503)
        if roll < self.fraction:
            return httpx.Response(200, content=b'{"info": ', headers={"Content-Type": "application/json"})
        return await self.inner.handle_async_request(request)


@pytest.mark.anyio
async def test_100_concurrent_calls_over_a_flaky_upstream_all_answer_well_formed() -> None:
    fake = FakeIndex()
    app = create_app(make_settings(upstream_retries=1, cache_soft_ttl=0), transport=Flaky(fake, 0.3))
    on_fake_clock(app)
    calls = [
        ("package_releases", ("roundup",)),
        ("release_urls", ("roundup", "1.6.0")),
        ("release_data", ("httpx", "0.28.1")),
        ("package_roles", ("starlette",)),
        ("list_packages_with_serial", ()),
    ]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shim.test") as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/pypi",
                    content=xmlrpc.client.dumps(calls[i % len(calls)][1], methodname=calls[i % len(calls)][0]).encode(),
                    headers={"Content-Type": "text/xml"},
                )
                for i in range(100)
            )
        )
    outcomes = {"answers": 0, "unavailable": 0}
    for response in responses:
        assert response.status_code == 200 and response.headers["content-type"] == "text/xml; charset=UTF-8"
        try:
            xmlrpc.client.loads(response.content)
            outcomes["answers"] += 1
        except xmlrpc.client.Fault as fault:
            assert (fault.faultCode, fault.faultString) == UNAVAILABLE
            outcomes["unavailable"] += 1
    assert outcomes["answers"] + outcomes["unavailable"] == 100 and outcomes["answers"] > 0


class InFlight(httpx.AsyncBaseTransport):
    """The fake index, holding every request until `opened` is set, counting the requests in flight at once."""

    def __init__(self, fake: FakeIndex) -> None:
        self.inner = httpx.ASGITransport(app=fake)
        self.now = 0
        self.most = 0
        self.opened = asyncio.Event()
        self._arrived = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.most = max(self.most, self.now)
        self._arrived.set()
        try:
            await self.opened.wait()
            return await self.inner.handle_async_request(request)
        finally:
            self.now -= 1

    async def until_in_flight(self, count: int) -> None:
        async with asyncio.timeout(10):
            while self.now < count:
                self._arrived.clear()
                await self._arrived.wait()


@pytest.mark.anyio
async def test_requests_in_flight_are_capped() -> None:
    fake = FakeIndex()
    transport = InFlight(fake)
    app = create_app(make_settings(upstream_concurrency=3), transport=transport)
    names = ["roundup", "httpx", "starlette", "defusedxml", "pypi-simple", "oddversions", "nofiles", "case-owners"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shim.test") as client:
        calls = asyncio.gather(
            *(
                client.post(
                    "/pypi",
                    content=xmlrpc.client.dumps((name,), methodname="package_releases").encode(),
                    headers={"Content-Type": "text/xml"},
                )
                for name in names
            )
        )
        await transport.until_in_flight(3)  # three requests held upstream...
        assert guard_of(app).slots.locked()  # ...and the other callers wait for a slot
        transport.opened.set()
        await calls
    assert transport.most == 3
    assert sum(1 for r in fake.requests if r.path.startswith("/pypi/")) == len(names)
