"""URLs named by upstream content, and what the service fetches from them: a file's core metadata only from the
upstream's own origin or its files host, and only at a file's path; the file proxy only from that files host."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shim.modes import FilesMode
from shim.upstream.urls import UpstreamURL
from testkit.fakeindex import FakeIndex
from testkit.wheels import wheel_file

from .helpers import call, served
from .transports import Tampered

FILES = "https://files.upstream.test/"
METADATA = "Metadata-Version: 1.2\nName: meta-demo\nVersion: {version}\nRequires: os.path\n"
WHEEL = "meta_demo-{version}-py3-none-any.whl"


def _with_metadata(fake: FakeIndex, version: str, url: str | None = None) -> None:
    """A release of meta-demo whose one wheel offers core metadata, at `url` (else the files host's path)."""
    record: dict[str, Any] = {
        **wheel_file("meta-demo", version),
        "core_metadata_sha256": "4" * 64,
        "metadata": METADATA.format(version=version),
    }
    if url is not None:
        record["url"] = url.format(wheel=WHEEL.format(version=version))
    fake.add_release("meta-demo", version, info={"summary": "Demo"}, files=[record])


def _fetched(fake: FakeIndex) -> list[tuple[str, str]]:
    return [(r.host, r.path) for r in fake.requests if r.path != "/simple/" and not r.path.startswith("/pypi/")]


HOSTILE = [
    "http://127.0.0.2/packages/aa/bb/{wheel}",
    "http://169.254.169.254/packages/latest/{wheel}",
    "//127.0.0.2/packages/aa/{wheel}",
    "http://2130706433/packages/aa/{wheel}",
    "/admin/token?x=1",
    "https://upstream.test/admin/{wheel}",
    "https://upstream.test/packages/aa/{wheel}?x=1",
    "https://upstream.test/packages/aa/{wheel}#x",
    "https://upstream.test/packages/../admin/{wheel}",
    "https://upstream.test/packages/%2e%2e/admin/{wheel}",
    "https://upstream.test/packages/aa%2F..%2F..%2Fadmin/{wheel}",
    "https://upstream.test/packages/",
    "https://user:pw@upstream.test/packages/aa/{wheel}",
    "file:///etc/packages/{wheel}",
    "ftp://upstream.test/packages/aa/{wheel}",
]


@pytest.mark.parametrize("url", HOSTILE)
def test_core_metadata_is_never_fetched_from_where_a_document_points_elsewhere(url: str) -> None:
    fake = FakeIndex()
    _with_metadata(fake, "1.0", url)
    with served(fake) as client:
        data = call(client, "release_data", "meta-demo", "1.0")
    assert (data["version"], data["summary"], data["requires"]) == ("1.0", "Demo", [])  # from the JSON alone
    assert _fetched(fake) == []


def test_credentials_never_reach_another_path_of_the_upstream() -> None:
    fake = FakeIndex()
    _with_metadata(fake, "1.0", "/admin/token?x=1")
    upstream = UpstreamURL.parse("https://reader:s3cret@upstream.test/")
    with served(fake, upstream=upstream) as client:
        assert call(client, "release_data", "meta-demo", "1.0")["requires"] == []
    assert not [r for r in fake.requests if not r.path.startswith(("/simple/", "/pypi/"))]


@pytest.mark.parametrize(
    ("url", "host"),
    [
        (None, "files.upstream.test"),  # the files host the documents name
        ("../../packages/aa/bb/{wheel}", "upstream.test"),  # relative, as mirrors serve: the upstream's own
        ("https://UPSTREAM.test/packages/aa/{wheel}", "upstream.test"),
    ],
    ids=["files host", "relative", "upstream origin"],
)
def test_core_metadata_still_comes_from_the_upstreams_files(url: str | None, host: str) -> None:
    fake = FakeIndex()
    _with_metadata(fake, "1.0", url)
    with served(fake) as client:
        assert call(client, "release_data", "meta-demo", "1.0")["requires"] == ["os.path"]
    assert [(h, p.endswith(".whl.metadata")) for h, p in _fetched(fake)] == [(host, True)]


@pytest.mark.parametrize("other", ["https://evil.test/", "https://upstream.test:8443/", "http://files.upstream.test/"])
def test_once_the_files_host_is_known_another_host_is_never_asked(other: str) -> None:
    fake = FakeIndex()
    _with_metadata(fake, "1.0")
    _with_metadata(fake, "2.0", other + "packages/aa/{wheel}")
    with served(fake) as client:
        assert call(client, "release_data", "meta-demo", "1.0")["requires"] == ["os.path"]  # learns the files host
        assert call(client, "release_data", "meta-demo", "2.0")["requires"] == []
    assert {host for host, _ in _fetched(fake)} == {"files.upstream.test"}


def test_a_configured_files_host_is_the_only_one_besides_the_upstream() -> None:
    fake = FakeIndex()
    _with_metadata(fake, "1.0", "https://evil.test/packages/aa/{wheel}")
    _with_metadata(fake, "2.0")
    with served(fake, files_upstream=UpstreamURL.parse(FILES)) as client:
        assert call(client, "release_data", "meta-demo", "1.0")["requires"] == []  # first, yet not learnt
        assert call(client, "release_data", "meta-demo", "2.0")["requires"] == ["os.path"]
    assert {host for host, _ in _fetched(fake)} == {"files.upstream.test"}


INTERNAL = ["127.0.0.2", "169.254.169.254", "10.0.0.1", "[::1]", "[::ffff:127.0.0.1]"]
INTERNAL += ["2130706433", "127.1", "0x7f000001", "localhost", "localhost.", "api.localhost"]


@pytest.mark.parametrize("host", INTERNAL)
def test_the_file_proxy_never_learns_an_internal_address_as_its_files_host(host: str) -> None:
    fake = FakeIndex()
    with served(fake) as plain:
        document = json.loads(plain.get("/pypi/roundup/json").content)
    for file in [*document["urls"], *(file for files in document["releases"].values() for file in files)]:
        file["url"] = f"http://{host}/packages/aa/{file['filename']}"
    body = json.dumps(document).encode()
    fake.requests.clear()
    with served(fake, Tampered(fake, "/pypi/roundup/json", body, times=1_000_000), files=FilesMode.PROXY) as client:
        assert client.get("/pypi/roundup/json").status_code == 200  # the document, its file URLs untouched
        assert client.get("/packages/aa/roundup-1.6.0.tar.gz").status_code == 404
    assert _fetched(fake) == []


def test_a_file_without_a_url_has_no_core_metadata_to_fetch() -> None:
    fake = FakeIndex()
    _with_metadata(fake, "1.0")
    with served(fake) as plain:
        document = json.loads(plain.get("/pypi/meta-demo/json").content)
    del document["urls"][0]["url"]
    del document["releases"]["1.0"][0]["url"]
    fake.requests.clear()
    with served(fake, Tampered(fake, "/pypi/meta-demo/json", json.dumps(document).encode(), times=10)) as client:
        assert call(client, "release_data", "meta-demo", "1.0")["requires"] == []
    assert _fetched(fake) == []
