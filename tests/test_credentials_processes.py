"""Credentials, never shown by a process: `--help`, start-up errors and a real server's whole output (logs, pages,
faults) are searched for a known token, plain or URL-encoded."""

from __future__ import annotations

import subprocess
import sys
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from typing import cast

import httpx
import pytest

from shim import cli
from shim.upstream.urls import REDACTED
from shim.web.docs import settings_markdown
from testkit.servers import free_port, wait_until_answering
from testkit.shimprocess import stop

from .helpers import run_shim
from .tokens import REDACTED_FORM, TOKEN, assert_none_has_token, files_under, token_env

pytestmark = pytest.mark.e2e


def test_help_hides_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in token_env().items():
        monkeypatch.setenv(name, value)
    outputs: list[tuple[str, str]] = [
        ("build_parser().format_help()", cli.build_parser().format_help()),
        ("settings_markdown()", settings_markdown()),
    ]
    done = run_shim("--help", env=token_env())
    assert done.returncode == 0, done.stderr
    assert "--upstream" in done.stdout
    outputs += [("--help stdout", done.stdout), ("--help stderr", done.stderr)]
    assert_none_has_token(outputs)


def test_start_up_error_for_another_setting_hides_the_token(tmp_path: Path) -> None:
    done = run_shim(env=token_env(SHIM_PORT="nope"), cwd=tmp_path)
    assert done.returncode == 2
    assert "SHIM_PORT has value 'nope'" in done.stderr
    assert_none_has_token([("stdout", done.stdout), ("stderr", done.stderr), *files_under(tmp_path)])


def test_python_dash_m_shim_with_a_bad_upstream_exits_2_without_the_token(tmp_path: Path) -> None:
    done = run_shim(env=token_env(SHIM_UPSTREAM=f"ftp://deploy:{TOKEN}@x"), cwd=tmp_path)
    assert done.returncode == 2
    assert f"SHIM_UPSTREAM has value 'ftp://deploy:{REDACTED}@x'" in done.stderr
    assert_none_has_token([("stdout", done.stdout), ("stderr", done.stderr), *files_under(tmp_path)])


def test_a_real_server_never_shows_the_token(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    workdir = tmp_path / "cwd"
    logs.mkdir()
    workdir.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    outputs: list[tuple[str, str | bytes]] = []
    with (logs / "stdout").open("wb") as stdout, (logs / "stderr").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "shim", "--port", str(port), "--log-level", "debug"],
            env=token_env(),
            cwd=workdir,
            stdout=stdout,
            stderr=stderr,
        )
        try:
            assert wait_until_answering(base, process), f"no answer from /healthz (exit code {process.poll()})"
            with httpx.Client(trust_env=False, timeout=5.0) as http:
                for path in ("/", "/pypi/", "/today/", "/healthz"):
                    response = http.get(base + path)
                    assert response.status_code == 200, path
                    outputs.append((f"GET {path}", str(response.headers) + response.text))
                unparsable = http.post(base + "/pypi", content=b"<not xml", headers={"Content-Type": "text/xml"})
                outputs.append(("unparsable body", unparsable.text))
            with xmlrpc.client.ServerProxy(base + "/pypi") as proxy:
                methods = cast(list[str], proxy.system.listMethods())
                assert "package_releases" in methods
                outputs.append(("system.listMethods", repr(methods)))
                call: Callable[[], object]
                for call in (lambda: proxy.list_packages(), lambda: proxy.package_releases(1)):
                    with pytest.raises(xmlrpc.client.Fault) as caught:
                        call()
                    outputs.append(("fault on /pypi", caught.value.faultString))
            with xmlrpc.client.ServerProxy(base + "/today/pypi") as proxy:
                with pytest.raises(xmlrpc.client.Fault) as caught:
                    proxy.search({"name": "x"})
                assert "https://upstream.test/search" in caught.value.faultString
                outputs.append(("fault of search on /today/pypi", caught.value.faultString))
        finally:
            stop(process)
    output = (logs / "stdout").read_text() + (logs / "stderr").read_text()
    assert "Uvicorn running on" in output
    assert REDACTED_FORM in output  # the start-up log names the upstream, redacted
    assert "unparsable XML-RPC body" in output  # debug logging was on
    assert_none_has_token([*outputs, ("server output", output), *files_under(tmp_path)])
