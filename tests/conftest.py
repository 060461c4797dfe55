"""The fixtures every test module may ask for: an app over the real method table and the fake index, its client,
and an `rpc` helper bound to it. Plain helpers are in tests/helpers.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from shim.app import create_app
from shim.config.settings import Settings
from testkit.fakeindex import FakeIndex
from testkit.redisserver import RedisServer, redis_server_path

from .helpers import Rpc, make_settings, rpc_for


@pytest.fixture
def anyio_backend() -> str:
    """The async tests (`@pytest.mark.anyio`) run on asyncio, the service's own loop."""
    return "asyncio"


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def fake_index() -> FakeIndex:
    """The upstream: a fake index over every fixture project, counting the requests it gets."""
    return FakeIndex()


@pytest.fixture
def client(settings: Settings, fake_index: FakeIndex) -> Iterator[TestClient]:
    app = create_app(settings, transport=httpx.ASGITransport(app=fake_index))
    with TestClient(app, raise_server_exceptions=True) as test_client:
        yield test_client


@pytest.fixture
def rpc(client: TestClient) -> Rpc:
    return rpc_for(client)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server for this test process (each xdist worker has its own), on a free loopback port; the
    tests that use it are skipped, saying why, only on a machine where it cannot be had."""
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed (scripts/test installs Debian's redis-server when run as root)")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The shared server's URL, emptied for this test."""
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may kill and start again."""
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed (scripts/test installs Debian's redis-server when run as root)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()
