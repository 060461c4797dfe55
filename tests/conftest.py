"""The fixtures every test module may ask for: an app over the real method table and the fake index, its client,
and an `rpc` helper bound to it. Plain helpers are in tests/helpers.py."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.testclient import TestClient

from shim.app import create_app
from shim.config.settings import Settings
from testkit.fakeindex import FakeIndex

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
