"""The document cache shared by replicas over one real Redis (SHIM_CACHE_URL): each document asked of the upstream
once, by whichever replica takes its lock, the others waiting and adopting what it stored; the same policy for an
entry from either level; what Redis keeps and for how long; and every call answered while Redis is away."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from shim.app import create_app
from shim.errors import UpstreamError
from shim.shared.records import THREAD_ABOVE, Record, SharedRecords
from shim.upstream.cache import DocumentCache
from shim.upstream.shared_documents import LOCK_SLACK
from shim.upstream.urls import Credentials, Secret, UpstreamURL
from shim.wiring import build_services
from testkit.fakeindex import FakeIndex
from testkit.redisserver import RedisServer

from .clock import FakeClock
from .helpers import UPSTREAM, away_within, call, make_settings, shared_settings
from .replicas import replicas

pytestmark = pytest.mark.anyio

PROJECT = "/pypi/roundup/json"
KEY = "project:roundup"


@pytest.fixture
def fake() -> FakeIndex:
    return FakeIndex()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=time.time())


async def test_two_replicas_ask_the_upstream_once_per_document(
    redis_url: str, fake: FakeIndex, clock: FakeClock
) -> None:
    async with replicas(redis_url, fake, clock) as (a, b):
        first = await a.store.project("roundup")
        second = await b.store.project("roundup")
        assert first is not None and second is not None
        assert (second.name, second.version, second.releases) == (first.name, first.version, first.releases)
        assert await b.store.project("roundup") is second  # a local hit: parsed once, Redis not asked
        assert await a.store.release("roundup", "1.6.0") is not None
        assert await b.store.release("roundup", "1.6.0") is not None
    assert fake.count(PROJECT) == 1
    assert fake.count("/pypi/roundup/1.6.0/json") == 1


async def test_twenty_concurrent_misses_over_both_replicas_are_one_request(
    redis_url: str, fake: FakeIndex, clock: FakeClock
) -> None:
    fake.slow(PROJECT, 0.05)
    async with replicas(redis_url, fake, clock) as (a, b):
        attempts = []
        for replica in (a, b):
            take = replica.cache.records.acquire

            async def counted(name: str, timeout: float, take: Any = take) -> str | None:
                attempts.append(name)
                token: str | None = await take(name, timeout)
                return token

            replica.cache.records.acquire = counted  # type: ignore[method-assign]
        docs = await asyncio.gather(*((a if i % 2 else b).store.project("roundup") for i in range(20)))
    assert {doc.version for doc in docs if doc is not None} == {"1.6.1"}
    assert fake.count(PROJECT) == 1
    # In process the misses still share one load: one lock attempt each, and one parse on the replica that waited.
    assert len(attempts) <= 3  # the waiter tries once more only when it finds nothing stored
    assert len({id(doc) for doc in docs[0::2]}) == len({id(doc) for doc in docs[1::2]}) == 1


async def test_a_revalidation_after_the_soft_ttl_is_one_conditional_request_for_both(
    redis_url: str, fake: FakeIndex, clock: FakeClock
) -> None:
    async with replicas(redis_url, fake, clock, cache_soft_ttl=60) as (a, b):
        await a.store.project("roundup")
        held = await b.store.project("roundup")
        clock.advance(61)
        assert await a.store.project("roundup") is not None
        # The same body confirmed by the other replica: its parsed form is kept, not parsed again.
        assert await b.store.project("roundup") is held
    first, second = [r.headers for r in fake.requests if r.path == PROJECT]
    assert "if-none-match" not in first
    assert second["if-none-match"]


async def test_a_not_found_is_shared_for_its_own_ttl(
    redis_url: str, redis_server: RedisServer, fake: FakeIndex, clock: FakeClock
) -> None:
    async with replicas(redis_url, fake, clock, not_found_ttl=30) as (a, b):
        assert await a.store.project("not-there") is None
        assert await b.store.project("not-there") is None
        ttl = redis_server.client().pttl(a.cache.records.key("project:not-there"))
        clock.advance(31)
        assert await b.store.project("not-there") is None  # past its TTL (on either level): asked again
    assert 29_000 < ttl <= 30_000
    assert fake.count("/pypi/not-there/json") == 2


async def test_a_shared_entry_lives_as_long_as_the_policy_can_use_it(
    redis_url: str, redis_server: RedisServer, fake: FakeIndex, clock: FakeClock
) -> None:
    settings = {"cache_soft_ttl": 60, "cache_hard_ttl": 600, "stale_if_error": 3600}
    async with replicas(redis_url, fake, clock, **settings) as (a, b):
        await a.store.project("roundup")
        await a.store.project("oddversions")
        clock.advance(100)  # stored now, the second has 100 s less to live
        await b.store.project("oddversions", stale_ok=False)
        client = redis_server.client()
        # Soft TTL and stale-if-error (3660 s) outlast the hard TTL: a copy may still be served on an error.
        assert 3_659_000 < client.pttl(a.cache.records.key(KEY)) <= 3_660_000
        assert 3_659_000 < client.pttl(a.cache.records.key("project:oddversions")) <= 3_660_000
        assert client.pttl(a.cache.records.lock_key(KEY)) == -2  # released


async def test_the_same_policy_holds_for_an_entry_from_either_level(
    redis_url: str, fake: FakeIndex, clock: FakeClock
) -> None:
    """A serial the Simple index shows above the shared entry's sends the replica that sees it to the upstream, and
    the other takes its copy once its own index shows the serial too."""
    async with replicas(redis_url, fake, clock, cache_soft_ttl=3600, cache_hard_ttl=7200) as (a, b):
        await a.index.current()
        await b.index.current()
        assert (await a.store.project("roundup")) is not None
        fake.add_release("roundup", "1.7.0", files=[])
        clock.advance(a.index.refresh_every + 1)
        await b.index.refresh()
        newer = await b.store.project("roundup")
        assert newer is not None and newer.version == "1.7.0"
        older = await a.store.project("roundup")  # its own index shows no change yet: its fresh copy holds
        assert older is not None and older.version == "1.6.1"
        await a.index.refresh()  # takes b's copy of the index, and with it the new serial
        adopted = await a.store.project("roundup")
        assert adopted is not None and adopted.version == "1.7.0"
    assert fake.count(PROJECT) == 2
    assert fake.count("/simple/") == 2


async def test_a_shared_copy_past_its_soft_ttl_is_served_stale_when_the_upstream_fails(
    redis_url: str, fake: FakeIndex, clock: FakeClock
) -> None:
    settings = {"cache_soft_ttl": 60, "stale_if_error": 3600, "upstream_retries": 0}
    async with replicas(redis_url, fake, clock, **settings) as (a, b):
        await a.store.project("roundup")
        clock.advance(61)
        fake.fail(PROJECT, status=503)
        doc = await b.store.project("roundup")  # never held here: adopted from Redis, and within stale-if-error
        assert doc is not None and doc.version == "1.6.1"
        assert b.cache.stale_served == 1
        clock.advance(3600)
        with pytest.raises(UpstreamError):
            await b.store.project("roundup")


async def test_an_adopted_project_document_is_told_to_the_catalog_as_a_fetched_one_is(
    redis_url: str, fake: FakeIndex, clock: FakeClock
) -> None:
    async with replicas(redis_url, fake, clock) as (a, b):
        told: list[tuple[str, str]] = []
        a.store.on_project = lambda name, doc: told.append(("a", doc.version))
        b.store.on_project = lambda name, doc: told.append(("b", doc.version))
        await a.store.project("roundup")
        await b.store.project("roundup")
        await b.store.project("roundup", by_catalog=True)
    assert told == [("a", "1.6.1"), ("b", "1.6.1")]


async def test_a_holder_whose_fetch_fails_lets_a_waiter_fetch_at_once(
    redis_url: str, fake: FakeIndex, clock: FakeClock
) -> None:
    fake.slow(PROJECT, 0.05, times=1)
    fake.fail(PROJECT, status=503, times=1)
    async with replicas(redis_url, fake, clock, upstream_retries=0) as (a, b):
        holder = asyncio.create_task(a.store.project("roundup"))
        async with asyncio.timeout(5):
            while not await a.cache.records.held(KEY):
                await asyncio.sleep(0.001)
        started = time.monotonic()
        doc = await b.store.project("roundup")  # waits for the holder, finds nothing stored, and asks itself
        waited = time.monotonic() - started
        with pytest.raises(UpstreamError):
            await holder
    assert doc is not None and doc.version == "1.6.1"
    assert waited < 1.0 < b.cache.lock_timeout
    assert fake.count(PROJECT) == 2


@pytest.mark.parametrize("left_for", [60, None], ids=["expiring", "never expiring"])
async def test_a_lock_left_by_a_dead_holder_delays_the_others_at_most_the_lock_timeout(
    redis_url: str, redis_server: RedisServer, fake: FakeIndex, clock: FakeClock, left_for: int | None
) -> None:
    async with replicas(redis_url, fake, clock, count=1) as (a,):
        assert a.cache.lock_timeout == make_settings().upstream_deadline + LOCK_SLACK
        a.cache.lock_timeout = 0.06
        redis_server.client().set(a.cache.records.lock_key(KEY), "a replica that died", px=left_for)
        started = time.monotonic()
        assert await a.store.project("roundup") is not None
        waited = time.monotonic() - started
    assert 0.05 <= waited < 0.5
    assert fake.count(PROJECT) == 1


async def test_a_large_body_is_stored_compressed_in_parts_and_read_back_byte_for_byte(
    redis_url: str, redis_server: RedisServer, fake: FakeIndex, clock: FakeClock
) -> None:
    async with replicas(redis_url, fake, clock, count=1) as (a,):
        records = SharedRecords(a.shared, "test")
        compressible = b"".join(b'{"version": "1.%d", "files": []},' % i for i in range(10_000))
        incompressible = os.urandom(1_500_000)  # three parts as it is
        for name, body in (("json", compressible), ("random", incompressible), ("small", b"{}")):
            assert await records.write(name, Record({"fetched_at": 1.0, "n": name}, body), 60)
            read = await records.read(name)
            assert read is not None and read[1] == Record({"fetched_at": 1.0, "n": name}, body)
        raw = redis_server.client().get(records.key("json"))
        assert raw is not None and len(raw) < len(compressible) // 10
        assert len(compressible) > THREAD_ABOVE  # compressed off the event loop
        # A record written again replaces its parts: the former generation goes with it.
        assert await records.write("random", Record({"fetched_at": 2.0}, incompressible[::-1]), 60)
        read = await records.read("random")
        assert read is not None and read[1].body == incompressible[::-1]
        (parts,) = redis_server.client().keys(a.shared.key("test-parts", "*"))
        assert 59_000 < redis_server.client().pttl(parts) <= 60_000  # parts expire with their record


async def test_a_document_larger_than_the_shared_limit_is_kept_in_process_only(
    redis_url: str, redis_server: RedisServer, fake: FakeIndex, clock: FakeClock
) -> None:
    async with replicas(redis_url, fake, clock) as (a, b):
        a.cache.max_shared_bytes = b.cache.max_shared_bytes = 100
        await a.store.project("roundup")
        await b.store.project("roundup")
        await b.store.project("roundup")
        assert redis_server.client().exists(a.cache.records.key(KEY)) == 0
    assert fake.count(PROJECT) == 2


async def test_a_shared_value_that_does_not_decode_is_no_entry(
    redis_url: str, redis_server: RedisServer, fake: FakeIndex, clock: FakeClock
) -> None:
    async with replicas(redis_url, fake, clock, count=1) as (a,):
        client = redis_server.client()
        client.set(a.cache.records.key(KEY), b"\x00not a record")
        client.set(a.cache.records.key("project:oddversions"), b'{"m":{"status":"200"},"z":false,"n":0,"g":""}\n{}')
        assert await a.store.project("roundup") is not None
        assert await a.store.project("oddversions") is not None
        assert a.shared.available
    assert fake.count(PROJECT) == 1


async def test_a_malformed_shared_body_is_not_adopted(
    redis_url: str, redis_server: RedisServer, fake: FakeIndex, clock: FakeClock
) -> None:
    async with replicas(redis_url, fake, clock) as (a, b):
        await a.store.project("roundup")
        record = await a.cache.records.read(KEY)
        assert record is not None
        await a.cache.records.write(KEY, Record(record[1].meta, b"{not json"), 60)
        doc = await b.store.project("roundup")
    assert doc is not None and doc.version == "1.6.1"
    assert fake.count(PROJECT) == 2


async def test_while_redis_is_away_every_call_answers_and_sharing_resumes_when_it_is_back(
    own_redis: RedisServer, fake: FakeIndex, clock: FakeClock
) -> None:
    async with replicas(own_redis.url, fake, clock) as (a, b):
        await a.store.project("roundup")
        own_redis.kill()
        assert await b.store.project("roundup") is not None  # fetched itself
        assert await a.store.project("oddversions") is not None
        assert await b.store.project("oddversions") is not None
        assert not a.shared.available and not b.shared.available
        own_redis.start()
        assert await a.shared.ping() and await b.shared.ping()
        assert await a.store.project("httpx") is not None
        assert await b.store.project("httpx") is not None
    assert (fake.count(PROJECT), fake.count("/pypi/oddversions/json"), fake.count("/pypi/httpx/json")) == (2, 2, 1)


async def test_a_redis_that_never_answered_leaves_the_cache_in_process(
    own_redis: RedisServer, fake: FakeIndex, clock: FakeClock
) -> None:
    own_redis.kill()
    async with replicas(own_redis.url, fake, clock) as (a, b):
        assert await a.store.project("roundup") is not None
        assert await b.store.project("roundup") is not None
        assert await b.store.project("roundup") is not None
    assert fake.count(PROJECT) == 2


def test_without_a_cache_url_the_cache_stays_in_process(fake: FakeIndex) -> None:
    services, _ = build_services(make_settings(), httpx.ASGITransport(app=fake))
    assert type(services.store.cache) is DocumentCache
    assert services.shared is None
    services.catalog.close()


def test_two_services_over_one_redis_ask_the_upstream_once_for_a_call_on_each(redis_url: str, fake: FakeIndex) -> None:
    apps = [create_app(shared_settings(redis_url), transport=httpx.ASGITransport(app=fake)) for _ in range(2)]
    with TestClient(apps[0]) as first, TestClient(apps[1]) as second:
        assert call(first, "package_releases", "roundup") == ["1.6.1"]
        assert call(second, "package_releases", "roundup") == ["1.6.1"]
        assert call(second, "release_urls", "roundup", "1.6.0") == call(first, "release_urls", "roundup", "1.6.0")
        assert first.get("/healthz").json()["shared"]["state"] == "shared"
    assert fake.count(PROJECT) == 1


async def test_a_redis_that_answers_too_slowly_costs_a_timeout_a_call_then_the_cache_goes_on_in_process(
    own_redis: RedisServer, fake: FakeIndex, clock: FakeClock
) -> None:
    async with replicas(own_redis.url, fake, clock, cache_timeout=0.05) as (a, b):
        await a.store.project("roundup")
        own_redis.client().client_pause(1000)  # every command waits a second: past SHIM_CACHE_TIMEOUT
        started = time.monotonic()
        assert await b.store.project("roundup") is not None
        assert time.monotonic() - started < 0.5  # its commands' timeouts (0.05 s here), then the upstream
        assert await away_within(b.shared, 2.0)  # no answer to a ping of its own either
        started = time.monotonic()
        assert await b.store.project("oddversions") is not None
        assert time.monotonic() - started < 0.05  # nothing waits on Redis now
    assert fake.count(PROJECT) == 2


async def test_a_replica_that_takes_the_lock_just_after_another_stored_the_document_does_not_fetch_again(
    redis_url: str, fake: FakeIndex, clock: FakeClock
) -> None:
    async with replicas(redis_url, fake, clock) as (a, b):
        take = b.cache.records.acquire

        async def after_a_stored_it(name: str, timeout: float) -> str | None:
            # Between b's look at Redis (a miss) and its lock: a fetches, stores and releases the lock.
            assert await a.store.project("roundup") is not None
            token: str | None = await take(name, timeout)
            return token

        b.cache.records.acquire = after_a_stored_it  # type: ignore[method-assign]
        assert await b.store.project("roundup") is not None
    assert fake.count(PROJECT) == 1


async def test_a_document_fetched_with_credentials_is_never_served_by_a_service_without_them(redis_url: str) -> None:
    behind_login, anonymous = FakeIndex(), FakeIndex()
    anonymous.fail(PROJECT, status=404)  # a private index shows the anonymous user no such project
    built = []
    for fake, credentials in ((behind_login, Credentials("alice", Secret("s3cret"))), (anonymous, None)):
        settings = shared_settings(redis_url, upstream=UpstreamURL(UPSTREAM, credentials))
        services, client = build_services(settings, httpx.ASGITransport(app=fake))
        assert services.shared is not None
        await services.shared.connect(required=False)
        built.append((services, client))
    try:
        (with_login, _), (without, _) = built
        assert await with_login.store.project("roundup") is not None
        assert await without.store.project("roundup") is None
        assert with_login.shared is not None and without.shared is not None
        assert with_login.shared.prefix != without.shared.prefix
    finally:
        for services, client in built:
            assert services.shared is not None
            await services.shared.close()
            await client.aclose()
            services.catalog.close()


async def test_a_reader_that_must_see_the_upstreams_copy_never_joins_a_load_that_may_end_on_redis(
    redis_url: str, fake: FakeIndex, clock: FakeClock
) -> None:
    async with replicas(redis_url, fake, clock) as (a, b):
        await a.store.project("roundup")  # on Redis: 1.6.1
        fake.add_release("roundup", "1.7.0", files=[])  # b's Simple index does not show it yet
        ordinary, current = await asyncio.gather(
            b.store.project("roundup"), b.store.project("roundup", stale_ok=False, by_catalog=True)
        )
    assert ordinary is not None and ordinary.version == "1.6.1"  # the shared copy, as the policy allows
    assert current is not None and current.version == "1.7.0"  # the catalog's writer sees the upstream's
