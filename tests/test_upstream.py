"""The upstream client alone: what it sends, where it may go, and how it fails."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shim import __version__
from shim.errors import UpstreamUnavailable
from shim.upstream.client import MAX_REDIRECTS, Upstream, build_client
from shim.upstream.resilience import Guard
from shim.upstream.urls import UpstreamURL
from shim.wiring import guard_config, upstream_for
from testkit.fakeindex import FakeIndex

from .clock import FakeClock
from .helpers import call, make_settings


def upstream_over(handler: Any, base: str = "https://user:s3cret@upstream.test/") -> Upstream:
    """The client over `handler`; its guard on a fake clock, so that retries wait for no real time."""
    client = build_client(timeout=5, transport=httpx.MockTransport(handler))
    clock = FakeClock()
    settings = make_settings(upstream=UpstreamURL.parse(base))
    return upstream_for(settings, client, Guard(guard_config(settings), clock=clock, sleep=clock.sleep))


@pytest.mark.anyio
async def test_requests_carry_the_user_agent_accept_and_credentials_for_the_upstream_only() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"{}", headers={"X-PyPI-Last-Serial": "42", "ETag": '"e"'})

    upstream = upstream_over(handler)
    fetched = await upstream.get(upstream.simple_index_url, accept="application/vnd.pypi.simple.v1+json")
    await upstream.get("https://files.upstream.test/packages/ab/cd/ef/x.whl.metadata")
    index_request, file_request = seen
    assert index_request.headers["user-agent"] == f"pypi-xmlrpc-shim/{__version__} httpx/{httpx.__version__}"
    assert index_request.headers["accept"] == "application/vnd.pypi.simple.v1+json"
    assert index_request.headers["authorization"] == httpx.BasicAuth("user", "s3cret")._auth_header
    # Credentials never travel to another origin, the files host included.
    assert "authorization" not in file_request.headers
    assert (fetched.serial, fetched.etag, fetched.status) == (42, '"e"', 200)


@pytest.mark.anyio
async def test_redirects_are_followed_within_the_origin_only() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/pypi/Roundup/json":
            return httpx.Response(301, headers={"Location": "/pypi/roundup/json"})
        if request.url.path == "/pypi/away/json":
            return httpx.Response(302, headers={"Location": "https://elsewhere.test/pypi/away/json"})
        if request.url.path.startswith("/loop"):
            return httpx.Response(307, headers={"Location": request.url.path + "x"})
        return httpx.Response(200, content=b"{}")

    upstream = upstream_over(handler)
    fetched = await upstream.get("https://upstream.test/pypi/Roundup/json")
    assert fetched.url == "https://upstream.test/pypi/roundup/json"
    with pytest.raises(UpstreamUnavailable, match=re.escape("redirect to another origin: https://elsewhere.test/")):
        await upstream.get("https://upstream.test/pypi/away/json")
    with pytest.raises(UpstreamUnavailable, match=f"more than {MAX_REDIRECTS} redirects"):
        await upstream.get("https://upstream.test/loop")


@pytest.mark.anyio
@pytest.mark.parametrize("status", [500, 502, 503, 429, 401, 403, 410, 418])
async def test_statuses_other_than_200_304_404_are_unavailable(status: int) -> None:
    upstream = upstream_over(lambda request: httpx.Response(status))
    with pytest.raises(UpstreamUnavailable, match=f"HTTP {status}"):
        await upstream.get(upstream.simple_index_url)


@pytest.mark.anyio
async def test_transport_failures_are_unavailable_and_name_no_credentials() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    upstream = upstream_over(handler)
    with pytest.raises(UpstreamUnavailable) as caught:
        await upstream.get(upstream.project_url("roundup"))
    assert "s3cret" not in str(caught.value) and "ConnectError" in str(caught.value)


@pytest.mark.anyio
async def test_only_http_urls_are_fetched() -> None:
    upstream = upstream_over(lambda request: httpx.Response(200))
    with pytest.raises(UpstreamUnavailable, match="not an http"):
        await upstream.get("file:///etc/passwd")


def test_urls_are_built_from_quoted_segments() -> None:
    upstream = upstream_over(lambda request: httpx.Response(200))
    assert upstream.project_url("roundup") == "https://upstream.test/pypi/roundup/json"
    assert (
        upstream.version_url("roundup", "1.0/../x?y#z")
        == "https://upstream.test/pypi/roundup/1.0%2F..%2Fx%3Fy%23z/json"
    )
    with pytest.raises(ValueError):
        upstream.version_url("roundup", "..")


def test_an_upstream_under_a_path_keeps_its_path() -> None:
    upstream = upstream_over(lambda r: httpx.Response(200), "https://proxy.test/repository/pypi/simple/")
    assert upstream.project_url("roundup") == "https://proxy.test/repository/pypi/pypi/roundup/json"
    assert upstream.simple_index_url == "https://proxy.test/repository/pypi/simple/"


@pytest.fixture
def recording_proxy() -> Iterator[tuple[str, list[bytes]]]:
    """A plain HTTP proxy on 127.0.0.1 that records request lines and answers an empty Simple index."""
    lines: list[bytes] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.05)
    stop = threading.Event()
    body = b'{"meta": {"_last-serial": 7, "api-version": "1.4"}, "projects": []}\n'

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    request += chunk
                lines.append(request.split(b"\r\n", 1)[0])
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.pypi.simple.v1+json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", lines
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_the_environment_proxy_is_honoured(
    recording_proxy: tuple[str, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, lines = recording_proxy
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    from starlette.testclient import TestClient

    from shim.app import create_app

    # No transport given: the real network stack, which must go through the proxy to reach this host.
    app = create_app(make_settings(upstream=UpstreamURL.parse("http://upstream.test/")))
    with TestClient(app) as client:
        assert call(client, "changelog_last_serial") == 7
    assert lines[0] == b"GET http://upstream.test/simple/ HTTP/1.1"


def test_a_fake_index_answers_through_the_same_client() -> None:
    # The fake's 301 for a non-normalised name is followed within the origin.
    import asyncio

    async def fetch() -> str:
        client = build_client(timeout=5, transport=httpx.ASGITransport(app=FakeIndex()))
        upstream = upstream_for(make_settings(), client)
        fetched = await upstream.get("https://upstream.test/pypi/Zope.Interface_Demo/json")
        await client.aclose()
        return fetched.url

    assert asyncio.run(fetch()) == "https://upstream.test/pypi/zope-interface-demo/json"


def test_a_ca_bundle_builds_a_client_without_deprecated_arguments() -> None:
    # httpx 0.28 deprecates `verify=<path>`: warnings are errors in the tests, so this fails on that form.
    import certifi

    client = build_client(timeout=1.0, ca_bundle=certifi.where())
    assert isinstance(client, httpx.AsyncClient)
