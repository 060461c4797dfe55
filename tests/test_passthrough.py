"""The drop-in host: JSON, Simple, RSS and files at the upstream's URLs, served through the service."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from typing import cast

import httpx
import pytest
from starlette.testclient import TestClient

from shim.modes import FilesMode
from shim.upstream.urls import UpstreamURL
from shim.web.passthrough import negotiate_simple
from testkit.fakeindex import FakeIndex

from .helpers import call, refresh_index, served
from .transports import Lagging, Tampered

JSON_SIMPLE = "application/vnd.pypi.simple.v1+json"
SEED_PATH = "f0/07/6f4e2164ed82dfff873ee55181f782926bcb4a29f6a83fe4f8b9cbf5489c/roundup-1.6.0.tar.gz"
PROJECT = "/pypi/roundup/json"
KEPT = ("content-type", "etag", "cache-control", "vary", "x-pypi-last-serial", "last-modified")


@pytest.fixture
def fake() -> FakeIndex:
    return FakeIndex()


@pytest.fixture
def direct(fake: FakeIndex) -> Iterator[TestClient]:
    with served(fake) as client:
        yield client


@pytest.fixture
def proxied(fake: FakeIndex) -> Iterator[TestClient]:
    with served(fake, files=FilesMode.PROXY) as client:
        yield client


def upstream_response(fake: FakeIndex, path: str, **headers: str) -> httpx.Response:
    with TestClient(fake, base_url="https://upstream.test") as upstream:
        return cast(httpx.Response, upstream.get(path, headers=headers, follow_redirects=False))


def kept(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in KEPT if name in response.headers}


PAGES = [
    ("/pypi/roundup/json", {}),
    ("/pypi/roundup/1.6.0/json", {}),
    ("/pypi/oddversions/3.0/json", {}),  # the upstream's canonical-version lookup answers 3.0.0
    ("/simple/", {}),
    ("/simple/", {"Accept": JSON_SIMPLE}),
    ("/simple/roundup/", {}),
    ("/simple/roundup/", {"Accept": JSON_SIMPLE}),
    ("/rss/updates.xml", {}),
    ("/rss/packages.xml", {}),
    ("/rss/project/roundup/releases.xml", {}),
]


@pytest.mark.parametrize(("path", "headers"), PAGES, ids=[f"{p} {h}" for p, h in PAGES])
def test_documents_pass_through_byte_for_byte_with_their_headers(
    fake: FakeIndex, direct: TestClient, path: str, headers: dict[str, str]
) -> None:
    ours = direct.get(path, headers=headers)
    theirs = upstream_response(fake, path, **headers)
    assert ours.status_code == theirs.status_code == 200
    assert ours.content == theirs.content
    assert kept(ours) == kept(theirs)
    assert ours.headers.get("x-pypi-last-serial") or path.startswith("/rss/")


@pytest.mark.parametrize("prefix", ["/today", "/removed", "/restore"])
def test_documents_pass_through_under_every_mode_prefix(fake: FakeIndex, direct: TestClient, prefix: str) -> None:
    assert direct.get(prefix + "/pypi/roundup/json").content == upstream_response(fake, "/pypi/roundup/json").content


@pytest.mark.parametrize(
    ("accept", "kind"),
    [
        ("", "text/html"),
        ("text/html", "text/html"),
        ("text/plain", "text/html"),
        (JSON_SIMPLE, JSON_SIMPLE),
        ("application/vnd.pypi.simple.latest+json", JSON_SIMPLE),
        (f"text/html, application/vnd.pypi.simple.v1+html, {JSON_SIMPLE}", "text/html"),
        (f"text/html;q=0.01, application/vnd.pypi.simple.v1+html;q=0.2, {JSON_SIMPLE}", JSON_SIMPLE),
        (f"{JSON_SIMPLE};q=0, text/html", "text/html"),
        # pip's own Accept header
        (f"{JSON_SIMPLE}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01", JSON_SIMPLE),
    ],
)
def test_simple_negotiation_follows_pep_691(accept: str, kind: str) -> None:
    assert negotiate_simple(accept) == kind


def test_the_negotiated_type_is_part_of_the_cache_key(fake: FakeIndex, direct: TestClient) -> None:
    fake.requests.clear()
    for _ in range(2):
        html = direct.get("/simple/roundup/")
        data = direct.get("/simple/roundup/", headers={"Accept": JSON_SIMPLE})
    assert html.headers["content-type"].startswith("text/html")
    assert data.headers["content-type"] == JSON_SIMPLE
    asked = [r.headers.get("accept") for r in fake.requests if r.path == "/simple/roundup/"]
    assert asked == ["text/html", JSON_SIMPLE]  # once each, then both from the cache


def test_conditional_requests_are_answered_304(direct: TestClient) -> None:
    first = direct.get("/pypi/roundup/json")
    again = direct.get("/pypi/roundup/json", headers={"If-None-Match": first.headers["etag"]})
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["x-pypi-last-serial"] == first.headers["x-pypi-last-serial"]
    assert direct.get("/pypi/roundup/json", headers={"If-None-Match": '"other"'}).status_code == 200


def test_stale_documents_are_revalidated_upstream_with_their_etag(fake: FakeIndex) -> None:
    with served(fake, cache_soft_ttl=0) as client:
        client.get("/simple/roundup/")
        assert client.get("/simple/roundup/").status_code == 200
    conditional = [r.headers.get("if-none-match") for r in fake.requests if r.path == "/simple/roundup/"]
    assert conditional[0] is None and conditional[1]


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/pypi/Roundup/json", "/pypi/roundup/json"),
        ("/pypi/Zope.Interface_Demo/json/", "/pypi/zope-interface-demo/json/"),
        ("/pypi/Roundup/1.6.0/json", "/pypi/roundup/1.6.0/json"),
        ("/simple/Zope.Interface_Demo/", "/simple/zope-interface-demo/"),
        ("/today/simple/ROUNDUP/", "/today/simple/roundup/"),
    ],
)
def test_non_normalised_names_redirect_to_the_service(direct: TestClient, path: str, target: str) -> None:
    response = direct.get(path, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (301, "http://testserver" + target)


def test_not_found_is_the_upstreams(direct: TestClient) -> None:
    missing = direct.get("/pypi/no-such-project/json")
    assert (missing.status_code, missing.json()) == (404, {"message": "Not Found"})
    assert direct.get("/pypi/roundup/9.9/json").status_code == 404
    simple = direct.get("/simple/no-such-project/")
    assert (simple.status_code, simple.text) == (404, "404 Not Found")


# File URLs and files


def test_direct_mode_leaves_file_urls_on_the_files_host(direct: TestClient) -> None:
    document = direct.get("/pypi/roundup/json").json()
    assert document["releases"]["1.6.0"][0]["url"] == f"https://files.upstream.test/packages/{SEED_PATH}"
    assert direct.get(f"/packages/{SEED_PATH}").status_code == 404  # no open file proxy by default


def test_direct_mode_makes_relative_file_urls_absolute(direct: TestClient) -> None:
    (file,) = direct.get("/pypi/relative-urls/json").json()["urls"]
    assert file["url"] == "https://upstream.test/packages/ab/cd/relative_urls-1.0.tar.gz"


def test_proxy_mode_rewrites_file_urls_in_every_document(proxied: TestClient) -> None:
    ours = f"http://testserver/packages/{SEED_PATH}"
    project = proxied.get("/pypi/roundup/json")
    assert project.json()["releases"]["1.6.0"][0]["url"] == ours
    assert project.headers["etag"] == '"' + hashlib.md5(project.content).hexdigest() + '"'
    simple = proxied.get("/simple/roundup/", headers={"Accept": JSON_SIMPLE}).json()
    assert ours in [f["url"] for f in simple["files"]]
    html = proxied.get("/simple/roundup/").text
    assert f'href="{ours}#sha256=' in html and "files.upstream.test" not in html


def test_proxy_mode_streams_files_with_ranges(fake: FakeIndex, proxied: TestClient) -> None:
    proxied.get("/pypi/roundup/json")  # the files host is learnt from the upstream's documents
    whole = proxied.get(f"/packages/{SEED_PATH}")
    assert whole.status_code == 200 and len(whole.content) == 2893499
    assert whole.content == upstream_file(fake, SEED_PATH)
    part = proxied.get(f"/packages/{SEED_PATH}", headers={"Range": "bytes=10-19"})
    assert (part.status_code, part.headers["content-range"], part.content) == (
        206,
        "bytes 10-19/2893499",
        whole.content[10:20],
    )
    head = proxied.head(f"/packages/{SEED_PATH}")
    assert (head.status_code, head.headers["content-length"], head.content) == (200, "2893499", b"")


def upstream_file(fake: FakeIndex, path: str) -> bytes:
    with TestClient(fake, base_url="https://files.upstream.test") as files:
        return cast(httpx.Response, files.get(f"/packages/{path}")).content


def test_a_file_over_the_size_limit_is_refused(fake: FakeIndex) -> None:
    with served(fake, files=FilesMode.PROXY, max_file_bytes=1000) as client:
        client.get("/pypi/roundup/json")
        response = client.get(f"/packages/{SEED_PATH}")
    assert response.status_code == 403 and "SHIM_MAX_FILE_BYTES" in response.text


BAD_PATHS = [
    "/packages/..%2F..%2Fetc%2Fpasswd",
    "/packages/f0/07/%2e%2e/%2e%2e/simple/",
    "/packages/https:%2F%2Fevil.test%2Fx",
    "/packages/a b/c.whl",
    "/pypi/..%2Fsimple/json",
    "/pypi/roundup/..%2F..%2Fsimple/json",
    "/pypi/roundup%2F..%2Fx/json",
    "/simple/..%2F/",
    "/rss/..%2Fsimple.xml",
    "/rss/project/..%2Fx/releases.xml",
    "/rss/other.xml",
    "/pypi/roundup/1.6.0",
    "/admin/",
    "/simple/roundup/extra/",
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_only_the_documented_shapes_reach_the_upstream(fake: FakeIndex, proxied: TestClient, path: str) -> None:
    proxied.get("/pypi/roundup/json")
    fake.requests.clear()
    response = proxied.get(path, follow_redirects=False)
    assert response.status_code in (404, 405)
    for request in fake.requests:  # the upstream's own 404 for a quoted version is fine; nothing else
        assert request.host == "upstream.test"
        assert re.fullmatch(r"/pypi/roundup/[^/]+/json", request.path), request.path


# The serial rule: a page never shows a serial lower than XML-RPC reports for its project.


def test_a_project_page_never_shows_a_lower_serial_than_xmlrpc_reported(fake: FakeIndex) -> None:
    with served(fake, cache_soft_ttl=3600) as client:
        before = client.get("/pypi/roundup/json")
        client.get("/simple/roundup/", headers={"Accept": JSON_SIMPLE})
        fake.add_release("roundup", "1.7.0", files=[])
        refresh_index(client)
        reported = call(client, "list_packages_with_serial")["roundup"]
        assert reported > int(before.headers["x-pypi-last-serial"])
        page = client.get("/pypi/roundup/json")
        simple = client.get("/simple/roundup/", headers={"Accept": JSON_SIMPLE})
        assert int(page.headers["x-pypi-last-serial"]) >= reported
        assert int(simple.headers["x-pypi-last-serial"]) >= reported
        assert page.json()["info"]["version"] == "1.7.0"


def test_a_lagging_copy_is_fetched_again_for_the_serial_xmlrpc_reports(fake: FakeIndex) -> None:
    stale = upstream_response(fake, "/pypi/roundup/json")
    fake.add_release("roundup", "1.7.0", files=[])  # the index now reports a higher serial than `stale`
    fake.requests.clear()
    with served(fake, Lagging(fake, PROJECT, stale)) as client:
        reported = call(client, "list_packages_with_serial")["roundup"]
        page = client.get("/pypi/roundup/json")
    assert int(page.headers["x-pypi-last-serial"]) >= reported
    assert [r.path for r in fake.requests].count("/pypi/roundup/json") == 1  # the stale copy, then this one


# Streaming a file larger than memory would hold


def test_xmlrpc_and_pass_through_share_the_project_document(fake: FakeIndex, direct: TestClient) -> None:
    direct.get("/pypi/roundup/json")
    assert call(direct, "package_releases", "roundup") == ["1.6.1"]
    assert [r.path for r in fake.requests].count("/pypi/roundup/json") == 1
    assert json.loads(direct.get("/pypi/roundup/json").content)["info"]["version"] == "1.6.1"


def test_head_gives_the_headers_without_the_body(fake: FakeIndex, direct: TestClient) -> None:
    head = direct.head("/pypi/roundup/json")
    get = direct.get("/pypi/roundup/json")
    assert (head.status_code, head.content) == (200, b"")
    assert kept(head) == kept(get)


def test_a_configured_files_host_is_proxied_before_any_document_names_it(fake: FakeIndex) -> None:
    files_upstream = UpstreamURL.parse("https://files.upstream.test/")
    with served(fake, files=FilesMode.PROXY, files_upstream=files_upstream) as client:
        response = client.get(f"/packages/{SEED_PATH}", headers={"Range": "bytes=0-3"})
    assert (response.status_code, response.content) == (206, upstream_file(fake, SEED_PATH)[:4])


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/simple/roundup/", b"Service Unavailable"),
        ("/rss/updates.xml", b"<html>maintenance</html>"),
        ("/pypi/roundup/1.6.0/json", b"[]"),
        ("/pypi/roundup/json", b'{"info": null}'),
    ],
)
def test_a_malformed_document_is_a_502_and_never_cached(fake: FakeIndex, path: str, body: bytes) -> None:
    with served(fake, Tampered(fake, path, body)) as client:
        assert client.get(path).status_code == 502
        assert client.get(path).content == upstream_response(fake, path).content
