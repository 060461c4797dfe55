"""The Simple index shared by replicas over one real Redis: fetched by one of them per refresh interval (the others
take its copy, or wait for the one in flight), stored compressed for a few intervals, and each replica on its own
while Redis is away."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from shim.shared.records import Record
from shim.upstream.shared_index import KEEP, NAME
from testkit.fakeindex import FakeIndex
from testkit.redisserver import RedisServer

from .clock import FakeClock
from .replicas import replicas

pytestmark = pytest.mark.anyio

REFRESH = 300.0


@pytest.fixture
def fake() -> FakeIndex:
    return FakeIndex()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=time.time())


def index_requests(fake: FakeIndex) -> list[dict[str, str]]:
    return [r.headers for r in fake.requests if r.path == "/simple/"]


async def test_two_replicas_fetch_the_simple_index_once(
    redis_url: str, redis_server: RedisServer, fake: FakeIndex, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(50):
        fake.add_release(f"filler-{i}", "1.0")
    async with replicas(redis_url, fake, clock) as (a, b):
        first = await a.index.current()
        with caplog.at_level(logging.INFO, logger="shim.upstream.simple_index"):
            second = await b.index.current()
        assert caplog.records[-1].getMessage().endswith("(JSON; the copy another replica fetched, from Redis)")
        assert second.listing.names == first.listing.names
        assert second.listing.serials == first.listing.serials
        assert (second.etag, second.is_json) == (first.etag, True)
        key = a.shared_index.records.key(NAME)
        stored = redis_server.client().get(key)
        ttl = redis_server.client().pttl(key)
    assert len(index_requests(fake)) == 1
    assert stored is not None and b'"z":true' in stored  # compressed
    assert (KEEP * REFRESH - 5) * 1000 < ttl <= KEEP * REFRESH * 1000


async def test_concurrent_first_loads_on_both_replicas_are_one_request(
    redis_url: str, fake: FakeIndex, clock: FakeClock
) -> None:
    fake.slow("/simple/", 0.05)
    async with replicas(redis_url, fake, clock) as (a, b):
        first, second = await asyncio.gather(a.index.current(), b.index.current())
    assert first.listing.names == second.listing.names
    assert len(index_requests(fake)) == 1


async def test_a_refresh_due_is_one_conditional_request_for_both(
    redis_url: str, fake: FakeIndex, clock: FakeClock
) -> None:
    async with replicas(redis_url, fake, clock) as (a, b):
        await a.index.current()
        held = await b.index.current()
        clock.advance(REFRESH + 1)
        await a.index.refresh()
        refreshed = await b.index.refresh()  # the same copy, confirmed by the other: nothing parsed again
        assert refreshed.listing is held.listing
        assert refreshed.fetched_at == clock()
    first, second = index_requests(fake)
    assert "if-none-match" not in first
    assert second["if-none-match"]


async def test_a_changed_index_fetched_by_one_replica_is_taken_by_the_other(
    redis_url: str, fake: FakeIndex, clock: FakeClock
) -> None:
    async with replicas(redis_url, fake, clock) as (a, b):
        await a.index.current()
        await b.index.current()
        fake.add_release("brand-new", "0.1", files=[])
        clock.advance(REFRESH + 1)
        await a.index.refresh()
        snapshot = await b.index.refresh()
        assert "brand-new" in snapshot
        assert b.index.changed_at("brand-new") == clock()
    assert len(index_requests(fake)) == 2


async def test_a_copy_older_than_the_interval_is_fetched_again(
    redis_url: str, fake: FakeIndex, clock: FakeClock
) -> None:
    async with replicas(redis_url, fake, clock) as (a, b):
        await a.index.current()
        clock.advance(REFRESH + 1)
        await b.index.current()  # its first copy, but the shared one is past the interval
    assert len(index_requests(fake)) == 2


async def test_a_damaged_shared_copy_is_not_taken(
    redis_url: str, fake: FakeIndex, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with replicas(redis_url, fake, clock) as (a, b):
        await a.index.current()
        header = await a.shared_index.records.header(NAME)
        assert header is not None
        await a.shared_index.records.write(NAME, Record(header.meta, b"{not json"), 60)
        with caplog.at_level(logging.WARNING, logger="shim.upstream.simple_index"):
            snapshot = await b.index.current()
        assert "roundup" in snapshot
    assert "the shared copy of the Simple index is not used" in caplog.text
    assert len(index_requests(fake)) == 2


async def test_while_redis_is_away_each_replica_fetches_its_own_index(
    own_redis: RedisServer, fake: FakeIndex, clock: FakeClock
) -> None:
    async with replicas(own_redis.url, fake, clock) as (a, b):
        await a.index.current()
        own_redis.kill()
        clock.advance(REFRESH + 1)
        assert "roundup" in await a.index.refresh()
        assert "roundup" in await b.index.current()
        assert not a.shared.available and not b.shared.available
        own_redis.start()
        assert await a.shared.ping() and await b.shared.ping()
        clock.advance(REFRESH + 1)
        await a.index.refresh()
        await b.index.refresh()
    # Back on an emptied Redis, the refresh due brings a whole copy (not a 304) for the other to take.
    assert ["if-none-match" in headers for headers in index_requests(fake)] == [False, True, False, False]


async def test_a_replica_that_takes_the_lock_just_after_another_stored_the_index_does_not_fetch_it_again(
    redis_url: str, fake: FakeIndex, clock: FakeClock
) -> None:
    async with replicas(redis_url, fake, clock) as (a, b):
        take = b.shared_index.records.acquire

        async def after_a_stored_it(name: str, timeout: float) -> str | None:
            # Between b's look at Redis (nothing there) and its lock: a fetches, stores and lets go of the lock.
            await a.index.current()
            token: str | None = await take(name, timeout)
            return token

        b.shared_index.records.acquire = after_a_stored_it  # type: ignore[method-assign]
        assert (await b.index.current()).listing.names == (await a.index.current()).listing.names
    assert len(index_requests(fake)) == 1
