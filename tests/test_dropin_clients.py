"""Real clients that read more than XML-RPC from one base URL, pointed at the service on 127.0.0.1:
qypi (JSON and XML-RPC from `<service>/pypi`), vanity (the project page `/pypi/<name>/`, then XML-RPC multicalls
or the JSON API) and pip (`pip download --index-url <service>/simple/`)."""

from __future__ import annotations

import http.client
import json
import locale
import logging
import os
import subprocess
import sys
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from shim.app import create_app
from shim.modes import FilesMode
from shim.upstream.urls import UpstreamURL
from testkit.fakeindex import FakeIndex
from testkit.servers import serve_in_thread
from testkit.wheels import add_wheel

from .helpers import client_leaks_collected, make_settings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=[FilesMode.DIRECT, FilesMode.PROXY], ids=["direct", "proxy"])
def service(request: pytest.FixtureRequest) -> Iterator[tuple[str, FakeIndex, bytes]]:
    """The fake index and the service, both served on 127.0.0.1."""
    fake = FakeIndex()
    wheel = add_wheel(fake, "demo-pkg", "1.0")
    with serve_in_thread(fake) as index_url:
        fake.set_urls(index_url + "/")
        settings = make_settings(upstream=UpstreamURL.parse(index_url + "/"), files=request.param)
        with serve_in_thread(create_app(settings), lifespan="on") as shim_url:
            yield shim_url, fake, wheel


def qypi(shim_url: str, *args: str) -> Any:
    from qypi.__main__ import qypi as command

    with client_leaks_collected():
        result = CliRunner().invoke(command, ["--index-url", shim_url + "/pypi", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_qypi_releases_reads_the_json_api_through_the_service(service: tuple[str, FakeIndex, bytes]) -> None:
    shim_url, _, _ = service
    answer = qypi(shim_url, "releases", "roundup")
    assert [r["version"] for r in answer["roundup"]] == ["1.5.1", "1.6.0", "1.6.1"]
    # A non-normalised name is redirected by the service, and qypi follows.
    assert [r["version"] for r in qypi(shim_url, "releases", "Zope.Interface_Demo")["Zope.Interface_Demo"]] == ["4.0"]


def test_qypi_owner_reads_package_roles(service: tuple[str, FakeIndex, bytes]) -> None:
    shim_url, _, _ = service
    assert qypi(shim_url, "owner", "roundup") == {
        "roundup": [{"role": "Owner", "user": "richard"}, {"role": "Maintainer", "user": "rouilj"}]
    }


def test_qypi_list_reads_list_packages(service: tuple[str, FakeIndex, bytes]) -> None:
    shim_url, fake, _ = service
    from qypi.__main__ import qypi as command

    with client_leaks_collected():
        result = CliRunner().invoke(command, ["--index-url", shim_url + "/pypi", "list"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(result.output.split()) == sorted(p.name for p in fake.state.projects.values())


@pytest.fixture
def vanity_at(service: tuple[str, FakeIndex, bytes], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """vanity, its index constants pointed at the service: it hard-codes the public index's host (and HTTPS) for
    its existence check, and builds its XML-RPC proxy and JSON URL from it at import."""
    shim_url, _, _ = service
    saved = locale.setlocale(locale.LC_ALL)
    import vanity

    locale.setlocale(locale.LC_ALL, saved)  # vanity sets en_US at import, for the whole process: not past it
    if not hasattr(locale, "format"):  # removed in Python 3.12; vanity 2.2.2 formats every count with it
        monkeypatch.setattr(locale, "format", locale.format_string, raising=False)
    monkeypatch.setattr(vanity, "HTTPSConnection", http.client.HTTPConnection)
    monkeypatch.setattr(vanity, "PYPI_HOST", shim_url.removeprefix("http://"))
    monkeypatch.setattr(vanity, "PYPI_URL", shim_url + "/pypi")
    monkeypatch.setattr(vanity, "PYPI_JSON", shim_url + "/pypi/%s/json")
    with xmlrpc.client.ServerProxy(shim_url + "/pypi") as proxy:  # closed after the test: it keeps its connection
        monkeypatch.setattr(vanity, "PYPI_XML", proxy)
        yield vanity


def run_vanity(vanity: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, *args: str) -> list[str]:
    """`vanity ARGS`: the lines it logs (its output)."""
    monkeypatch.setattr(sys, "argv", ["vanity", *args])
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="vanity"), client_leaks_collected():
        vanity.vanity()
    return [line for record in caplog.records if record.name == "vanity" for line in record.getMessage().splitlines()]


def test_vanity_counts_through_the_project_page_and_the_json_api(
    vanity_at: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Another spelling is a 301 whose Location ends in the normalised name, which vanity takes as the project's.
    lines = run_vanity(vanity_at, monkeypatch, caplog, "--json", "Zope.Interface_Demo", "Roundup")
    assert lines[:10] == [
        "Zope.Interface_Demo-4.0.tar.gz    2023-01-01           -1",
        "---------------------------------------------------------",
        "zope-interface-demo has been downloaded -1 times!",
        "roundup-1.6.1.tar.gz    2019-07-12           -1",
        "roundup-1.6.0.tar.gz    2018-07-13           -1",
        "roundup-1.5.1.tar.gz    2016-01-11           -1",
        "-----------------------------------------------",
        "roundup has been downloaded -3 times!",  # no index has counted downloads since 2016: -1 each, as PyPI
        "zope-interface-demo and roundup have been downloaded -4 times!",
        "",
    ]


def test_vanity_refuses_a_project_the_index_does_not_list(
    vanity_at: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        run_vanity(vanity_at, monkeypatch, caplog, "no-such-project")
    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith("vanity: error: No such module or package 'no-such-project'\n")


def test_vanitys_xmlrpc_multicalls_are_answered(vanity_at: Any) -> None:
    # Without --json vanity multicalls package_releases(name, True), then release_urls and release_data per
    # version. They answer as Warehouse did: `upload_time` an ISO string, which vanity (written for the
    # cheeseshop's dateTime) then fails to read with `.timetuple()`, as it failed against Warehouse.
    with client_leaks_collected():
        answers = [(data["version"], urls) for urls, data in vanity_at.get_release_info(["roundup"])]
    assert [
        (version, [(u["filename"], u["downloads"], u["upload_time"]) for u in urls]) for version, urls in answers
    ] == [
        ("1.6.1", [("roundup-1.6.1.tar.gz", -1, "2019-07-12T08:00:10Z")]),
        ("1.6.0", [("roundup-1.6.0.tar.gz", -1, "2018-07-13T11:30:36.405653Z")]),
        ("1.5.1", [("roundup-1.5.1.tar.gz", -1, "2016-01-11T09:00:05.123456Z")]),
    ]


def test_pip_downloads_through_the_services_simple_api(service: tuple[str, FakeIndex, bytes], tmp_path: Path) -> None:
    shim_url, fake, wheel = service
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    # pip's configuration on this machine (extra indexes, find-links, constraints) must not take part.
    environ["PIP_CONFIG_FILE"] = os.devnull
    done = subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
            "--index-url", shim_url + "/simple/", "--dest", str(tmp_path), "demo-pkg==1.0",
        ],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (downloaded,) = tmp_path.iterdir()
    assert downloaded.name == "demo_pkg-1.0-py3-none-any.whl" and downloaded.read_bytes() == wheel
    # pip read the Simple page through the service (and, when proxied, the file too).
    file_requests = [r for r in fake.requests if r.path.endswith(".whl")]
    assert file_requests, "the file came from the fake index's files host"
