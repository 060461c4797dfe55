"""Project names and versions crafted to make the service reach other URLs: each is an unknown project or release,
answered without asking the upstream for anything but the documented shapes."""

from __future__ import annotations

import re

import pytest

from testkit.fakeindex import FakeIndex

from .helpers import Rpc, upstream_paths

# Names and versions built to reach other URLs


CRAFTED_NAMES = [
    "../../etc/passwd",
    "roundup/../../simple",
    "roundup%2F..%2Fx",
    "roundup?x=1",
    "roundup#frag",
    "user@evil.test",
    "https://evil.test/pypi/x/json",
    "//evil.test/x",
    "round up",
    "roundup\r\nHost: evil.test",
    "roundup\u202e",  # XML cannot carry NUL at all; a right-to-left override it can
    "ｒｏｕｎｄｕｐ",
    "",
    "-roundup",
    "a" * 500,
]


@pytest.mark.parametrize("name", CRAFTED_NAMES)
def test_crafted_names_are_unknown_projects_and_reach_nothing(rpc: Rpc, fake_index: FakeIndex, name: str) -> None:
    assert rpc("package_releases", name) == []
    assert rpc("package_releases", name, True) == []
    assert rpc("release_urls", name, "1.0") == []
    assert rpc("release_data", name, "1.0") == {}
    assert rpc("package_roles", name) == []
    assert upstream_paths(fake_index) == []


CRAFTED_VERSIONS = [
    "..",
    ".",
    "../../simple",
    "1.6.0/../../x",
    "1.6.0%2F..",
    "1.6.0?x",
    "1.6.0#x",
    "https://evil.test/",
]


@pytest.mark.parametrize("version", CRAFTED_VERSIONS)
def test_crafted_versions_reach_nothing(rpc: Rpc, fake_index: FakeIndex, version: str) -> None:
    assert rpc("release_urls", "roundup", version) == []
    assert rpc("release_data", "roundup", version) == {}
    assert upstream_paths(fake_index) == ["/pypi/roundup/json"]


@pytest.mark.heavy  # the whole crafted corpus: a second or more
def test_every_upstream_request_has_a_documented_shape(rpc: Rpc, fake_index: FakeIndex) -> None:
    for name in ("roundup", "oddversions", "nofiles", "Zope.Interface_Demo", *CRAFTED_NAMES):
        for version in ("1.0", "0.1", "2004d", "1.0-beta", *CRAFTED_VERSIONS):
            rpc("release_data", name, version)
            rpc("release_urls", name, version)
    allowed = (
        r"/simple/",
        r"/pypi/[a-z0-9-]+/json",
        r"/pypi/[a-z0-9-]+/[A-Za-z0-9.!+_-]+/json",
        r"/packages/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{60}/[A-Za-z0-9._-]+\.whl\.metadata",
    )
    assert fake_index.requests
    for request in fake_index.requests:
        assert request.host in ("upstream.test", "files.upstream.test")
        assert any(re.fullmatch(pattern, request.path) for pattern in allowed), request.path
