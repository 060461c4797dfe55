"""Answers on the wire are compressed as the client's Accept-Encoding asks (gzip, x-gzip, deflate as zlib, q-values,
`*`), at or past SHIM_COMPRESS_MIN_BYTES; smaller ones, and every answer with compression off, go as they are."""

from __future__ import annotations

import gzip
import xmlrpc.client
import zlib
from collections.abc import Callable, Iterator

import pytest
from starlette.testclient import TestClient

from shim.config.settings import Settings, SettingsError
from testkit.fakeindex import FakeIndex

from .helpers import raw_post, served, value_of

RELEASE_DATA = xmlrpc.client.dumps(("roundup", "1.6.0"), methodname="release_data").encode()  # about 3 kB
SMALL = xmlrpc.client.dumps(("roundup",), methodname="package_hosting_mode").encode()  # under 1 kB
XML = {"Content-Type": "text/xml"}

DECODERS: dict[str | None, Callable[[bytes], bytes]] = {
    None: lambda body: body,
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,  # HTTP's "deflate" is the zlib format (RFC 9110 8.4.1.2), not raw deflate
}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with served(FakeIndex()) as client:
        yield client


@pytest.fixture(scope="module")
def eager() -> Iterator[TestClient]:
    """A client of a service that compresses every answer (SHIM_COMPRESS_MIN_BYTES=0)."""
    with served(FakeIndex(), compress_min_bytes=0) as client:
        yield client


def identity_answer(client: TestClient, body: bytes) -> bytes:
    answer: bytes = raw_post(client, body, None).raw_bytes
    return answer


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        (None, None),  # no Accept-Encoding: identity, as every server answers it
        ("", None),  # an empty one allows identity only
        ("identity", None),
        ("gzip", "gzip"),
        ("x-gzip", "gzip"),
        ("GZIP;Q=1.0", "gzip"),
        ("deflate", "deflate"),
        ("gzip, deflate", "gzip"),
        ("deflate, gzip", "gzip"),  # equal q: gzip is preferred
        ("deflate;q=1, gzip;q=0.5", "deflate"),
        ("gzip;q=0", None),  # q=0 refuses a coding
        ("gzip;q=0, deflate", "deflate"),
        ("*", "gzip"),
        ("*;q=0.5, gzip;q=0", "deflate"),
        ("identity;q=1, gzip;q=0.5", None),  # the client prefers identity
        ("br, zstd", None),  # codings the service does not write
        ("gzip;q=bogus", None),  # an unreadable q is no consent
        # Nothing acceptable at all: identity, the one body every client reads (RFC 9110 12.5.3 allows it).
        ("*;q=0, identity;q=0", None),
    ],
)
def test_answers_are_encoded_as_the_client_accepts(client: TestClient, accept: str | None, coding: str | None) -> None:
    plain = identity_answer(client, RELEASE_DATA)
    response = raw_post(client, RELEASE_DATA, accept)
    assert response.status_code == 200
    assert response.headers.get("content-encoding") == coding
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.headers["content-length"] == str(len(response.raw_bytes))
    assert DECODERS[coding](response.raw_bytes) == plain
    if coding is not None:
        assert len(response.raw_bytes) < len(plain) / 3
    assert value_of(plain)["name"] == "roundup"


def test_answers_below_the_threshold_stay_uncompressed(client: TestClient) -> None:
    response = raw_post(client, SMALL, "gzip")
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"
    assert value_of(response.raw_bytes) == "pypi-only"


def test_a_threshold_of_zero_compresses_every_answer(eager: TestClient) -> None:
    response = raw_post(eager, SMALL, "gzip")
    assert response.headers["content-encoding"] == "gzip"
    assert value_of(gzip.decompress(response.raw_bytes)) == "pypi-only"


def test_compression_off_sends_every_answer_as_it_is() -> None:
    with served(FakeIndex(), compress_min_bytes=None) as client:
        response = raw_post(client, RELEASE_DATA, "gzip, deflate")
    assert "content-encoding" not in response.headers and "vary" not in response.headers
    assert value_of(response.raw_bytes)["name"] == "roundup"


def test_faults_are_answers_like_any_other(eager: TestClient) -> None:
    response = raw_post(eager, b"<methodCall>", "deflate")
    assert response.headers["content-encoding"] == "deflate"
    with pytest.raises(xmlrpc.client.Fault) as caught:
        xmlrpc.client.loads(zlib.decompress(response.raw_bytes))
    assert caught.value.faultCode == -32700


@pytest.mark.parametrize(("text", "value"), [("1400", 1400), ("0", 0), ("off", None), ("OFF", None), ("64_000", 64000)])
def test_the_threshold_setting_reads_a_size_or_off(text: str, value: int | None) -> None:
    settings = Settings.load({"SHIM_UPSTREAM": "https://upstream.test/", "SHIM_COMPRESS_MIN_BYTES": text})
    assert settings.compress_min_bytes == value


@pytest.mark.parametrize("text", ["-1", "lots", "1.5"])
def test_a_bad_threshold_names_the_setting_and_the_value(text: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load({"SHIM_UPSTREAM": "https://upstream.test/", "SHIM_COMPRESS_MIN_BYTES": text})
    assert "SHIM_COMPRESS_MIN_BYTES" in str(caught.value) and text in str(caught.value)
