"""The Redis every replica shares (SHIM_CACHE_URL), against a real redis-server: its setting, its bounded commands,
its going away and coming back, and what /healthz and the start say of it."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import xmlrpc.client
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from shim.app import create_app
from shim.config.rates import RateLimit
from shim.config.settings import Settings, SettingsError
from shim.shared.address import RedisURL
from shim.shared.availability import SharedStoreRequired, SharedUnavailable
from shim.shared.store import SharedRedis
from testkit.fakeindex import FakeIndex
from testkit.redisserver import RedisServer

from .helpers import SHARED_TIMEOUT, UPSTREAM, make_settings, shared_settings

pytestmark = pytest.mark.anyio


def store(url: str, **kwargs: float) -> SharedRedis:
    return SharedRedis(RedisURL.parse(url), timeout=kwargs.get("timeout", SHARED_TIMEOUT), upstream_base=UPSTREAM)


def test_the_url_setting_keeps_its_password_apart_and_never_shows_it() -> None:
    settings = Settings.load({"SHIM_UPSTREAM": UPSTREAM, "SHIM_CACHE_URL": "redis://:hunter2@cache.test:6380/1"})
    assert settings.cache_url is not None
    assert settings.cache_url.url == "redis://cache.test:6380/1"
    assert settings.cache_url.password is not None and settings.cache_url.password.reveal() == "hunter2"
    assert "hunter2" not in repr(settings)
    assert settings.public()["cache_url"] == "redis://***@cache.test:6380/1"


def test_the_password_setting_wins_over_the_urls() -> None:
    environ = {"SHIM_UPSTREAM": UPSTREAM, "SHIM_CACHE_URL": "rediss://:old@cache.test", "SHIM_CACHE_PASSWORD": "new"}
    settings = Settings.load(environ)
    assert settings.cache_url is not None and settings.cache_url.password is not None
    assert settings.cache_url.password.reveal() == "new"
    assert "new" not in repr(settings)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("http://cache.test", "expected a redis:// or rediss:// URL (`redis://host:6379/0`)"),
        ("redis://:secret@cache.test:port", "its port is not a number from 1 to 65535"),
        ("redis://cache.test/first", "its path must be a database number, such as /0, not /first"),
    ],
)
def test_a_bad_url_is_named_with_its_password_redacted(value: str, reason: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.load({"SHIM_UPSTREAM": UPSTREAM, "SHIM_CACHE_URL": value})
    assert "SHIM_CACHE_URL" in str(raised.value)
    assert reason in str(raised.value)
    assert "secret" not in str(raised.value)


def test_without_the_setting_nothing_is_shared(fake_index: FakeIndex) -> None:
    app = create_app(make_settings(), transport=httpx.ASGITransport(app=fake_index))
    with TestClient(app) as client:
        health = client.get("/healthz").json()
    assert (health["status"], health["degraded"], health["shared"]) == ("ok", [], None)


async def test_commands_run_on_redis_while_it_answers(redis_url: str) -> None:
    shared = store(redis_url)
    await shared.connect(required=False)
    assert shared.available
    await shared.run(lambda client: client.set(shared.key("probe"), b"1"))
    assert await shared.run(lambda client: client.get(shared.key("probe"))) == b"1"
    await shared.close()


async def test_redis_going_away_is_logged_once_and_refused_at_once_until_it_answers_again(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    shared = store(own_redis.url)
    await shared.connect(required=False)
    own_redis.kill()
    with caplog.at_level(logging.WARNING, logger="shim.shared.store"):
        for _ in range(3):
            with pytest.raises(SharedUnavailable):
                await shared.run(lambda client: client.get(shared.key("probe")))
    assert len([r for r in caplog.records if "is away" in r.getMessage()]) == 1
    assert shared.report()["state"] == "degraded"
    assert not await shared.ping()
    own_redis.start()
    assert await shared.ping()
    assert shared.report()["state"] == "shared"
    assert await shared.run(lambda client: client.get(shared.key("probe"))) is None
    await shared.close()


async def test_a_redis_that_never_answers_is_bounded_by_the_timeout() -> None:
    import socket
    import time

    with socket.socket() as listener:  # accepts the connection, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        shared = store(f"redis://127.0.0.1:{listener.getsockname()[1]}", timeout=0.2)
        started = time.monotonic()
        await shared.connect(required=False)
        assert time.monotonic() - started < 2
        assert not shared.available
        assert shared.problem is not None and "SHIM_CACHE_TIMEOUT=0.2" in shared.problem
        await shared.close()


async def test_a_wrong_password_starts_in_process_and_says_why(
    tmp_path: object, own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    own_redis.kill()
    own_redis.password = "right"
    own_redis.start()
    shared = store(own_redis.url.replace(":right@", ":wrong@"))
    with caplog.at_level(logging.WARNING, logger="shim.shared.store"):
        await shared.connect(required=False)
    assert not shared.available
    message = caplog.records[-1].getMessage()
    assert "SHIM_CACHE_URL=redis://***@127.0.0.1" in message
    assert "wrong" not in message and "right" not in message
    assert "in process" in message
    assert shared.report()["state"] == "degraded"
    await shared.close()


async def test_a_required_redis_that_cannot_be_reached_stops_the_start(own_redis: RedisServer) -> None:
    own_redis.kill()
    shared = store(own_redis.url)
    with pytest.raises(SharedStoreRequired) as raised:
        await shared.connect(required=True)
    assert str(raised.value).startswith(f"SHIM_CACHE_URL=redis://127.0.0.1:{own_redis.port}/0 cannot be used: ")
    assert str(raised.value).endswith("SHIM_CACHE_REQUIRED is set, so the service does not start")
    await shared.close()


def test_healthz_says_degraded_while_redis_is_away_and_readyz_stays_ready(
    own_redis: RedisServer, fake_index: FakeIndex
) -> None:
    app = create_app(shared_settings(own_redis.url), transport=httpx.ASGITransport(app=fake_index))
    shared = app.state.services.shared
    with TestClient(app) as client:
        assert client.get("/healthz").json()["shared"]["state"] == "shared"
        own_redis.kill()
        assert client.portal is not None
        client.portal.call(_fail_once, shared)
        health = client.get("/healthz")
        assert health.status_code == 200
        assert (health.json()["status"], health.json()["degraded"]) == ("degraded", ["shared"])
        assert health.json()["shared"]["state"] == "degraded"
        assert client.get("/readyz").status_code == 200


async def _fail_once(shared: SharedRedis) -> None:
    with pytest.raises(SharedUnavailable):
        await shared.run(lambda client: client.ping())


async def test_the_first_ping_after_a_restart_finds_redis_back(own_redis: RedisServer) -> None:
    shared = store(own_redis.url)
    await shared.connect(required=False)
    await asyncio.gather(*(shared.run(lambda client: client.ping()) for _ in range(4)))  # idle pooled connections
    own_redis.kill()
    own_redis.start()  # back before this replica asked anything: its pooled connections are to the one gone
    with pytest.raises(SharedUnavailable):
        await shared.run(lambda client: client.ping())
    assert await shared.ping()
    await shared.close()


async def test_a_command_redis_refuses_falls_back_for_that_call_only_and_is_logged_once(
    redis_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    shared = store(redis_url)
    await shared.connect(required=False)
    client = redis_server.client()
    client.config_set("maxmemory", "1")  # a full Redis that evicts nothing refuses every write
    client.config_set("maxmemory-policy", "noeviction")
    try:
        with caplog.at_level(logging.WARNING, logger="shim.shared.store"):
            for _ in range(3):
                with pytest.raises(SharedUnavailable):
                    await shared.run(lambda client: client.set(shared.key("full"), b"x" * 1000))
    finally:  # back as the test server runs (testkit.redisserver)
        client.config_set("maxmemory", "256mb")
        client.config_set("maxmemory-policy", "allkeys-lru")
    assert shared.available  # still there: reads and other writes go on using it
    assert shared.report()["refused_commands"] == 3
    refusals = [r.getMessage() for r in caplog.records if "refused a command" in r.getMessage()]
    assert len(refusals) == 1 and "maxmemory" in refusals[0]
    await shared.close()


@pytest.mark.parametrize(
    ("memory", "warned"),
    [
        ({"maxmemory": "0", "maxmemory-policy": "allkeys-lru"}, "has no maxmemory"),
        ({"maxmemory": "100mb", "maxmemory-policy": "noeviction"}, "evicts nothing (maxmemory-policy noeviction)"),
        ({"maxmemory": "100mb", "maxmemory-policy": "allkeys-lru"}, None),
    ],
)
async def test_a_redis_that_could_grow_without_bound_or_refuse_writes_is_named_at_start(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture, memory: dict[str, str], warned: str | None
) -> None:
    for name, value in memory.items():
        own_redis.client().config_set(name, value)
    shared = store(own_redis.url)
    with caplog.at_level(logging.WARNING, logger="shim.shared.store"):
        await shared.connect(required=False)
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if warned and warned in m] if warned else messages == []
    memory_seen = shared.report()["memory"]
    assert isinstance(memory_seen, dict) and memory_seen["maxmemory-policy"] == memory["maxmemory-policy"]
    await shared.close()


@pytest.mark.parametrize(
    "value",
    ["redis://:hunter2@loc\uff03alhost:6379/0", "redis://:hunter2@[::1/0"],
    ids=["a character no host may hold", "an unclosed bracket"],
)
def test_a_malformed_url_is_refused_without_ever_quoting_its_password(value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.load({"SHIM_UPSTREAM": UPSTREAM, "SHIM_CACHE_URL": value})
    assert "SHIM_CACHE_URL" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_a_password_may_hold_any_character_and_is_still_never_shown() -> None:
    settings = Settings.load({"SHIM_UPSTREAM": UPSTREAM, "SHIM_CACHE_URL": "redis://:hunter2\uff03x@localhost:6379/0"})
    assert settings.cache_url is not None and settings.cache_url.password is not None
    assert settings.cache_url.password.reveal() == "hunter2\uff03x"
    assert "hunter2" not in repr(settings)


async def test_a_burst_of_concurrent_calls_never_takes_a_healthy_redis_for_away(redis_url: str) -> None:
    fake = FakeIndex()
    settings = shared_settings(redis_url, cache_timeout=0.25, rate_limit=RateLimit(100_000, 60))
    app = create_app(settings, transport=httpx.ASGITransport(app=fake))
    body = xmlrpc.client.dumps(("roundup",), methodname="package_releases").encode()
    headers = {"Content-Type": "text/xml"}
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://shim") as client,
    ):
        await client.post("/pypi", content=body, headers=headers)
        # Queued on one event loop, many calls read Redis's answers later than SHIM_CACHE_TIMEOUT.
        answers = await asyncio.gather(*(client.post("/pypi", content=body, headers=headers) for _ in range(600)))
        report = (await client.get("/healthz")).json()["shared"]
    assert {answer.status_code for answer in answers} == {200}
    assert (report["state"], report["times_lost"]) == ("shared", 0), report


async def test_a_redis_whose_user_may_not_run_scripts_is_not_shared_through_and_says_why(
    redis_url: str, redis_server: RedisServer
) -> None:
    redis_server.client().acl_setuser(
        "noscript", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-@scripting"]
    )
    shared = store(redis_url.replace("redis://", "redis://noscript:pw@"))
    try:
        await shared.connect(required=False)
        assert not shared.available
        assert shared.problem is not None
        assert shared.problem.startswith("it refuses scripts (EVAL), which the shared cache's locks and the rate")
        assert shared.report()["state"] == "degraded"
    finally:
        await shared.close()
        redis_server.client().acl_deluser("noscript")


async def test_while_redis_refuses_writes_healthz_says_degraded(
    redis_url: str, redis_server: RedisServer, fake_index: FakeIndex
) -> None:
    shared = store(redis_url)
    await shared.connect(required=False)
    client = redis_server.client()
    client.config_set("maxmemory", "1")
    client.config_set("maxmemory-policy", "noeviction")
    try:
        with pytest.raises(SharedUnavailable):
            await shared.run(lambda client: client.set(shared.key("full"), b"x" * 1000))
    finally:
        client.config_set("maxmemory", "256mb")
        client.config_set("maxmemory-policy", "allkeys-lru")
    assert shared.available and shared.degraded
    assert shared.report()["state"] == "refusing"
    await shared.close()


def test_a_service_that_shares_nothing_never_loads_the_redis_client(tmp_path: Path) -> None:
    # redis-py costs each worker some 7 MB and 60 ms of start-up: only SHIM_CACHE_URL loads it.
    script = (
        "import sys; from pathlib import Path; from shim.app import create_app; "
        "from shim.config.settings import Settings; from shim.upstream.urls import UpstreamURL; "
        f"create_app(Settings(UpstreamURL.parse({UPSTREAM!r}), catalog_path=Path({str(tmp_path / 'db.sqlite3')!r}))); "
        "print('redis' in sys.modules)"
    )
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert found.stdout.strip() == "False", found.stderr
