"""Rate limits shared by replicas on Redis (SHIM_CACHE_URL): a client's window counts its calls on every replica, with
PyPI's moving window, fault and headers, and the same counting as in process; when Redis goes away each replica counts
in process, and shares again once it is back."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from shim.app import create_app
from shim.config.rates import RateLimit
from shim.shared.address import RedisURL
from shim.shared.store import SharedRedis
from shim.upstream.urls import UpstreamURL
from shim.xmlrpc.ratelimit import RateLimiter
from testkit.fakeindex import FakeIndex
from testkit.redisserver import RedisServer

from .helpers import UPSTREAM, in_app, make_settings, shared_settings
from .rate_calls import REFUSAL, post


@contextlib.contextmanager
def replicas(url: str, *, count: int = 2, **settings: Any) -> Iterator[list[TestClient]]:
    """`count` running services over one Redis at `url` and one fake index, as replicas behind a balancer are."""
    fake = FakeIndex()
    with contextlib.ExitStack() as stack:
        clients = []
        for _ in range(count):
            app = create_app(shared_settings(url, **settings), transport=_transport(fake))
            clients.append(stack.enter_context(TestClient(app)))
        yield clients


def _transport(fake: FakeIndex) -> httpx.AsyncBaseTransport:
    return httpx.ASGITransport(app=fake)


def reset_hint(string: str) -> int:
    match = REFUSAL.fullmatch(string)
    assert match, string
    return int(match[1])


def test_a_client_alternating_between_replicas_is_refused_on_its_nth_call_overall(redis_url: str) -> None:
    with replicas(redis_url, rate_limit=RateLimit(5, 60)) as (a, b):
        answers = [post(client) for client in (a, b, a, b, a, b)]
    assert [value for value, _ in answers[:4]] == ["pypi-only"] * 4  # hit, then test: at most N-1 succeed
    for n, (_, response) in enumerate(answers[:4], 1):
        assert response.headers["ratelimit-policy"] == '"xmlrpc.client";q=5;w=60;pk=:ip:'
        assert response.headers["ratelimit"] in (f'"xmlrpc.client";r={5 - n};t=60', f'"xmlrpc.client";r={5 - n};t=59')
        assert "retry-after" not in response.headers
    for (code, string), refused in answers[4:]:
        assert code == -32500 and reset_hint(string) in (59, 60)
        assert refused.status_code == 200
        assert refused.headers["ratelimit"] in ('"xmlrpc.client";r=0;t=60', '"xmlrpc.client";r=0;t=59')
        assert refused.headers["retry-after"] in ("59", "60")


def test_the_pass_through_limit_is_shared_too(redis_url: str) -> None:
    limits: dict[str, Any] = {"passthrough_rate_limit": RateLimit(3, 60), "rate_limit": RateLimit(100, 60)}
    with replicas(redis_url, **limits) as (a, b):
        answers = [client.get("/simple/") for client in (a, b, a, b)]
        call = post(a)
    assert [r.status_code for r in answers] == [200, 200, 429, 429]
    refused = answers[2]
    assert refused.text == "429 Too Many Requests: over SHIM_PASSTHROUGH_RATE_LIMIT (3 per minute).\n"
    assert refused.headers["ratelimit-policy"] == '"passthrough";q=3;w=60;pk=:ip:'
    assert refused.headers["retry-after"] in ("59", "60")
    assert call[0] == "pypi-only"  # XML-RPC keeps a window of its own, on Redis too


def test_replicas_of_other_upstreams_keep_windows_of_their_own(redis_url: str) -> None:
    with replicas(redis_url, count=1, rate_limit=RateLimit(3, 60)) as (a,):
        first = [post(a)[0] for _ in range(2)]
    other = {"upstream": UpstreamURL.parse("https://other.upstream.test/")}
    with replicas(redis_url, count=1, rate_limit=RateLimit(3, 60), **other) as (b,):
        second = [post(b)[0] for _ in range(2)]
    assert first == second == ["pypi-only"] * 2


def test_redis_killed_mid_run_every_call_still_answers_and_once_back_the_windows_are_shared_again(
    own_redis: RedisServer,
) -> None:
    with replicas(own_redis.url, rate_limit=RateLimit(4, 60)) as (a, b):
        shared = [post(a)[0], post(b)[0]]  # two of the four on Redis
        own_redis.kill()
        alone_a = [post(a) for _ in range(4)]  # each replica counts in process now, from its own empty window
        alone_b = [post(b) for _ in range(4)]
        health = a.get("/healthz").json()
        own_redis.start()  # empty, as a Redis that restarted is
        for client in (a, b):
            assert in_app(client, client.app.state.services.shared.ping)  # type: ignore[attr-defined]
        again = [post(client) for client in (a, b, a, b)]
    assert shared == ["pypi-only"] * 2
    assert (health["status"], health["shared"]["state"]) == ("degraded", "degraded")
    for alone in (alone_a, alone_b):
        assert [value for value, _ in alone[:3]] == ["pypi-only"] * 3
        assert alone[0][1].headers["ratelimit"] == '"xmlrpc.client";r=3;t=60'
        assert alone[3][0][0] == -32500 and reset_hint(alone[3][0][1]) in (59, 60)
    assert [value for value, _ in again[:3]] == ["pypi-only"] * 3  # shared again: the 4th call overall is refused
    assert again[3][0][0] == -32500


def test_without_a_shared_store_each_replica_counts_alone() -> None:
    fake = FakeIndex()
    apps = [create_app(make_settings(rate_limit=RateLimit(3, 60)), transport=_transport(fake)) for _ in range(2)]
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        answers = [post(client)[0] for client in (a, b, a, b)]
    assert answers == ["pypi-only"] * 4


@pytest.mark.anyio
async def test_the_counting_is_the_same_on_redis_and_in_process(redis_url: str) -> None:
    shared = SharedRedis(RedisURL.parse(redis_url), timeout=0.25, upstream_base=UPSTREAM)
    await shared.connect(required=False)
    on_redis, in_process = RateLimiter(RateLimit(5, 60), shared=shared), RateLimiter(RateLimit(5, 60))
    verdicts = [[await limiter.hit("198.51.100.7") for _ in range(8)] for limiter in (on_redis, in_process)]
    assert [(v.allowed, v.remaining) for v in verdicts[0]] == [(v.allowed, v.remaining) for v in verdicts[1]]
    assert [v.allowed for v in verdicts[0]] == [True] * 4 + [False] * 4
    assert [v.remaining for v in verdicts[0]] == [4, 3, 2, 1, 0, 0, 0, 0]
    assert all(59 < v.resets_in <= 60.5 for v in verdicts[0])
    await shared.close()


@pytest.mark.anyio
async def test_a_window_on_redis_is_bounded_by_its_limit_and_expires_with_its_window(redis_url: str) -> None:
    shared = SharedRedis(RedisURL.parse(redis_url), timeout=0.25, upstream_base=UPSTREAM)
    await shared.connect(required=False)
    limiter = RateLimiter(RateLimit(5, 60), shared=shared)
    for _ in range(50):
        await limiter.hit("198.51.100.7")
    keys = await shared.client.keys("*")
    assert len(keys) == 1 and keys == await shared.client.keys(shared.prefix + "limits:*")  # the upstream's namespace
    assert await shared.client.llen(keys[0]) == 5  # refused calls past the N-th are not kept
    assert 0 < await shared.client.ttl(keys[0]) <= 60
    await shared.close()


@pytest.mark.anyio
async def test_a_call_counted_while_redis_is_away_is_counted_in_process(own_redis: RedisServer) -> None:
    shared = SharedRedis(RedisURL.parse(own_redis.url), timeout=0.25, upstream_base=UPSTREAM)
    await shared.connect(required=False)
    limiter = RateLimiter(RateLimit(5, 60), shared=shared)
    await limiter.hit("a")
    own_redis.kill()
    verdict = await limiter.hit("a")
    assert (verdict.allowed, verdict.remaining) == (True, 4)  # the first in this replica's own window
    assert len(limiter.memory) == 1
    await shared.close()


@pytest.mark.anyio
async def test_a_replica_whose_clock_runs_ahead_never_makes_the_reset_hint_longer_than_the_window(
    redis_url: str,
) -> None:
    shared = SharedRedis(RedisURL.parse(redis_url), timeout=0.25, upstream_base=UPSTREAM)
    await shared.connect(required=False)
    limiter = RateLimiter(RateLimit(2, 60), shared=shared)
    key = shared.prefix + "limits:" + limiter.item.key_for("198.51.100.7")
    await shared.client.lpush(key, time.time() + 30)  # the hit of a replica 30 s ahead of this one
    verdict = await limiter.hit("198.51.100.7")
    assert not verdict.allowed
    assert limiter.refusal(verdict).endswith("Limit may reset in 60 seconds.")
    assert limiter.headers(verdict)["Retry-After"] == "60"
    await shared.close()
