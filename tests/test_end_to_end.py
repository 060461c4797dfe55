"""The real stdlib client against the service served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterable, Iterator
from typing import Any, cast

import pytest

from shim.app import create_app
from shim.upstream.urls import UpstreamURL
from testkit.fakeindex import FakeIndex
from testkit.servers import free_port, serve_in_thread, wait_until_answering

from .helpers import client_leaks_collected, make_settings
from .seed import ROUNDUP_160_URLS

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve_in_thread(create_app(make_settings(body_timeout=1)), lifespan="on") as url:
        yield url


@pytest.mark.parametrize("path", ["", "/", "/pypi", "/pypi/", "/RPC2"])
def test_server_proxy_on_every_path(base_url: str, path: str) -> None:
    # ServerProxy("http://host:port") posts to /RPC2, as pip and most clients do with a bare host.
    with xmlrpc.client.ServerProxy(base_url + path, allow_none=True) as proxy:
        assert proxy.package_hosting_mode("roundup") == "pypi-only"
        with pytest.raises(xmlrpc.client.Fault) as caught:
            proxy.package_releases()
    assert caught.value.faultString == "client error; package_name: Missing required argument"


@pytest.mark.parametrize("path", ["/", "/pypi", "/pypi/", "/RPC2"])
def test_server_proxy_with_the_today_prefix(base_url: str, path: str) -> None:
    with xmlrpc.client.ServerProxy(base_url + "/today" + path) as proxy:
        with pytest.raises(xmlrpc.client.Fault) as caught:
            proxy.package_hosting_mode("roundup")
        assert (caught.value.faultCode, caught.value.faultString) == (
            -32601,
            "server error; requested method not found",
        )
        with pytest.raises(xmlrpc.client.Fault) as caught:
            proxy.list_packages()
    assert caught.value.faultString.startswith("RuntimeError: PyPI no longer supports the XMLRPC list_packages method.")


@pytest.mark.parametrize("path", ["/", "/pypi", "/pypi/", "/RPC2"])
def test_server_proxy_with_the_removed_prefix(base_url: str, path: str) -> None:
    with (
        xmlrpc.client.ServerProxy(base_url + "/removed" + path) as proxy,
        pytest.raises(xmlrpc.client.ProtocolError) as caught,
    ):
        proxy.package_hosting_mode("roundup")
    assert caught.value.errcode == 404


# Every endpoint path, with and without its trailing slash, under every prefix: xmlrpc.client follows no
# redirect (a 307 is a ProtocolError), so each form must answer itself.
FORMS = ["", "/", "/pypi", "/pypi/", "/RPC2", "/RPC2/"]
ANSWERS = {"": "pypi-only", "/restore": "pypi-only", "/today": -32601, "/removed": 404}


@pytest.mark.parametrize("prefix", list(ANSWERS))
@pytest.mark.parametrize("path", FORMS)
def test_every_endpoint_form_answers_without_a_redirect(base_url: str, prefix: str, path: str) -> None:
    expected = ANSWERS[prefix]
    with xmlrpc.client.ServerProxy(base_url + prefix + path) as proxy:
        try:
            answer: object = proxy.package_hosting_mode("roundup")
        except xmlrpc.client.Fault as fault:
            answer = fault.faultCode
        except xmlrpc.client.ProtocolError as error:
            answer = error.errcode
    assert answer == expected


def test_server_proxy_multicall(base_url: str) -> None:
    with xmlrpc.client.ServerProxy(base_url + "/pypi") as proxy:
        multi = xmlrpc.client.MultiCall(proxy)
        multi.package_hosting_mode("a")
        multi.system.methodSignature("release_urls")
        # MultiCallIterator iterates by __getitem__ (raising a sub-call's Fault), which typeshed does not model.
        assert list(cast(Iterable[Any], multi())) == ["pypi-only", [["array", "string", "string"]]]


def test_server_proxy_with_gzip_encoded_requests(base_url: str) -> None:
    transport = xmlrpc.client.Transport()
    transport.encode_threshold = 0  # gzip every request body
    with xmlrpc.client.ServerProxy(base_url + "/pypi", transport=transport) as proxy:
        assert proxy.package_hosting_mode("x" * 2000) == "pypi-only"


def test_a_client_that_stops_sending_its_body_is_cut_off(base_url: str) -> None:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /pypi HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 1000\r\n\r\n<methodCall>"
        )
        started = time.monotonic()
        answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 10  # ten times SHIM_BODY_TIMEOUT (1 s)


def _environ(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SHIM_", "PIP_INDEX"))}
    environ.update(extra)
    return environ


def test_uvicorn_factory_serves_the_app_with_settings_from_the_environment() -> None:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "shim.app:create_app", "--factory", "--port", str(port)]
    server = subprocess.Popen(
        command,
        env=_environ(SHIM_UPSTREAM="https://upstream.test/", SHIM_MODE="pypi-today"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert wait_until_answering(f"http://127.0.0.1:{port}", server, timeout=20), "uvicorn did not start"
        with (
            xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/pypi") as proxy,
            pytest.raises(xmlrpc.client.Fault) as caught,
        ):
            proxy.package_hosting_mode("x")
        assert caught.value.faultCode == -32601  # SHIM_MODE=pypi-today was read: the method is gone there
    finally:
        server.terminate()
        output = server.communicate(timeout=10)[0].decode()
    assert "answering XML-RPC from https://upstream.test/ in pypi-today mode" in output


def test_uvicorn_factory_with_a_bad_setting_stops_with_a_clear_message() -> None:
    command = [sys.executable, "-m", "uvicorn", "shim.app:create_app", "--factory", "--port", str(free_port())]
    done = subprocess.run(
        command,
        env=_environ(SHIM_UPSTREAM="https://upstream.test/", SHIM_MODE="tomorrow"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "SHIM_MODE has value 'tomorrow': must be one of restore, pypi-today, removed." in done.stderr


# The seed example over real sockets: the fake index and the service both on 127.0.0.1.


@pytest.fixture(scope="module")
def shim_over_served_index() -> Iterator[tuple[str, str]]:
    fake = FakeIndex()
    with serve_in_thread(fake) as index_url:
        fake.set_urls(index_url + "/")
        settings = make_settings(upstream=UpstreamURL.parse(index_url + "/"))
        with serve_in_thread(create_app(settings), lifespan="on") as shim_url:
            yield shim_url, index_url


# The seed example as test_release_methods pins it; only the file URL differs over real sockets.
SEED = {key: value for key, value in ROUNDUP_160_URLS[0].items() if key != "url"}


def test_server_proxy_gets_the_seed_example_end_to_end(shim_over_served_index: tuple[str, str]) -> None:
    shim_url, index_url = shim_over_served_index
    with xmlrpc.client.ServerProxy(shim_url + "/pypi", allow_none=True) as pypi:
        (file,) = cast(list[dict[str, Any]], pypi.release_urls("roundup", "1.6.0"))
        assert pypi.package_releases("roundup") == ["1.6.1"]
    assert {k: v for k, v in file.items() if k != "url"} == SEED
    assert file["url"] == f"{index_url}/files/packages/{SEED['path']}"


def test_stdeb_finds_the_seed_release_through_the_service(shim_over_served_index: tuple[str, str]) -> None:
    # stdeb's pypi-download logic: package_releases (all, then exactly one default), then release_urls,
    # over its own requests-based transport.
    shim_url, index_url = shim_over_served_index
    with client_leaks_collected():
        from stdeb.downloader import find_tar_gz

        url, md5 = find_tar_gz("roundup", pypi_url=shim_url + "/pypi", release="1.6.0")
        assert (url, md5) == (f"{index_url}/files/packages/{SEED['path']}", SEED["md5_digest"])
        url, md5 = find_tar_gz("Roundup", pypi_url=shim_url + "/pypi")  # the default release: exactly one
        assert url.endswith("/roundup-1.6.1.tar.gz") and md5
        with pytest.raises(ValueError, match=re.escape("your desired release '3.0' is not among available")):
            find_tar_gz("oddversions", pypi_url=shim_url + "/pypi", release="3.0")
