"""An upstream that misbehaves on purpose: probes that end every way, refused redirects, a huge Retry-After,
stacked encodings and compressed bombs. Each is met with a bounded, well-formed answer, in bounded memory,
and the circuit never sticks."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import tracemalloc
import xmlrpc.client
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from shim.errors import UpstreamUnavailable
from shim.upstream.client import MAX_REDIRECTS, build_client
from shim.upstream.resilience import Guard
from shim.wiring import guard_config, upstream_for
from testkit.fakeindex import FakeIndex

from .clock import FakeClock
from .helpers import after_first_pass, guard_of, make_settings, rpc_for, served

UNAVAILABLE = (-32403, "server error; service unavailable")
APPLICATION_ERROR = (-32500, "application error")
THRESHOLD, COOLDOWN = 2, 10.0

Answer = Callable[[httpx.Request], Awaitable[httpx.Response]]


def answer(rpc: Any, method: str, *params: Any) -> Any:
    try:
        return rpc(method, *params)
    except xmlrpc.client.Fault as fault:
        return (fault.faultCode, fault.faultString)


class Misbehaving(httpx.AsyncBaseTransport):
    """The fake index, but while `misbehave` is set, the JSON API's requests get its answer instead."""

    def __init__(self, fake: FakeIndex) -> None:
        self.inner = httpx.ASGITransport(app=fake)
        self.misbehave: Answer | None = None
        self.asked = 0  # requests that met the misbehaviour

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.misbehave is not None and request.url.path.startswith("/pypi/"):
            self.asked += 1
            return await self.misbehave(request)
        return await self.inner.handle_async_request(request)


class Dripping(httpx.AsyncByteStream):
    """A body that never ends: a byte now and then, each well within any read timeout."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"info": '
        while True:
            await asyncio.sleep(0.02)
            yield b" "


def replying(make: Callable[[httpx.Request], httpx.Response]) -> Answer:
    async def reply(request: httpx.Request) -> httpx.Response:
        return make(request)

    return reply


def unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def broken(request: httpx.Request) -> httpx.Response:
    raise RuntimeError("a transport that breaks in a way nobody foresaw")


# How a probe ends, what its caller is answered, and the circuit's state after it: an answer of any kind
# (even an unusable one) shows the upstream is up and closes the circuit; no answer opens it again.
PROBE_ENDINGS: dict[str, tuple[Answer, Any, str]] = {
    "a 503": (replying(lambda r: httpx.Response(503)), UNAVAILABLE, "open"),
    "a 403": (replying(lambda r: httpx.Response(403)), UNAVAILABLE, "open"),
    "a connection failure": (replying(unreachable), UNAVAILABLE, "open"),
    "a body past the deadline": (replying(lambda r: httpx.Response(200, stream=Dripping())), UNAVAILABLE, "open"),
    "another exception": (replying(broken), APPLICATION_ERROR, "open"),
    "an oversized body": (replying(lambda r: httpx.Response(200, content=b" " * 70_000)), UNAVAILABLE, "closed"),
    "a redirect to another origin": (
        replying(lambda r: httpx.Response(302, headers={"Location": "https://elsewhere.test" + r.url.path})),
        UNAVAILABLE,
        "closed",
    ),
}


@pytest.mark.parametrize(("ending", "expected", "circuit"), PROBE_ENDINGS.values(), ids=PROBE_ENDINGS.keys())
def test_every_way_a_probe_ends_settles_the_circuit(ending: Answer, expected: Any, circuit: str) -> None:
    fake = FakeIndex()
    transport = Misbehaving(fake)
    clock = FakeClock()
    settings: dict[str, Any] = {"upstream_retries": 0, "circuit_threshold": THRESHOLD, "circuit_cooldown": COOLDOWN}
    with served(fake, transport, clock=clock, upstream_deadline=0.5, max_document_bytes=65536, **settings) as client:
        after_first_pass(client)
        rpc = rpc_for(client)
        transport.misbehave = replying(lambda r: httpx.Response(503))
        for name in ("roundup", "httpx"):
            assert answer(rpc, "package_releases", name) == UNAVAILABLE
        assert client.get("/healthz").json()["upstream_health"]["circuit"] == "open"
        clock.advance(COOLDOWN)
        transport.misbehave, asked = ending, transport.asked
        assert answer(rpc, "package_releases", "starlette") == expected  # the probe
        assert transport.asked == asked + 1
        assert client.get("/healthz").json()["upstream_health"]["circuit"] == circuit
        transport.misbehave = None
        if circuit == "open":
            assert answer(rpc, "package_releases", "defusedxml") == UNAVAILABLE  # cooling down once more
            clock.advance(COOLDOWN)
        assert rpc("package_releases", "defusedxml") == ["0.7.1"]  # a probe goes, or the circuit is closed
        assert client.get("/healthz").json()["upstream_health"]["circuit"] == "closed"


def test_a_probe_refused_by_a_pause_past_its_deadline_is_no_probe() -> None:
    # A 429 asks every caller to wait longer than the circuit cools down: the first request after the
    # cool-down is refused by the pause, without asking; it must not leave the circuit waiting for its probe.
    fake = FakeIndex()
    transport = Misbehaving(fake)
    clock = FakeClock()
    with served(
        fake, transport, clock=clock, upstream_retries=0, circuit_threshold=1, circuit_cooldown=COOLDOWN
    ) as client:
        after_first_pass(client)
        rpc = rpc_for(client)
        transport.misbehave = replying(lambda r: httpx.Response(429, headers={"Retry-After": "120"}))
        assert answer(rpc, "package_releases", "roundup") == UNAVAILABLE
        transport.misbehave = None
        clock.advance(COOLDOWN)
        assert answer(rpc, "package_releases", "httpx") == UNAVAILABLE  # the pause (120 s) outlasts the deadline
        assert transport.asked == 1
        clock.advance(120)
        assert rpc("package_releases", "httpx") == ["0.28.1"]
        assert client.get("/healthz").json()["upstream_health"]["circuit"] == "closed"


# A redirect refused, and the requests one call makes before it is refused.
REFUSED_REDIRECTS: dict[str, tuple[Callable[[httpx.Request], httpx.Response], int]] = {
    "to another origin": (
        lambda r: httpx.Response(302, headers={"Location": "https://elsewhere.test" + r.url.path}),
        1,
    ),
    "in a loop": (lambda r: httpx.Response(307, headers={"Location": r.url.path + "x"}), 1 + MAX_REDIRECTS),
}


@pytest.mark.parametrize(("redirect", "requests"), REFUSED_REDIRECTS.values(), ids=REFUSED_REDIRECTS.keys())
def test_refused_redirects_are_unavailable_but_neither_retried_nor_an_outage(
    redirect: Callable[[httpx.Request], httpx.Response], requests: int
) -> None:
    fake = FakeIndex()
    transport = Misbehaving(fake)
    with served(fake, transport, upstream_retries=2, circuit_threshold=THRESHOLD) as client:
        after_first_pass(client)
        rpc = rpc_for(client)
        transport.misbehave = replying(redirect)
        names = ("roundup", "httpx", "starlette", "pypi-simple", "oddversions")
        for name in names:
            assert answer(rpc, "package_releases", name) == UNAVAILABLE
        assert transport.asked == requests * len(names)  # never tried again
        health = client.get("/healthz").json()["upstream_health"]
        assert (health["circuit"], health["consecutive_failures"]) == ("closed", 0)
        transport.misbehave = None
        assert rpc("package_releases", "defusedxml") == ["0.7.1"]


@pytest.mark.anyio
async def test_a_probe_cancelled_from_outside_lets_the_next_request_probe() -> None:
    # Shutting down cancels a fetch in flight: no word on the upstream, so the circuit stays as it was,
    # and the next request after it is the probe.
    held = asyncio.Event()

    async def hanging(request: httpx.Request) -> httpx.Response:
        held.set()
        await asyncio.Event().wait()
        raise AssertionError("never answered")

    fake = FakeIndex()
    transport = Misbehaving(fake)
    clock = FakeClock()
    settings = make_settings(upstream_retries=0, circuit_threshold=1, circuit_cooldown=COOLDOWN)
    guard = Guard(guard_config(settings), clock=clock, sleep=clock.sleep)
    async with build_client(timeout=5, transport=transport) as client:
        upstream = upstream_for(settings, client, guard)
        transport.misbehave = replying(lambda r: httpx.Response(503))
        with pytest.raises(UpstreamUnavailable, match="HTTP 503"):
            await upstream.get(upstream.project_url("roundup"))
        clock.advance(COOLDOWN)
        transport.misbehave = hanging
        probe = asyncio.create_task(upstream.get(upstream.project_url("roundup")))
        await asyncio.wait_for(held.wait(), 10)
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        assert guard.state == "half-open"
        transport.misbehave = None
        assert (await upstream.get(upstream.project_url("roundup"))).status == 200
        assert guard.state == "closed"


def test_a_retry_after_of_a_day_pauses_every_caller_for_five_minutes_at_most(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeIndex()
    transport = Misbehaving(fake)
    clock = FakeClock()
    with served(fake, transport, clock=clock, upstream_retries=0) as client, caplog.at_level(logging.WARNING, "shim"):
        after_first_pass(client)
        rpc = rpc_for(client)
        transport.misbehave = replying(lambda r: httpx.Response(503, headers={"Retry-After": "86400"}))
        assert answer(rpc, "package_releases", "roundup") == UNAVAILABLE
        transport.misbehave = None
        clock.advance(300 - 31)
        assert answer(rpc, "package_releases", "httpx") == UNAVAILABLE  # 31 s left: past the deadline (30 s)
        clock.advance(31)
        assert rpc("package_releases", "httpx") == ["0.28.1"]  # the pause is over: asked at once
    assert transport.asked == 1 and clock.slept == []
    assert "the upstream asked every caller to wait 86400 s; waiting SHIM_MAX_RETRY_AFTER=300 s" in caplog.text


@pytest.mark.parametrize(("cap", "waits"), [(2, [0.2, 1.8]), (0, [0.2])])
def test_a_retry_after_date_is_capped_by_the_setting(
    cap: float, waits: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    tomorrow = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(days=1), usegmt=True)
    fake = FakeIndex()
    transport = Misbehaving(fake)
    clock = FakeClock()
    with (
        served(fake, transport, clock=clock, upstream_retries=1, upstream_deadline=5, max_retry_after=cap) as client,
        caplog.at_level(logging.WARNING, "shim"),
    ):
        after_first_pass(client)
        guard_of(client.app).jitter = lambda: 0.5

        async def throttle_once(request: httpx.Request) -> httpx.Response:
            transport.misbehave = None
            return httpx.Response(429, headers={"Retry-After": tomorrow})

        transport.misbehave = throttle_once
        assert rpc_for(client)("package_releases", "roundup") == ["1.6.1"]  # waited the cap, not a day
    assert clock.slept == pytest.approx(waits)  # the back-off, then what is left of the pause
    assert f"waiting SHIM_MAX_RETRY_AFTER={cap:g} s" in caplog.text


def compressed(body: bytes, coding: str) -> bytes:
    wbits = {"gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS, "raw deflate": -zlib.MAX_WBITS}[coding]
    encoder = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return encoder.compress(body) + encoder.flush()


def bomb(size: int) -> bytes:
    """`size` zero bytes, gzip'ed, compressed a MiB at a time: the test never holds them decoded either."""
    encoder = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(2**20)
    return b"".join(encoder.compress(zeros) for _ in range(size // len(zeros))) + encoder.flush()


class Trickle(httpx.AsyncByteStream):
    """A body read in small pieces, as a slow network delivers it."""

    def __init__(self, body: bytes, piece: int = 512) -> None:
        self.body, self.piece = body, piece

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), self.piece):
            yield self.body[start : start + self.piece]


def encoding(transport: Misbehaving, coding: str, encode: Callable[[bytes], bytes]) -> Answer:
    """The fake index's own answer, encoded by `encode` and labelled `coding`."""

    async def reply(request: httpx.Request) -> httpx.Response:
        real = await transport.inner.handle_async_request(request)
        body = encode(await real.aread())
        headers = {k: v for k, v in real.headers.items() if k not in ("content-length", "content-encoding")}
        return httpx.Response(real.status_code, headers={**headers, "Content-Encoding": coding}, stream=Trickle(body))

    return reply


READ_ENCODINGS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", lambda body: compressed(body, "gzip")),
    "deflate": ("deflate", lambda body: compressed(body, "deflate")),
    "deflate without its zlib wrapper": ("deflate", lambda body: compressed(body, "raw deflate")),
    "identity": ("identity", lambda body: body),
}


@pytest.mark.parametrize(("coding", "encode"), READ_ENCODINGS.values(), ids=READ_ENCODINGS.keys())
def test_a_document_in_an_encoding_asked_for_reads(coding: str, encode: Callable[[bytes], bytes]) -> None:
    fake = FakeIndex()
    transport = Misbehaving(fake)
    transport.misbehave = encoding(transport, coding, encode)
    with served(fake, transport) as client:
        assert rpc_for(client)("package_releases", "roundup") == ["1.6.1"]
    assert [r.headers["accept-encoding"] for r in fake.requests if r.path.startswith("/pypi/")] == ["gzip, deflate"]


REFUSED_ENCODINGS: dict[str, tuple[str, Callable[[bytes], bytes], str]] = {
    "gzip twice": (
        "gzip, gzip",
        lambda body: compressed(compressed(body, "gzip"), "gzip"),
        "stacked content encodings: 'gzip, gzip'",
    ),
    "br, not asked for": ("br", lambda body: body, "a content encoding not asked for: 'br'"),
    "a truncated gzip": ("gzip", lambda body: compressed(body, "gzip")[:-20], "truncated gzip"),
    "gzip that is not": ("gzip", lambda body: b"\x1f\x8b" + body, "undecodable gzip: "),
}


@pytest.mark.parametrize(("coding", "encode", "why"), REFUSED_ENCODINGS.values(), ids=REFUSED_ENCODINGS.keys())
def test_a_document_in_another_encoding_is_malformed(
    coding: str, encode: Callable[[bytes], bytes], why: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeIndex()
    transport = Misbehaving(fake)
    transport.misbehave = encoding(transport, coding, encode)
    with served(fake, transport) as client, caplog.at_level(logging.WARNING, "shim"):
        assert answer(rpc_for(client), "package_releases", "roundup") == UNAVAILABLE
    assert transport.asked == 1  # an answer, if a bad one: never asked again
    assert f"https://upstream.test/pypi/roundup/json: {why}" in caplog.text


@pytest.mark.heavy  # bombs decompressed to their cap: memory measured
@pytest.mark.parametrize("layers", [1, 2])
def test_a_compressed_bomb_is_refused_at_the_cap_in_bounded_memory(layers: int) -> None:
    body = bomb(64 * 2**20)  # 64 MiB decoded, 64 KiB on the wire
    for _ in range(layers - 1):
        body = compressed(body, "gzip")
    headers = {"Content-Type": "application/json", "Content-Encoding": ", ".join(["gzip"] * layers)}
    fake = FakeIndex()
    transport = Misbehaving(fake)
    # A stream, not `content=`: httpx would decode a given content when the transport builds the response.
    transport.misbehave = replying(lambda r: httpx.Response(200, headers=headers, stream=Trickle(body, 2**16)))
    with served(fake, transport, upstream_retries=0, max_document_bytes=2**20) as client:
        after_first_pass(client)
        tracemalloc.start()
        try:
            assert answer(rpc_for(client), "package_releases", "roundup") == UNAVAILABLE
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 16 * 2**20  # the cap is 1 MiB: no read expands past it, nothing near 64 MiB is held
