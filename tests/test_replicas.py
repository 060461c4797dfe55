"""Replicas that act as one: two service processes (`pypi-xmlrpc-shim`, default settings but SHIM_CACHE_URL) over one
real redis-server and one fake index on 127.0.0.1. They ask the upstream once per document, count a client's calls
together, share the upstream's circuit, and keep answering, degraded, while Redis is away."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from testkit.fakeindex import FakeIndex
from testkit.redisserver import RedisServer
from testkit.servers import free_port, serve_in_thread
from testkit.shimprocess import COMMAND, Running, command
from testkit.wheels import wheel_file

pytestmark = pytest.mark.e2e

REFUSED = "HTTPTooManyRequests: The action could not be performed because there were too many requests by the client."


def replica(index_url: str, state: Path, **settings: str) -> contextlib.AbstractContextManager[Running]:
    """One service process with its default settings but these, its own catalog (as on its own machine)."""
    return command({"SHIM_UPSTREAM": index_url + "/", "XDG_STATE_HOME": str(state), **settings})


def ready(one: Running) -> int:
    with httpx.Client(trust_env=False, timeout=10) as client:
        return client.get(one.base + "/readyz").status_code


@contextlib.contextmanager
def two_replicas(fake: FakeIndex, redis_url: str, tmp_path: Path, **settings: str) -> Iterator[tuple[Running, Running]]:
    with serve_in_thread(fake) as index_url:
        fake.set_urls(index_url + "/")
        with (
            replica(index_url, tmp_path / "a", SHIM_CACHE_URL=redis_url, **settings) as first,
            replica(index_url, tmp_path / "b", SHIM_CACHE_URL=redis_url, **settings) as second,
        ):
            yield first, second


def until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def with_projects(*names: str) -> FakeIndex:
    fake = FakeIndex()
    for name in names:
        fake.add_release(name, "1.0", files=[wheel_file(name, "1.0")])
    return fake


def test_package_releases_on_each_of_two_replicas_asks_the_upstream_once(redis_url: str, tmp_path: Path) -> None:
    fake = with_projects("cachetools")
    with two_replicas(fake, redis_url, tmp_path) as (first, second):
        assert first.rpc("package_releases", "cachetools") == ["1.0"]
        assert second.rpc("package_releases", "cachetools") == ["1.0"]
        assert first.rpc("release_urls", "cachetools", "1.0") == second.rpc("release_urls", "cachetools", "1.0")
        assert fake.count("/pypi/cachetools/json") == 1
        # The Simple index, tens of MB at the real index's size, is read once for both too.
        assert fake.count("/simple/") == 1


def test_twenty_concurrent_misses_spread_over_both_replicas_are_one_upstream_request(
    redis_url: str, tmp_path: Path
) -> None:
    fake = with_projects("slowpoke")
    fake.slow("/pypi/slowpoke/json", 0.5)  # every miss arrives while the first is in flight
    with two_replicas(fake, redis_url, tmp_path) as replicas:
        first_seen = [replicas[0].rpc("package_releases", "starlette"), replicas[1].rpc("package_releases", "httpx")]
        assert all(first_seen)
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda i: replicas[i % 2].rpc("package_releases", "slowpoke"), range(20)))
        assert answers == [["1.0"]] * 20
        assert fake.count("/pypi/slowpoke/json") == 1


def test_a_client_alternating_between_replicas_is_refused_on_its_nth_call_overall(
    redis_url: str, tmp_path: Path
) -> None:
    with two_replicas(FakeIndex(), redis_url, tmp_path, SHIM_RATE_LIMIT="4 per minute") as replicas:
        for call in range(3):
            assert replicas[call % 2].rpc("package_releases", "starlette")
        with pytest.raises(xmlrpc.client.Fault) as refused:
            replicas[1].rpc("package_releases", "starlette")
        assert refused.value.faultCode == -32500
        assert refused.value.faultString.startswith(REFUSED)
        with pytest.raises(xmlrpc.client.Fault):
            replicas[0].rpc("package_releases", "starlette")


def test_a_circuit_opened_on_one_replica_refuses_on_the_other_without_asking_the_upstream(
    redis_url: str, tmp_path: Path
) -> None:
    fake = FakeIndex()
    with two_replicas(fake, redis_url, tmp_path, SHIM_UPSTREAM_RETRIES="0") as (first, second):
        fake.fail("/pypi/*", status=503)
        for _ in range(5):  # SHIM_CIRCUIT_THRESHOLD's default: five failures in a row open it
            with pytest.raises(xmlrpc.client.Fault):
                first.rpc("package_releases", "starlette")
        assert first.health()["upstream_health"]["circuit"] == "open"
        asked = fake.count("/pypi/*")
        with pytest.raises(xmlrpc.client.Fault) as refused:
            second.rpc("package_releases", "httpx")
        assert (refused.value.faultCode, refused.value.faultString) == (-32403, "server error; service unavailable")
        assert fake.count("/pypi/*") == asked
        assert second.health()["upstream_health"]["circuit"] == "open"


def test_redis_killed_mid_run_leaves_every_call_answering_degraded_and_shared_again_when_it_returns(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    fake = with_projects("before", "during", "after")
    with two_replicas(fake, own_redis.url, tmp_path) as replicas:
        for one in replicas:
            assert one.rpc("package_releases", "before") == ["1.0"]
        assert fake.count("/pypi/before/json") == 1
        own_redis.kill()
        for one in replicas:
            assert one.rpc("package_releases", "during") == ["1.0"]
            assert one.rpc("package_releases", "before") == ["1.0"]
            health = one.health()
            assert (health["status"], health["degraded"]) == ("degraded", ["shared"])
            assert health["shared"]["state"] == "degraded"
            assert ready(one) == 200
        assert fake.count("/pypi/during/json") == 2  # each on its own while Redis is away
        own_redis.start()
        for one in replicas:
            assert until(lambda one=one: one.health()["shared"]["state"] == "shared"), one.output()  # type: ignore[misc]
        for one in replicas:
            assert one.rpc("package_releases", "after") == ["1.0"]
        assert fake.count("/pypi/after/json") == 1
        for one in replicas:
            log = one.output()
            assert log.count("is away") == 1, log
            assert "answers: cache, rate limits and upstream state are shared" in log


def test_an_unreachable_redis_at_start_serves_in_process_and_says_why(tmp_path: Path) -> None:
    gone = f"redis://127.0.0.1:{free_port()}/0"
    with serve_in_thread(FakeIndex()) as index_url, replica(index_url, tmp_path, SHIM_CACHE_URL=gone) as alone:
        assert alone.rpc("package_releases", "starlette")
        assert alone.health()["shared"]["state"] == "degraded"
        assert f"SHIM_CACHE_URL={gone} cannot be used" in alone.output()
        assert "starting with the cache, rate limits and upstream state in process" in alone.output()


def test_a_wrong_redis_password_at_start_serves_in_process_and_never_shows_a_password(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", password="right-one", port=free_port())
    (tmp_path / "redis").mkdir()
    server.start()
    try:
        wrong = server.url.replace("right-one", "wrong-one")
        with serve_in_thread(FakeIndex()) as index_url, replica(index_url, tmp_path, SHIM_CACHE_URL=wrong) as alone:
            assert alone.rpc("package_releases", "starlette")
            health = alone.health()
            assert health["shared"]["state"] == "degraded"
            assert health["shared"]["url"] == f"redis://***@127.0.0.1:{server.port}/0"
            log = alone.output()
            assert "cannot be used" in log
            assert "wrong-one" not in log and "wrong-one" not in str(health)
    finally:
        server.kill()


def test_a_required_redis_that_cannot_be_reached_stops_the_start_naming_both_settings(tmp_path: Path) -> None:
    gone = f"redis://127.0.0.1:{free_port()}/0"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIM_", "PIP_INDEX", "WEB_CONCURRENCY"))}
    env.update(
        SHIM_UPSTREAM="http://127.0.0.1:9/",
        XDG_STATE_HOME=str(tmp_path),
        SHIM_CACHE_URL=gone,
        SHIM_CACHE_REQUIRED="true",
    )
    done = subprocess.run(
        [COMMAND, "--port", str(free_port())], env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert done.returncode != 0
    output = done.stderr.decode()
    assert f"SHIM_CACHE_URL={gone} cannot be used" in output
    assert "SHIM_CACHE_REQUIRED is set, so the service does not start" in output
