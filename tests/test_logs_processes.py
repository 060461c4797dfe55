"""The logs of the real `pypi-xmlrpc-shim` command with SHIM_LOG_FORMAT=json and SHIM_ACCESS_LOG=true, called through
xmlrpc.client: every line of its output, from start to stop, is one JSON object; each call has one access line (never
uvicorn's beside it) carrying its id, method, outcome and upstream requests; with `--workers 2` every process writes
JSON, the supervisor too."""

from __future__ import annotations

import json
import re
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit.fakeindex import FakeIndex
from testkit.servers import serve_in_thread
from testkit.shimprocess import Running, command, stop

pytestmark = pytest.mark.e2e

ACCESS = "shim.access"


@pytest.fixture
def index_url() -> Iterator[str]:
    fake = FakeIndex()
    with serve_in_thread(fake) as url:
        fake.set_urls(url + "/")
        yield url


def json_service(index_url: str, state: Path, **settings: str) -> Any:
    return command(
        {
            "SHIM_UPSTREAM": index_url + "/",
            "XDG_STATE_HOME": str(state),
            "SHIM_LOG_FORMAT": "json",
            "SHIM_ACCESS_LOG": "true",
            **settings,
        }
    )


def rpc(running: Running, request_id: str, method: str, *params: Any) -> Any:
    with xmlrpc.client.ServerProxy(running.base + "/pypi", headers=[("X-Request-ID", request_id)]) as proxy:
        return getattr(proxy, method)(*params)


def every_line(running: Running) -> list[dict[str, Any]]:
    """The whole output, stopped: each line must be one JSON object with the fields every line has."""
    stop(running.process)
    lines = running.output().splitlines()
    assert lines
    parsed = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
        assert isinstance(value, dict), line
        assert list(value)[:4] == ["time", "level", "event", "logger"], line
        parsed.append(value)
    return parsed


def test_every_line_of_a_served_run_is_json_and_each_call_has_one_access_line(index_url: str, tmp_path: Path) -> None:
    with json_service(index_url, tmp_path) as running:
        assert rpc(running, "e2e-first", "package_releases", "roundup")
        assert rpc(running, "e2e-again", "package_releases", "roundup")
        with pytest.raises(xmlrpc.client.Fault):
            rpc(running, "e2e-fault", "no_such_method")
        multicall = [{"methodName": "changelog_last_serial", "params": []}]
        assert len(rpc(running, "e2e-multi", "system.multicall", multicall)) == 1
        with httpx.Client(trust_env=False) as http:
            assert http.get(running.base + "/healthz", headers={"X-Request-ID": "e2e-health"}).status_code == 200
        lines = every_line(running)
    access = {line["request_id"]: line for line in lines if line["logger"] == ACCESS}
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]
    ours = [line for line in lines if line["logger"] == ACCESS and line["request_id"].startswith("e2e-")]
    assert sorted(line["request_id"] for line in ours) == sorted(
        ["e2e-first", "e2e-again", "e2e-fault", "e2e-multi", "e2e-health"]
    )  # one access line each
    first = access["e2e-first"]
    assert set(first) >= {"request_id", "method", "client", "duration", "outcome", "upstream_requests", "status"}
    assert (first["method"], first["outcome"], first["status"], first["path"]) == (
        "package_releases",
        "value",
        200,
        "/pypi",
    )
    assert first["client"] == "127.0.0.1"
    assert first["upstream_requests"] >= 1
    assert access["e2e-again"]["upstream_requests"] == 0
    assert (access["e2e-fault"]["method"], access["e2e-fault"]["outcome"]) == (None, "-32601")
    assert access["e2e-multi"]["multicall"] == ["changelog_last_serial"]
    assert (access["e2e-health"]["path"], access["e2e-health"]["outcome"]) == ("/healthz", None)
    events = [line["event"] for line in lines]
    assert any(event.startswith("Uvicorn running on") for event in events)  # uvicorn's own lines are JSON
    assert any(event.startswith("answering XML-RPC from") for event in events)  # and the service's


def test_with_two_workers_every_process_writes_json_and_a_client_is_hashed(index_url: str, tmp_path: Path) -> None:
    with json_service(index_url, tmp_path, SHIM_WORKERS="2", SHIM_LOG_CLIENT="hash") as running:
        for n in range(8):
            assert rpc(running, f"e2e-{n}", "package_releases", "roundup")
        lines = every_line(running)
    events = [line["event"] for line in lines]
    assert any(event.startswith("Started parent process") for event in events)  # the supervisor's
    workers = {m[1] for event in events if (m := re.fullmatch(r"Started server process \[(\d+)\]", event))}
    assert len(workers) == 2
    assert sum(event.startswith("answering XML-RPC from") for event in events) == 2  # each worker's app
    clients = {line["client"] for line in lines if line["logger"] == ACCESS}
    assert len(clients) == 1  # 127.0.0.1 each time, through whichever worker
    assert re.fullmatch("[0-9a-f]{16}", clients.pop())
