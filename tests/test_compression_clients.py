"""Real clients read the compressed answers, over a real socket, from the service as its command serves it
(the connection guards, answers sent in chunks): xmlrpc.client (which asks for gzip), pip's own XML-RPC transport
(requests: gzip, deflate) and httpx with each coding."""

from __future__ import annotations

import gzip
import xmlrpc.client
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shim.app import create_app
from shim.web.server import guarded_config
from testkit.fakeindex import FakeIndex
from testkit.fakeindex.state import IndexState, Project
from testkit.servers import serving_config

from .helpers import make_settings

pytestmark = pytest.mark.e2e

COUNT = 20_000  # a whole-index answer of about 1.5 MB: many chunks, compressed or not
EXPECTED = {f"project-{i:06d}": i + 1 for i in range(COUNT)}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    fake = FakeIndex(IndexState(Project(name, last_serial=serial, created=None) for name, serial in EXPECTED.items()))
    settings = make_settings()
    app = create_app(settings, transport=httpx.ASGITransport(app=fake))
    config = guarded_config(app, settings, access_log=False, log_level="warning")
    with serving_config(config) as served:
        yield served.url + "/pypi"


class Recording(xmlrpc.client.Transport):
    """The stdlib's transport, noting the Content-Encoding of each answer it reads."""

    codings: list[str | None]

    def parse_response(self, response: Any) -> Any:
        self.codings.append(response.getheader("content-encoding"))
        return super().parse_response(response)


def test_server_proxy_reads_gzipped_whole_index_answers(url: str) -> None:
    transport = Recording()
    transport.codings = []
    with xmlrpc.client.ServerProxy(url, transport=transport) as proxy:
        assert proxy.list_packages_with_serial() == EXPECTED
        assert proxy.list_packages() == list(EXPECTED)
        assert proxy.package_hosting_mode("project-000001") == "pypi-only"
    assert transport.codings == ["gzip", "gzip", None]  # the last answer is under SHIM_COMPRESS_MIN_BYTES


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pip's vendored libraries import pkg_resources
def test_pips_xmlrpc_transport_reads_them(url: str) -> None:
    from pip._internal.network.session import PipSession
    from pip._internal.network.xmlrpc import PipXmlrpcTransport

    codings: list[str | None] = []

    class PipRecording(PipXmlrpcTransport):
        def parse_response(self, response: Any) -> Any:
            codings.append(response.getheader("content-encoding"))
            return super().parse_response(response)

    # pip's session asks for "gzip, deflate" and hands the raw stream to xmlrpc.client, which undoes gzip only:
    # the reason gzip wins at equal q.
    with PipSession() as session:
        proxy = xmlrpc.client.ServerProxy(url, transport=PipRecording(url, session))
        assert proxy.list_packages_with_serial() == EXPECTED
    assert codings == ["gzip"]


@pytest.mark.parametrize(
    ("accept", "coding"), [(None, None), ("identity", None), ("gzip", "gzip"), ("deflate", "deflate")]
)
def test_httpx_reads_each_coding(url: str, accept: str | None, coding: str | None) -> None:
    body = xmlrpc.client.dumps((), methodname="list_packages_with_serial").encode()
    with httpx.Client() as client:
        if accept is None:
            del client.headers["accept-encoding"]
        else:
            client.headers["accept-encoding"] = accept
        with client.stream("POST", url, content=body, headers={"Content-Type": "text/xml"}) as response:
            raw = b"".join(response.iter_raw())
    assert response.headers.get("content-encoding") == coding
    assert response.headers["content-length"] == str(len(raw))
    if coding == "gzip":
        raw = gzip.decompress(raw)
    elif coding == "deflate":
        raw = zlib.decompress(raw)  # the zlib format, as HTTP's "deflate" means
    assert xmlrpc.client.loads(raw)[0][0] == EXPECTED
