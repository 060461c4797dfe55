"""What the service takes from upstream content: JSON nested too deep to parse, fields of the wrong type."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from shim.modes import FilesMode
from testkit.fakeindex import FakeIndex

from .helpers import call, fault_of, rpc_for, served
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


def _upstream_json(fake: FakeIndex, path: str) -> dict[str, Any]:
    with TestClient(fake, base_url="https://upstream.test") as upstream:
        document: dict[str, Any] = upstream.get(path).json()
    return document


@pytest.mark.parametrize("depth", range(900, 1010, 10))
def test_json_nested_near_the_parsers_limit_is_served_or_a_502_never_a_crash(depth: int) -> None:
    # Parsed where it is fetched, then again where its file URLs are rewritten, deeper in the stack.
    fake = FakeIndex()
    body = json.dumps({**_upstream_json(fake, "/pypi/roundup/json"), "deep": []}).encode()
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


# A field of the wrong type: malformed data (-32403), never an application error


def _every_file(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [*document["urls"], *(f for files in document["releases"].values() for f in files)]


def _set_info(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda document: document["info"].__setitem__(key, value)


def _set_files(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        for file in _every_file(document):
            file[key] = value

    return mutate


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda document: document.__setitem__(key, value)


def _set_roles(value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda document: document["ownership"].__setitem__("roles", value)


RELEASE_DATA = [("release_data", ("roundup", "1.6.1"))]
RELEASE_URLS = [("release_urls", ("roundup", "1.6.0")), ("release_urls", ("roundup", "1.6.1"))]
RELEASES = [("package_releases", ("roundup", True)), *RELEASE_URLS, ("release_data", ("roundup", "1.6.0"))]
ROLES = [("package_roles", ("roundup",))]
YANKED = [("package_releases", ("roundup",))]

WRONG_TYPES = [
    *(
        pytest.param(_set_info(key, value), RELEASE_DATA, id=f"info.{key} {type(value).__name__}")
        for key, value in [
            ("summary", ["a", "list"]),
            ("description", {"an": "object"}),
            ("home_page", 1),
            ("download_url", True),
            ("docs_url", ["x"]),
            ("package_url", 2),
            ("release_url", {}),
            ("author", ["x"]),
            ("author_email", 3),
            ("maintainer", {}),
            ("maintainer_email", False),
            ("license", ["MIT"]),
            ("keywords", ["a", "b"]),
            ("platform", ["any"]),
            ("requires_python", 3.8),
            ("classifiers", "Programming Language :: Python"),
            ("classifiers", [1, 2]),
            ("requires_dist", "requests"),
            ("requires_dist", [None]),
            ("project_urls", ["https://x.test/"]),
            ("project_urls", {"Docs": 1}),
            ("name", ["roundup"]),
            ("version", 1.61),
        ]
    ),
    pytest.param(_set_info("yanked", "yes"), YANKED, id="info.yanked str"),
    pytest.param(_set_info("yanked", 1), YANKED, id="info.yanked int"),
    pytest.param(_set("info", ["roundup"]), RELEASES, id="info list"),
    *(
        pytest.param(_set_files(key, value), RELEASE_URLS, id=f"file.{key} {type(value).__name__}")
        for key, value in [
            ("url", 123),
            ("url", None),
            ("url", ["https://files.upstream.test/packages/x"]),
            ("filename", None),
            ("packagetype", ["sdist"]),
            ("python_version", 3),
            ("size", "2893499"),
            ("size", True),
            ("md5_digest", ["x"]),
            ("digests", "sha256"),
            ("digests", {"sha256": 1}),
            ("has_sig", "no"),
            ("upload_time", 1531481436),
            ("upload_time_iso_8601", ["2018"]),
            ("comment_text", {}),
            ("requires_python", 3),
            ("yanked", "no"),
            ("core-metadata", "yes"),
            ("data-dist-info-metadata", 1),
        ]
    ),
    pytest.param(_set_files("url", 123), RELEASE_DATA, id="file.url int, release_data"),
    pytest.param(_set("releases", []), RELEASES, id="releases list"),
    pytest.param(_set("releases", {"1.6.0": {"filename": "x"}, "1.6.1": "x"}), RELEASES, id="releases values"),
    pytest.param(_set("releases", {"1.6.0": ["x"], "1.6.1": [1]}), RELEASES, id="releases files"),
    pytest.param(_set("urls", {"filename": "x"}), [("release_urls", ("roundup", "1.6.1"))], id="urls object"),
    pytest.param(_set("urls", [None]), [("release_urls", ("roundup", "1.6.1"))], id="urls entries"),
    pytest.param(_set("ownership", ["Owner", "richard"]), ROLES, id="ownership list"),
    pytest.param(_set_roles("richard"), ROLES, id="roles str"),
    pytest.param(_set_roles(["richard"]), ROLES, id="roles entries str"),
    pytest.param(_set_roles([["Owner", "richard"]]), ROLES, id="roles entries list"),
    pytest.param(_set_roles([{"role": "Owner"}]), ROLES, id="roles entry without user"),
    pytest.param(_set_roles([{"role": "Owner", "user": 7}]), ROLES, id="roles entry user int"),
    pytest.param(_set_roles([{"role": None, "user": "richard"}]), ROLES, id="roles entry role null"),
]


@pytest.mark.parametrize(("mutate", "calls"), WRONG_TYPES)
def test_a_field_of_the_wrong_type_is_service_unavailable(
    mutate: Callable[[dict[str, Any]], None], calls: list[tuple[str, tuple[Any, ...]]]
) -> None:
    fake = FakeIndex()
    document = _upstream_json(fake, "/pypi/roundup/json")
    mutate(document)
    body = json.dumps(document).encode()
    with served(fake, Tampered(fake, "/pypi/roundup/json", body, times=EVERY_TIME), upstream_retries=0) as client:
        rpc = rpc_for(client)
        for method, params in calls:
            assert (method, fault_of(rpc, method, *params)) == (method, UNAVAILABLE)


@pytest.mark.parametrize(
    "mutate",
    [
        _set_info("summary", ["a", "list"]),
        _set_info("classifiers", "Programming Language :: Python"),
        _set_info("project_urls", [1]),
        _set_info("author", 1),
        _set("info", None),
    ],
    ids=["summary list", "classifiers str", "project_urls list", "author int", "info null"],
)
def test_a_field_of_the_wrong_type_in_a_release_document_is_service_unavailable(
    mutate: Callable[[dict[str, Any]], None],
) -> None:
    fake = FakeIndex()
    document = _upstream_json(fake, "/pypi/roundup/1.6.0/json")
    mutate(document)
    path, body = "/pypi/roundup/1.6.0/json", json.dumps(document).encode()
    with served(fake, Tampered(fake, path, body, times=EVERY_TIME), upstream_retries=0) as client:
        assert fault_of(rpc_for(client), "release_data", "roundup", "1.6.0") == UNAVAILABLE
        assert call(client, "release_data", "roundup", "1.6.1")["version"] == "1.6.1"  # its project is intact


def test_untampered_documents_answer_every_call_the_wrong_type_cases_make() -> None:
    with served(FakeIndex()) as client:
        for method, params in [*RELEASES, *RELEASE_DATA, *ROLES, *YANKED]:
            call(client, method, *params)
