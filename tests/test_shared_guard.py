"""The upstream's circuit and Retry-After pause shared per origin by replicas over one real Redis: what one replica
learns of a failing or throttling upstream, the others act on without asking it; when Redis goes away each
replica's own guard decides, as without SHIM_CACHE_URL, and shares again once Redis is back."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from shim.app import create_app
from shim.errors import UpstreamUnavailable
from shim.shared.store import SharedRedis
from shim.upstream.client import Upstream, build_client
from shim.upstream.resilience import Guard
from shim.wiring import guard_config, shared_store, upstream_for
from testkit.fakeindex import FakeIndex
from testkit.redisserver import RedisServer

from .clock import FakeClock
from .helpers import away_within, fault_of, rpc_for, sampled_health, shared_settings
from .transports import Gate

INDEX = "https://upstream.test"
FILES = "https://files.upstream.test"
ROUNDUP = f"{INDEX}/pypi/roundup/json"
HTTPX = f"{INDEX}/pypi/httpx/json"
METADATA = f"{FILES}/packages/aa/bb/roundup-1.6.0.tar.gz.metadata"
OPEN = "the upstream (https://upstream.test) keeps failing; the circuit is open"
UNAVAILABLE = (-32403, "server error; service unavailable")

pytestmark = pytest.mark.anyio


@dataclass
class Replica:
    upstream: Upstream
    shared: SharedRedis
    clock: FakeClock | None

    @property
    def guard(self) -> Guard:
        return self.upstream.guard

    async def trip(self, url: str = ROUNDUP, failure: str = "HTTP 500") -> None:
        """Open this replica's circuit for `url`'s origin: the two failures in a row `replicas` sets it to take."""
        for _ in range(2):
            assert await self.reason(url) == failure

    async def reason(self, url: str) -> str:
        """Why a GET of `url` is unavailable (it must be)."""
        with pytest.raises(UpstreamUnavailable) as raised:
            await self.upstream.get(url)
        return raised.value.reason


@contextlib.asynccontextmanager
async def replicas(
    redis_url: str, transport: httpx.AsyncBaseTransport, count: int = 2, *, real_clock: bool = False, **settings: Any
) -> AsyncIterator[list[Replica]]:
    """`count` upstream clients ("replicas") over one Redis and one `transport`: no retries, a circuit that opens
    after two failures in a row; each guard on a fake clock of its own (unless `real_clock`: Redis's expiries are
    real time, so a test that waits out a cooldown waits for real)."""
    values: dict[str, Any] = {"upstream_retries": 0, "circuit_threshold": 2, "circuit_cooldown": 60}
    configured = shared_settings(redis_url, **{**values, **settings})
    made: list[Replica] = []
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(count):
            shared = shared_store(configured)
            assert shared is not None
            await shared.connect(required=False)
            stack.push_async_callback(shared.close)
            client = await stack.enter_async_context(build_client(timeout=5, transport=transport))
            clock = None if real_clock else FakeClock()
            guard = Guard(guard_config(configured))
            if clock is not None:
                guard.clock, guard.sleep = clock, clock.sleep
            made.append(Replica(upstream_for(configured, client, guard, shared=shared), shared, clock))
        yield made


def failing_index() -> FakeIndex:
    fake = FakeIndex()
    fake.fail("/pypi/*", status=500)
    return fake


def asked(fake: FakeIndex, pattern: str = "/pypi/*") -> int:
    return fake.count(pattern)


async def test_a_circuit_opened_on_one_replica_refuses_on_the_other_without_asking(redis_url: str) -> None:
    fake = failing_index()
    async with replicas(redis_url, httpx.ASGITransport(app=fake)) as (one, other):
        assert await other.reason(HTTPX) == "HTTP 500"  # one failure of its own: its circuit alone stays closed
        await one.trip()
        assert one.guard.state == "open" and asked(fake) == 3
        assert await other.reason(HTTPX) == OPEN
        assert await other.reason(ROUNDUP) == OPEN
        assert asked(fake) == 3  # the other replica never asked the upstream again
        report = other.guard.report()
        assert (report["circuit"], report["opened_elsewhere"], report["refused_by_circuit"]) == ("open", 1, 2)


async def test_a_retry_after_answered_to_one_replica_pauses_the_other(redis_url: str) -> None:
    fake = FakeIndex()
    transport = Throttling(fake, "3600")
    async with replicas(redis_url, transport, upstream_deadline=30) as (one, other):
        assert await one.reason(ROUNDUP) == "HTTP 429"
        # Cut to SHIM_MAX_RETRY_AFTER (300 s), and past the other's deadline (30 s): refused at once, unasked.
        assert await other.reason(HTTPX) == "the upstream asked to wait 300 s"
        assert transport.asked == 1 and asked(fake) == 0
        assert other.guard.counters["refused_by_backoff"] == 1
        assert other.clock is not None and other.clock.slept == []


async def test_a_pause_that_ends_before_the_deadline_is_waited_out_by_the_other_replica(redis_url: str) -> None:
    fake = FakeIndex()
    transport = Throttling(fake, "2")
    async with replicas(redis_url, transport) as (one, other):
        assert await one.reason(ROUNDUP) == "HTTP 429"
        assert (await other.upstream.get(HTTPX)).status == 200  # after the pause, which it waited out
        assert other.clock is not None and other.clock.slept == [pytest.approx(2.0, abs=0.2)]
        assert transport.asked == 2


async def test_a_pause_is_only_ever_lengthened(redis_url: str) -> None:
    fake = FakeIndex()
    transport = Throttling(fake, "3600", times=2)
    transport.held = answer = asyncio.Event()
    async with replicas(redis_url, transport, count=3) as (one, two, three):
        shorter = asyncio.create_task(two.reason(HTTPX))  # admitted before any pause, its answer held
        await asyncio.wait_for(transport.holding.wait(), 10)
        assert await one.reason(ROUNDUP) == "HTTP 429"  # a pause of 300 s (the cap), for every replica
        transport.retry_after = "1"
        answer.set()
        assert await shorter == "HTTP 429"  # asked to wait 1 s, once the 300 s were told to every replica
        assert await three.reason(ROUNDUP) == "the upstream asked to wait 300 s"


class Throttling(httpx.AsyncBaseTransport):
    """The fake index, but its first `times` requests answer 429 with `Retry-After`; `asked` counts the requests
    that reached it at all. While `held` is set to an event, a request waits for it (`holding` set meanwhile)."""

    def __init__(self, fake: FakeIndex, retry_after: str, times: int = 1) -> None:
        self.inner = httpx.ASGITransport(app=fake)
        self.retry_after = retry_after
        self.times = times
        self.asked = 0
        self.held: asyncio.Event | None = None
        self.holding = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.asked += 1
        held, self.held = self.held, None
        if held is not None:
            self.holding.set()
            await held.wait()
        if self.times > 0:
            self.times -= 1
            return httpx.Response(429, headers={"Retry-After": self.retry_after})
        return await self.inner.handle_async_request(request)


def time_passes(redis_url: str, seconds: float, replicas: list[Replica]) -> None:
    """`seconds` pass for the replicas' fake clocks and for Redis: every expiry there comes that much nearer."""
    client, passed = redis.Redis.from_url(redis_url), round(seconds * 1000)
    for key in client.scan_iter():
        ttl = int(client.pttl(key))
        if ttl > passed:
            client.pexpire(key, ttl - passed)
        elif ttl >= 0:
            client.delete(key)  # expired meanwhile
    client.close()
    for replica in replicas:
        assert replica.clock is not None
        replica.clock.advance(seconds)


@pytest.mark.parametrize("answers", [True, False], ids=["probe answered", "probe failed"])
async def test_after_the_cooldown_one_probe_goes_across_both_replicas(redis_url: str, answers: bool) -> None:
    fake = failing_index()
    gate = Gate(fake, path="/pypi/roundup/json")
    async with replicas(redis_url, gate) as both:
        one, other = both
        await one.trip()
        time_passes(redis_url, 59.9, both)
        assert await other.reason(HTTPX) == OPEN  # still cooling down
        time_passes(redis_url, 0.1, both)
        assert one.guard.state == "half-open"
        if answers:
            fake.clear_rules()
        gate.holding = True
        tries = [asyncio.create_task(replica.upstream.get(ROUNDUP)) for replica in (one, other)]
        done, _ = await asyncio.wait(tries, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.wait_for(gate.arrived.wait(), 10)
        (refused,) = done  # one of the two is the probe, held at the gate; the other is refused meanwhile
        assert isinstance(refused.exception(), UpstreamUnavailable) and str(refused.exception()).endswith(OPEN)
        gate.opened.set()
        (probe,) = set(tries) - done
        if answers:
            assert (await probe).status == 200
            assert asked(fake) == 3  # the two that opened the circuit, and the one probe
            assert (await one.upstream.get(HTTPX)).status == 200  # closed on both
            assert (await other.upstream.get(HTTPX)).status == 200
            assert (one.guard.state, other.guard.state) == ("closed", "closed")
            assert asked(fake) == 5
        else:
            with pytest.raises(UpstreamUnavailable, match="HTTP 500"):
                await probe
            assert asked(fake) == 3
            assert await one.reason(HTTPX) == OPEN  # opened again for everyone, for another cooldown
            assert await other.reason(HTTPX) == OPEN
            assert asked(fake) == 3


async def test_a_probe_cancelled_mid_flight_lets_the_next_request_of_any_replica_probe(redis_url: str) -> None:
    fake = failing_index()
    gate = Gate(fake, path="/pypi/roundup/json")
    async with replicas(redis_url, gate) as both:
        one, other = both
        await one.trip()
        time_passes(redis_url, 60, both)
        fake.clear_rules()
        gate.holding = True
        probe = asyncio.create_task(one.upstream.get(ROUNDUP))
        await asyncio.wait_for(gate.arrived.wait(), 10)
        assert await other.reason(HTTPX) == OPEN  # the probe is out
        probe.cancel()  # shutting down: no word on the upstream
        with pytest.raises(asyncio.CancelledError):
            await probe
        gate.holding = False
        assert (await other.upstream.get(ROUNDUP)).status == 200  # the next probe, from the other replica
        assert (await one.upstream.get(HTTPX)).status == 200
        assert (one.guard.state, other.guard.state) == ("closed", "closed")


async def test_the_files_hosts_circuit_is_apart_from_the_indexs(redis_url: str) -> None:
    fake = FakeIndex()
    fake.fail("/packages/*", status=503)
    async with replicas(redis_url, httpx.ASGITransport(app=fake)) as (one, other):
        await one.trip(METADATA, "HTTP 503")
        assert (
            await other.reason(METADATA)
            == "the upstream (https://files.upstream.test) keeps failing; the circuit is open"
        )
        assert asked(fake, "/packages/*") == 2
        assert (await other.upstream.get(ROUNDUP)).status == 200  # the index's own circuit is closed
        assert (await one.upstream.get(ROUNDUP)).status == 200
        assert other.upstream.guards[FILES].state == "open" and other.guard.state == "closed"


async def test_a_file_streamed_by_one_replica_opens_the_files_hosts_circuit_for_the_others_streams(
    redis_url: str,
) -> None:
    fake = FakeIndex()
    fake.fail("/packages/*", status=502)
    wheel = f"{FILES}/packages/aa/bb/roundup-1.6.0.tar.gz"
    async with replicas(redis_url, httpx.ASGITransport(app=fake)) as (one, other):
        for _ in range(2):
            async with one.upstream.stream(wheel) as response:
                assert response.status_code == 502  # the client's to see; the files host's circuit counts it
        with pytest.raises(UpstreamUnavailable) as refused:
            async with other.upstream.stream(wheel):
                pass
        assert refused.value.reason == "the upstream (https://files.upstream.test) keeps failing; the circuit is open"
        assert asked(fake, "/packages/*") == 2


async def test_a_replica_that_never_asked_the_files_host_shows_its_circuit_open(redis_url: str) -> None:
    fake = FakeIndex()
    fake.fail("/packages/*", status=503)
    async with replicas(redis_url, httpx.ASGITransport(app=fake)) as (one, other):
        await one.trip(METADATA, "HTTP 503")
        assert FILES not in other.upstream.guards
        await other.upstream.circuit.look(other.upstream.guards, other.upstream.guard_for)  # as /healthz does
        assert {origin: guard.state for origin, guard in other.upstream.guards.items()} == {
            INDEX: "closed",
            FILES: "open",
        }


async def test_redis_killed_mid_run_each_replica_guards_alone_then_they_share_again(own_redis: RedisServer) -> None:
    fake = failing_index()
    async with replicas(own_redis.url, httpx.ASGITransport(app=fake)) as (one, other):
        own_redis.kill()
        await one.trip()
        assert await one.reason(ROUNDUP) == OPEN  # its own circuit, as without Redis
        assert not one.shared.available
        assert await other.reason(HTTPX) == "HTTP 500"  # it knows nothing of the first's circuit: it asks
        assert asked(fake) == 3
        own_redis.start()  # back, and empty
        assert await one.shared.ping() and await other.shared.ping()
        assert await one.reason(ROUNDUP) == OPEN  # and the circuit it opened meanwhile is told to the other
        assert await other.reason(HTTPX) == OPEN
        assert asked(fake) == 3


async def test_a_redis_that_stops_answering_costs_requests_their_timeout_until_a_ping_of_its_own_finds_it_away(
    own_redis: RedisServer,
) -> None:
    fake = FakeIndex()
    async with replicas(own_redis.url, httpx.ASGITransport(app=fake), count=1, cache_timeout=0.05) as (one,):
        assert own_redis.process is not None
        own_redis.process.send_signal(signal.SIGSTOP)  # alive, connected, and silent
        try:
            started = time.monotonic()
            assert (await one.upstream.get(ROUNDUP)).status == 200  # one timeout, then its own guard decides
            assert time.monotonic() - started < 0.5
            assert await away_within(one.shared, 2.0)  # the ping of its own: 8 x 0.05 s
            started = time.monotonic()
            assert (await one.upstream.get(HTTPX)).status == 200  # Redis is away now: not waited for again
            assert time.monotonic() - started < one.shared.timeout
        finally:
            own_redis.process.send_signal(signal.SIGCONT)


async def test_redis_away_from_the_start_leaves_each_replica_its_own_guard(own_redis: RedisServer) -> None:
    own_redis.kill()
    fake = failing_index()
    async with replicas(own_redis.url, httpx.ASGITransport(app=fake)) as (one, other):
        for replica in (one, other):
            await replica.trip()
            assert await replica.reason(ROUNDUP) == OPEN
        assert asked(fake) == 4


def test_a_circuit_one_app_opened_is_open_on_the_others_healthz_and_refuses_its_calls(redis_url: str) -> None:
    fake = failing_index()
    apps = [
        create_app(
            shared_settings(redis_url, upstream_retries=0, circuit_threshold=2),
            transport=httpx.ASGITransport(app=fake),
        )
        for _ in range(2)
    ]
    with TestClient(apps[0]) as one, TestClient(apps[1]) as other:
        assert other.get("/healthz").json()["upstream_health"]["circuit"] == "closed"
        for name in ("roundup", "httpx"):
            assert fault_of(rpc_for(one), "package_releases", name) == UNAVAILABLE
        before = asked(fake)
        health = sampled_health(other)  # /healthz reads memory: the sampler looks at Redis for it
        assert health["upstream_health"]["circuit"] == "open"
        assert health["origins"][INDEX]["circuit"] == "open"
        assert fault_of(rpc_for(other), "package_releases", "starlette") == UNAVAILABLE
        assert asked(fake) == before  # refused by the circuit the first app opened, unasked
        assert other.get("/healthz").json()["upstream_health"]["refused_by_circuit"] >= 1


async def test_a_pause_or_circuit_held_longer_on_redis_than_this_replicas_own_limits_allow_is_cut_to_them(
    redis_url: str, redis_server: RedisServer
) -> None:
    fake = FakeIndex()
    async with replicas(redis_url, httpx.ASGITransport(app=fake), count=1) as (one,):
        admin, origin = redis_server.client(), "https://upstream.test"
        # A replica with other settings (or a damaged key) asks for a day: this one's limits are 300 s and 60 s.
        admin.set(one.shared.key("pause", origin), "1", px=86_400_000)
        assert await one.reason(HTTPX) == "the upstream asked to wait 300 s"
        admin.delete(one.shared.key("pause", origin))
        admin.set(one.shared.key("circuit", origin, "open"), "1", px=86_400_000)
        admin.set(one.shared.key("circuit", origin, "tripped"), "1", px=86_400_000)
        assert await one.reason(HTTPX) == OPEN
        assert one.guard.open_until - one.guard.clock() <= 60
