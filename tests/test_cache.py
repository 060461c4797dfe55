"""The document cache, pinned by counting the fake index's requests: revalidation, serial invalidation,
single flight, the not-found rules, and failures that are never stored."""

from __future__ import annotations

import asyncio
import xmlrpc.client
from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest

from shim.app import create_app
from shim.upstream.cache import Entry, MemoryStorage
from shim.upstream.simple_index import SimpleIndex
from testkit.fakeindex import FakeIndex

from .helpers import Rpc, after_first_pass, make_settings, refresh_index, rpc_for, served
from .transports import Gate, Tampered

PROJECT_JSON = "/pypi/roundup/json"


def requests_for(fake: FakeIndex, path: str) -> list[dict[str, str]]:
    return [r.headers for r in fake.requests if r.path == path]


@pytest.fixture
def fake() -> FakeIndex:
    return FakeIndex()


@pytest.fixture
def cached(fake: FakeIndex) -> Iterator[Rpc]:
    with served(fake, cache_soft_ttl=300) as client:
        yield rpc_for(client)


def test_a_fresh_document_is_served_without_asking_again(fake: FakeIndex, cached: Rpc) -> None:
    for _ in range(3):
        assert cached("package_releases", "roundup") == ["1.6.1"]
        assert cached("release_urls", "roundup", "1.6.0") != []
    assert len(requests_for(fake, PROJECT_JSON)) == 1


def test_a_document_past_its_soft_ttl_is_revalidated_with_its_etag(fake: FakeIndex) -> None:
    with served(fake, cache_soft_ttl=0) as client:
        rpc = rpc_for(client)
        assert rpc("package_releases", "roundup") == ["1.6.1"]
        assert rpc("package_releases", "roundup") == ["1.6.1"]
    first, second = requests_for(fake, PROJECT_JSON)
    assert "if-none-match" not in first
    assert second["if-none-match"]  # answered 304 by the fake: the cached body is served again


def test_a_document_past_its_hard_ttl_is_fetched_afresh(fake: FakeIndex) -> None:
    with served(fake, cache_soft_ttl=0, cache_hard_ttl=0) as client:
        rpc = rpc_for(client)
        rpc("package_releases", "roundup")
        rpc("package_releases", "roundup")
    assert [("if-none-match" in headers) for headers in requests_for(fake, PROJECT_JSON)] == [False, False]


def test_a_higher_serial_in_the_simple_index_drops_the_cached_document(fake: FakeIndex) -> None:
    with served(fake, cache_soft_ttl=3600) as client:
        rpc = rpc_for(client)
        assert rpc("package_releases", "roundup") == ["1.6.1"]
        fake.add_release("roundup", "1.7.0", files=[])
        assert rpc("package_releases", "roundup") == ["1.6.1"]  # still fresh: the index has not moved yet
        refresh_index(client)
        assert rpc("package_releases", "roundup") == ["1.7.0"]
        assert rpc("changelog_last_serial") == fake.state.serial
    # The refetch is a full one: the old ETag would only confirm a document known to be stale.
    assert [("if-none-match" in h) for h in requests_for(fake, PROJECT_JSON)] == [False, False]


def test_other_projects_stay_cached_when_one_changes(fake: FakeIndex) -> None:
    with served(fake, cache_soft_ttl=3600) as client:
        rpc = rpc_for(client)
        rpc("package_releases", "roundup")
        rpc("package_releases", "oddversions")
        fake.bump_serial("roundup")
        refresh_index(client)
        rpc("package_releases", "roundup")
        rpc("package_releases", "oddversions")
    assert len(requests_for(fake, PROJECT_JSON)) == 2
    assert len(requests_for(fake, "/pypi/oddversions/json")) == 1


@pytest.mark.anyio
async def test_concurrent_misses_share_one_upstream_request(fake: FakeIndex) -> None:
    fake.slow(PROJECT_JSON, 0.2)
    app = create_app(make_settings(), transport=httpx.ASGITransport(app=fake))
    body = xmlrpc.client.dumps(("roundup",), methodname="package_releases").encode()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shim.test") as client:
        responses = await asyncio.gather(
            *(client.post("/pypi", content=body, headers={"Content-Type": "text/xml"}) for _ in range(20))
        )
    assert {cast(list[str], xmlrpc.client.loads(r.content)[0][0])[0] for r in responses} == {"1.6.1"}
    assert len(requests_for(fake, PROJECT_JSON)) == 1


def test_a_not_found_is_remembered_for_its_own_ttl(fake: FakeIndex) -> None:
    with served(fake, not_found_ttl=300) as client:
        rpc = rpc_for(client)
        assert rpc("package_releases", "not-yet-there") == []
        assert rpc("release_data", "not-yet-there", "1.0") == {}
    assert len(requests_for(fake, "/pypi/not-yet-there/json")) == 1
    with served(fake, not_found_ttl=0) as client:
        rpc = rpc_for(client)
        rpc("package_releases", "not-yet-there")
        rpc("package_releases", "not-yet-there")
    assert len(requests_for(fake, "/pypi/not-yet-there/json")) == 3


def test_a_remembered_not_found_is_dropped_when_the_project_appears_in_the_simple_index(fake: FakeIndex) -> None:
    with served(fake, not_found_ttl=3600) as client:
        rpc = rpc_for(client)
        assert rpc("package_releases", "brand-new") == []
        fake.add_release("brand-new", "0.1", files=[])
        refresh_index(client)
        assert rpc("package_releases", "brand-new") == ["0.1"]


@pytest.mark.parametrize(
    "failure",
    [{"status": 500}, {"status": 503}, {"status": 429}, {"status": 403}, {"exception": httpx.ReadTimeout}],
    ids=["500", "503", "429", "403", "timeout"],
)
def test_failures_are_service_unavailable_and_never_cached(fake: FakeIndex, failure: dict[str, Any]) -> None:
    fake.fail(PROJECT_JSON, times=1, **failure)
    with served(fake, upstream_retries=0) as client:  # retries have tests of their own
        rpc = rpc_for(client)
        with pytest.raises(xmlrpc.client.Fault) as caught:
            rpc("package_releases", "roundup")
        assert (caught.value.faultCode, caught.value.faultString) == (-32403, "server error; service unavailable")
        assert rpc("package_releases", "roundup") == ["1.6.1"]
    assert len(requests_for(fake, PROJECT_JSON)) == 2


@pytest.mark.parametrize(
    "body",
    [b"<html>maintenance</html>", b'{"info": null}', b'{"info": {"name": "roundup"}}', b"[]", b'{"info": {}'],
)
def test_a_malformed_document_is_unavailable_and_never_cached(fake: FakeIndex, body: bytes) -> None:
    with served(fake, Tampered(fake, PROJECT_JSON, body)) as client:
        rpc = rpc_for(client)
        with pytest.raises(xmlrpc.client.Fault) as caught:
            rpc("package_releases", "roundup")
        assert caught.value.faultCode == -32403
        assert rpc("package_releases", "roundup") == ["1.6.1"]


def test_a_document_larger_than_the_cache_is_served_but_not_kept(fake: FakeIndex) -> None:
    with served(fake, cache_max_bytes=0) as client:
        rpc = rpc_for(client)
        assert rpc("package_releases", "roundup") == ["1.6.1"]
        assert rpc("package_releases", "roundup") == ["1.6.1"]
    assert len(requests_for(fake, PROJECT_JSON)) == 2


@pytest.mark.anyio
async def test_the_store_is_bounded_in_bytes_least_recently_used_first_out() -> None:
    storage = MemoryStorage(max_bytes=Entry(200, b"x" * 100, "u", 0).size() * 2)
    for key in ("a", "b", "c"):
        await storage.set(key, Entry(200, b"x" * 100, key, 0))
    assert await storage.get("a") is None
    assert await storage.get("b") is not None and await storage.get("c") is not None
    assert storage.bytes_used <= Entry(200, b"x" * 100, "u", 0).size() * 2


# The Simple index in memory


def test_the_simple_index_loads_at_start_without_any_call(fake: FakeIndex) -> None:
    with served(fake) as client:
        after_first_pass(client)
        index: SimpleIndex = client.app.state.services.index  # type: ignore[attr-defined]
        assert index.snapshot is not None
    assert [r.path for r in fake.requests] == ["/simple/"]


def test_a_refresh_in_flight_never_delays_calls_while_a_usable_copy_exists(fake: FakeIndex) -> None:
    gate = Gate(fake)
    with served(fake, gate) as client:
        rpc = rpc_for(client)
        assert "roundup" in rpc("list_packages")  # the first load
        fake.add_release("late-comer", "1.0", files=[])
        gate.holding = True
        index: SimpleIndex = client.app.state.services.index  # type: ignore[attr-defined]
        assert client.portal is not None
        pending = client.portal.start_task_soon(index.refresh)
        # The refresh is stuck upstream; the calls answer from the copy held.
        assert "late-comer" not in rpc("list_packages")
        assert rpc("changelog_last_serial") < fake.state.serial
        client.portal.call(gate.opened.set)
        pending.result(timeout=10)
        assert "late-comer" in rpc("list_packages")


def test_the_simple_index_is_refreshed_with_conditional_requests(fake: FakeIndex) -> None:
    with served(fake) as client:
        rpc_for(client)("list_packages")
        refresh_index(client)
        refresh_index(client)
    simple = requests_for(fake, "/simple/")
    assert len(simple) == 3 and "if-none-match" not in simple[0]
    assert all(h.get("if-none-match") for h in simple[1:])
    assert all("application/vnd.pypi.simple.v1+json" in h["accept"] for h in simple)


def test_a_failed_first_load_is_service_unavailable_and_tried_again(fake: FakeIndex) -> None:
    fake.fail("/simple/", status=502, times=1)
    with served(fake, upstream_retries=0) as client:  # the guard's retries have tests of their own
        rpc = rpc_for(client)
        after_first_pass(client)  # the first load failed
        index: SimpleIndex = client.app.state.services.index  # type: ignore[attr-defined]
        assert index.snapshot is None and client.get("/readyz").status_code == 503
        assert rpc("changelog_last_serial") == fake.state.serial  # no copy yet: this call loads it
    assert [r.path for r in fake.requests] == ["/simple/", "/simple/"]
