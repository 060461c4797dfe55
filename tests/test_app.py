"""The HTTP side of the endpoint: paths, content types, HTTP methods, and the request-body guard."""

from __future__ import annotations

import gzip
import os
import xmlrpc.client
import zlib
from collections.abc import Iterator

import anyio
import pytest
from starlette.testclient import TestClient

from shim.app import create_app

from .helpers import call, make_settings, sampled_health

CALL = xmlrpc.client.dumps(("x",), methodname="package_hosting_mode").encode()
PARSE_ERROR = (-32700, "parse error; not well formed")


def _result(body: bytes) -> object:
    try:
        return xmlrpc.client.loads(body)[0][0]
    except xmlrpc.client.Fault as fault:
        return (fault.faultCode, fault.faultString)


@pytest.mark.parametrize("prefix", ["", "/restore"])
@pytest.mark.parametrize("path", ["/pypi", "/pypi/", "/RPC2", "/"])
def test_xmlrpc_is_answered_on_all_four_paths(client: TestClient, prefix: str, path: str) -> None:
    response = client.post(prefix + path, content=CALL, headers={"Content-Type": "text/xml"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/xml; charset=UTF-8"
    assert _result(response.content) == "pypi-only"


@pytest.mark.parametrize("path", ["//pypi", "//pypi//", "///RPC2", "//", "/today//pypi"])
def test_doubled_slashes_reach_the_endpoint(client: TestClient, path: str) -> None:
    # stdeb's transport posts to `//pypi`; PyPI answered it.
    response = client.post(path, content=CALL, headers={"Content-Type": "text/xml"})
    assert response.status_code == 200
    assert _result(response.content) == (
        "pypi-only" if "today" not in path else (-32601, "server error; requested method not found")
    )


@pytest.mark.parametrize(
    "content_type",
    ["text/xml", "text/xml; charset=utf-8", "TEXT/XML;charset=ISO-8859-1", "application/xml", "application/xml; q=1"],
)
def test_xml_content_types_are_accepted(client: TestClient, content_type: str) -> None:
    response = client.post("/pypi", content=CALL, headers={"Content-Type": content_type})
    assert _result(response.content) == "pypi-only"


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "application/json"])
def test_other_content_types_are_refused_with_415(client: TestClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/pypi", content=CALL, headers=headers)
    assert response.status_code == 415
    assert "text/xml" in response.text


def test_get_on_an_endpoint_path_is_405_without_xml(client: TestClient) -> None:
    response = client.get("/pypi")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize(("path", "mode"), [("/", "restore"), ("/today/", "pypi-today"), ("/restore/", "restore")])
def test_get_on_a_root_path_is_the_docs_page_for_that_mode(client: TestClient, path: str, mode: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert f"<b>{mode}</b> mode" in response.text
    assert "package_releases(package_name, [show_hidden])" in response.text
    # A method absent in the mode is not listed.
    assert ("package_hosting_mode(" in response.text) is (mode == "restore")


def test_removed_mode_has_no_docs_page(client: TestClient) -> None:
    assert client.get("/removed/").status_code == 404


def test_unknown_paths_are_404(client: TestClient) -> None:
    assert client.post("/xmlrpc", content=CALL, headers={"Content-Type": "text/xml"}).status_code == 404
    assert client.get("/today/other").status_code == 404


def test_health_says_what_the_service_knows_of_its_upstream(client: TestClient) -> None:
    call(client, "release_data", "roundup", "1.5.1")  # the index is loaded, per-release JSON seen
    health = sampled_health(client)
    assert health["status"] == "ok" and health["upstream"] == "https://upstream.test/"
    assert health["index"]["format"] == "json" and health["index"]["serials"] is True
    assert health["index"]["projects"] == 13 and health["per_version_json"] is True
    call(client, "changelog_since_serial", 0)  # the refresher's first pass is over
    coverage = sampled_health(client)["catalog"]
    # roundup's JSON, read for release_data, is kept by the catalog: the only project it knows so far.
    assert (coverage["projects"], coverage["with_metadata"]) == (13, 1) and coverage["oldest_serial"] > 0
    assert (coverage["role"], coverage["writer_pid"]) == ("writer", os.getpid())


@pytest.fixture
def small_client() -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(max_body_bytes=4096))) as test_client:
        yield test_client


def _padded_call(size: int) -> bytes:
    """A valid call of about `size` bytes: the padding is a long string argument."""
    return xmlrpc.client.dumps(("x" * size,), methodname="package_hosting_mode").encode()


def test_a_body_within_the_cap_is_answered(small_client: TestClient) -> None:
    body = _padded_call(3000)
    assert len(body) < 4096
    response = small_client.post("/pypi", content=body, headers={"Content-Type": "text/xml"})
    assert _result(response.content) == "pypi-only"


def test_a_declared_length_over_the_cap_is_refused_before_reading(small_client: TestClient) -> None:
    response = small_client.post("/pypi", content=_padded_call(5000), headers={"Content-Type": "text/xml"})
    assert (response.status_code, _result(response.content)) == (200, PARSE_ERROR)


def test_a_chunked_body_over_the_cap_is_refused(small_client: TestClient) -> None:
    body = _padded_call(20000)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    response = small_client.post("/pypi", content=chunks(), headers={"Content-Type": "text/xml"})
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert _result(response.content) == PARSE_ERROR


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("x-gzip", gzip.compress), ("deflate", zlib.compress)],
)
def test_compressed_bodies_are_read(small_client: TestClient, encoding: str, compress: object) -> None:
    body = compress(_padded_call(3000))  # type: ignore[operator]
    response = small_client.post(
        "/pypi", content=body, headers={"Content-Type": "text/xml", "Content-Encoding": encoding}
    )
    assert _result(response.content) == "pypi-only"


def test_content_encoding_lines_are_one_list_of_codings(small_client: TestClient) -> None:
    # RFC 9110 §5.3: `gzip` on one line and `identity` on the next is the one list `gzip, identity`.
    headers = [("content-type", "text/xml"), ("content-encoding", "gzip"), ("content-encoding", "identity")]
    response = small_client.post("/pypi", content=gzip.compress(_padded_call(3000)), headers=headers)
    assert _result(response.content) == "pypi-only"
    stacked = [("content-type", "text/xml"), ("content-encoding", "gzip"), ("content-encoding", "gzip")]
    response = small_client.post("/pypi", content=gzip.compress(gzip.compress(CALL)), headers=stacked)
    assert _result(response.content) == PARSE_ERROR  # two codings stacked: refused, as on one line


def test_of_repeated_content_type_lines_the_first_is_read(small_client: TestClient) -> None:
    headers = [("content-type", "text/xml"), ("content-type", "text/plain")]
    assert _result(small_client.post("/pypi", content=CALL, headers=headers).content) == "pypi-only"
    headers = [("content-type", "text/plain"), ("content-type", "text/xml")]
    assert small_client.post("/pypi", content=CALL, headers=headers).status_code == 415


@pytest.mark.heavy  # a bomb decompressed to its cap: memory measured
def test_a_compression_bomb_is_refused_at_the_cap(small_client: TestClient) -> None:
    bomb = gzip.compress(_padded_call(50_000_000))  # ~50 MB that packs into ~50 KB
    assert len(bomb) < 100_000
    response = small_client.post(
        "/pypi", content=bomb[:4000], headers={"Content-Type": "text/xml", "Content-Encoding": "gzip"}
    )
    assert _result(response.content) == PARSE_ERROR
    response = small_client.post(
        "/pypi",
        content=gzip.compress(_padded_call(10_000)),
        headers={"Content-Type": "text/xml", "Content-Encoding": "gzip"},
    )
    assert _result(response.content) == PARSE_ERROR


@pytest.mark.parametrize(("encoding", "body"), [("gzip", b"not gzip at all"), ("br", CALL)])
def test_bad_or_unknown_encodings_are_parse_errors(small_client: TestClient, encoding: str, body: bytes) -> None:
    response = small_client.post(
        "/pypi", content=body, headers={"Content-Type": "text/xml", "Content-Encoding": encoding}
    )
    assert _result(response.content) == PARSE_ERROR


def test_an_oversized_body_is_logged_naming_the_setting(
    small_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="shim"):
        small_client.post("/pypi", content=_padded_call(5000), headers={"Content-Type": "text/xml"})
    assert "SHIM_MAX_BODY_BYTES is 4096" in caplog.text


def test_collapsing_doubled_slashes_rewrites_the_raw_path_too() -> None:
    from starlette.types import Message, Receive, Scope, Send

    from shim.web.app import CollapseSlashes

    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    async def nothing() -> Message:
        return {"type": "http.request"}

    async def ignore(message: Message) -> None:
        return None

    scope: Scope = {"type": "http", "path": "//pypi//x", "raw_path": b"//pypi//x"}
    anyio.run(CollapseSlashes(inner), scope, nothing, ignore)
    assert (seen[0]["path"], seen[0]["raw_path"]) == ("/pypi/x", b"/pypi/x")
