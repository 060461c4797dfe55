"""What the service takes from upstream content: JSON nested too deep to parse."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from shim.modes import FilesMode
from testkit.fakeindex import FakeIndex

from .conftest import fault_of, rpc_for, served
from .transports import Tampered

UNAVAILABLE = (-32403, "server error; service unavailable")
EVERY_TIME = 1_000_000

# JSON nested deeper than any parser's stack: 100,000 levels of arrays.
DEEP = b"[" * 100_000 + b"]" * 100_000


# Deeply nested JSON: malformed data, never a crash


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/pypi/roundup/json", DEEP),
        ("/pypi/roundup/json", b'{"info": ' + DEEP + b"}"),
        ("/pypi/roundup/1.6.0/json", DEEP),
        ("/simple/roundup/", b'{"files": ' + DEEP + b"}"),
        ("/simple/", b'{"projects": ' + DEEP + b"}"),
    ],
    ids=["project", "project info", "release", "simple page", "simple index"],
)
def test_deeply_nested_json_is_a_502_on_the_pass_through(path: str, body: bytes) -> None:
    fake = FakeIndex()
    with served(fake, Tampered(fake, path, body, times=EVERY_TIME)) as client:
        response = client.get(path, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    assert (response.status_code, response.text) == (502, "502 Bad Gateway: the upstream index did not answer.")


def _project_json(fake: FakeIndex, name: str) -> dict[str, object]:
    with TestClient(fake, base_url="https://upstream.test") as upstream:
        document: dict[str, object] = upstream.get(f"/pypi/{name}/json").json()
    return document


@pytest.mark.parametrize("depth", range(900, 1010, 10))
def test_json_nested_near_the_parsers_limit_is_served_or_a_502_never_a_crash(depth: int) -> None:
    # Parsed where it is fetched, then again where its file URLs are rewritten, deeper in the stack.
    fake = FakeIndex()
    body = json.dumps({**_project_json(fake, "roundup"), "deep": []}).encode()
    body = body.replace(b'"deep": []', b'"deep": ' + b"[" * depth + b"]" * depth)
    with served(fake, Tampered(fake, "/pypi/roundup/json", body, times=EVERY_TIME), files=FilesMode.PROXY) as client:
        response = client.get("/pypi/roundup/json")
    assert response.status_code in (200, 502)
    if response.status_code == 200:  # rewritten (read as bytes: the test's own stack is deeper still)
        assert b'"url":"http://testserver/packages/' in response.content


@pytest.mark.parametrize(
    ("path", "method", "params"),
    [
        ("/pypi/roundup/json", "package_releases", ("roundup",)),
        ("/pypi/roundup/json", "release_data", ("roundup", "1.6.1")),
        ("/pypi/roundup/1.6.0/json", "release_data", ("roundup", "1.6.0")),
        ("/simple/", "list_packages", ()),
        ("/simple/", "changelog_last_serial", ()),
    ],
)
def test_deeply_nested_json_is_service_unavailable_over_xml_rpc(path: str, method: str, params: tuple[str]) -> None:
    fake = FakeIndex()
    with served(fake, Tampered(fake, path, DEEP, times=EVERY_TIME), upstream_retries=0) as client:
        assert fault_of(rpc_for(client), method, *params) == UNAVAILABLE
