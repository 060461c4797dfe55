"""A check against a real index, skipped unless SHIM_LIVE_UPSTREAM names one.

    SHIM_LIVE_UPSTREAM=<index base URL> .venv/bin/python -m pytest -m live tests/test_live.py

The service runs in a child process (which may reach the network); this process only talks to it on
127.0.0.1. It asks about projects this one depends on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from testkit.servers import free_port, wait_until_answering

LIVE_UPSTREAM = os.environ.get("SHIM_LIVE_UPSTREAM", "")

pytestmark = [
    pytest.mark.live,
    pytest.mark.e2e,
    pytest.mark.skipif(not LIVE_UPSTREAM, reason="set SHIM_LIVE_UPSTREAM to check against a real index"),
]


@pytest.fixture(scope="module")
def live() -> Iterator[xmlrpc.client.ServerProxy]:
    port = free_port()
    environ = {**os.environ, "SHIM_UPSTREAM": LIVE_UPSTREAM, "SHIM_PORT": str(port), "SHIM_FILES": "proxy"}
    server = subprocess.Popen([sys.executable, "-m", "shim"], env=environ)
    proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/pypi", allow_none=True)
    try:
        assert wait_until_answering(f"http://127.0.0.1:{port}", server, timeout=60), "the service did not start"
        yield proxy
    finally:
        proxy("close")()
        server.terminate()
        server.wait(timeout=10)


def test_release_methods_against_the_live_index(live: xmlrpc.client.ServerProxy) -> None:
    (latest,) = cast(list[str], live.package_releases("httpx"))
    everything = cast(list[str], live.package_releases("httpx", True))
    assert latest in everything and "0.28.1" in everything
    files = cast(list[dict[str, Any]], live.release_urls("httpx", "0.28.1"))
    assert {f["filename"] for f in files} >= {"httpx-0.28.1.tar.gz", "httpx-0.28.1-py3-none-any.whl"}
    assert all(len(f) == 14 and f["url"].endswith(f["path"]) for f in files)
    data = cast(dict[str, Any], live.release_data("defusedxml", "0.7.1"))
    assert (data["name"], data["version"], len(data)) == ("defusedxml", "0.7.1", 33)
    assert live.release_data("defusedxml", "0.7") == {}
    assert ["Owner", "tiran"] in cast(list[list[str]], live.package_roles("defusedxml"))
    assert "starlette" in cast(list[str], live.list_packages())


def test_pip_downloads_through_the_service_from_the_live_index(live: xmlrpc.client.ServerProxy, tmp_path: Path) -> None:
    base = live._ServerProxy__host
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    environ["PIP_CONFIG_FILE"] = os.devnull
    done = subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
            "--index-url", f"http://{base}/simple/", "--dest", str(tmp_path), "defusedxml==0.7.1",
        ],
        env=environ, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"http://{base}/packages/" in done.stdout  # the file came through the service
    assert [p.name for p in tmp_path.iterdir()] == ["defusedxml-0.7.1-py2.py3-none-any.whl"]
