"""Real clients that read more than XML-RPC from one base URL, pointed at the service on 127.0.0.1:
qypi (JSON and XML-RPC from `<service>/pypi`) and pip (`pip download --index-url <service>/simple/`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
