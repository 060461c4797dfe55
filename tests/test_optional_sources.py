"""An optional source (core metadata on the files host) never sinks an answer: when the files host cannot be
reached, or is slow past the timeout, `release_data` answers from the JSON API, the failure is logged once, and
the index's own circuit is never opened by the files host's failures (nor the reverse)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import urllib.request
import xmlrpc.client
from typing import Any, cast

import httpx
import pytest

from shim.modes import FilesMode
from shim.upstream.urls import UpstreamURL
from testkit.fakeindex import FakeIndex
from testkit.servers import free_port, serve_in_thread, wait_until_answering
from testkit.wheels import wheel_file

from .clock import FakeClock
from .feed import Feed, started
from .helpers import call, fault_of, make_settings, rpc_for, served
from .transports import Unreachable

FILES = "files.upstream.test"
INDEX = "upstream.test"
RECORDED = ("defusedxml", "httpx", "pypi-simple", "starlette")
# The fields only core metadata gives: without it they are [] (what PyPI had for a release without them).
CORE_ONLY = ("requires", "provides", "provides_dist", "obsoletes", "obsoletes_dist", "requires_external")


def versions_of(fake: FakeIndex, name: str) -> list[str]:
    return [release.version for release in fake.project(name).releases]


def every_release_data(client: Any, fake: FakeIndex) -> list[dict[str, Any]]:
    return [call(client, "release_data", name, version) for name in RECORDED for version in versions_of(fake, name)]


def files_host_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and FILES in r.getMessage()]


def test_with_the_files_host_unreachable_every_release_data_answers_and_the_failure_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeIndex()
    transport = Unreachable(fake, FILES)
    with served(fake, transport, clock=FakeClock()) as client:
        answers = every_release_data(client, fake)
        assert answers and all(len(answer) == 33 for answer in answers)
        assert all(answer[field] == [] for answer in answers for field in CORE_ONLY)
        # The index keeps answering the other release methods throughout.
        for name in RECORDED:
            assert call(client, "package_releases", name) != []
            assert call(client, "release_urls", name, versions_of(fake, name)[-1]) != []
        health = client.get("/healthz").json()
    assert len(files_host_warnings(caplog)) == 1, files_host_warnings(caplog)
    # Asked once, then left alone for a while: not once per call.
    assert transport.asked[FILES] == 1
    assert health["origins"][f"https://{INDEX}"]["circuit"] == "closed"
    core = health["optional_reads"]["core metadata"][f"https://{FILES}"]
    assert core["failures"] == 1 and core["skipped"] > 0 and core["state"] == "paused"
    assert "Name or service not known" in core["last_error"]


def test_with_the_files_host_slow_past_the_timeout_every_release_data_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeIndex()
    fake.slow("/packages/*", 30)
    with served(fake, clock=FakeClock(), upstream_timeout=0.2) as client:
        answers = every_release_data(client, fake)
        assert answers and all(len(answer) == 33 for answer in answers)
        assert call(client, "package_releases", "httpx") != []
    assert len(files_host_warnings(caplog)) == 1, files_host_warnings(caplog)


def test_the_files_host_is_asked_again_once_its_pause_is_over_and_its_recovery_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="shim.upstream.optional")
    fake = FakeIndex()
    transport = Unreachable(fake, FILES)
    clock = FakeClock()
    with served(fake, transport, clock=clock) as client:
        call(client, "release_data", "httpx", "0.28.1")  # each has a wheel, whose core metadata is asked for
        call(client, "release_data", "httpx", "1.0.dev5")
        assert transport.asked[FILES] == 1
        clock.advance(31)  # past SHIM_CIRCUIT_COOLDOWN's default
        transport.host = "nowhere.test"  # the files host is back
        call(client, "release_data", "httpx", "1.0.dev5")
        assert transport.asked[FILES] == 2
        health = client.get("/healthz").json()
    assert health["optional_reads"]["core metadata"][f"https://{FILES}"]["state"] == "ok"
    assert f"core metadata from https://{FILES} reads again" in caplog.messages


def test_a_files_host_down_for_ten_minutes_is_warned_of_once_as_unreadable_and_once_as_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeIndex()
    clock = FakeClock()
    with served(fake, Unreachable(fake, FILES), clock=clock) as client:
        for round_ in range(20):  # a call every 31 s: each finds the pause over, asks once more, and fails
            call(client, "release_data", "httpx", ("0.28.1", "1.0.dev5")[round_ % 2])
            clock.advance(31)
    unreadable, opened = files_host_warnings(caplog)  # two warnings in ten minutes, each said once
    assert unreadable.startswith(f"core metadata from https://{FILES} cannot be read, answers go without it; ")
    assert opened == f"the upstream (https://{FILES}) failed 5 times in a row: circuit open for 30 s"


def test_a_files_host_circuit_opening_leaves_the_index_closed() -> None:
    fake = FakeIndex()
    transport = Unreachable(fake, FILES)
    clock = FakeClock()
    with served(fake, transport, clock=clock, circuit_threshold=2) as client:
        for round_ in range(4):  # each round: the files host is asked once more, and fails
            call(client, "release_data", "httpx", ("0.28.1", "1.0.dev5")[round_ % 2])
            clock.advance(31)
        asked_index = transport.asked[INDEX]
        health = client.get("/healthz").json()
        for name in RECORDED:
            assert call(client, "package_releases", name) != []
        assert transport.asked[INDEX] > asked_index  # the index is still asked: its circuit is closed
    origins = health["origins"]
    assert origins[f"https://{FILES}"]["circuit"] in ("open", "half-open")
    assert origins[f"https://{FILES}"]["consecutive_failures"] >= 2
    assert origins[f"https://{INDEX}"]["circuit"] == "closed"
    assert origins[f"https://{INDEX}"]["consecutive_failures"] == 0


def test_an_index_circuit_opening_leaves_the_files_host_closed() -> None:
    fake = FakeIndex()
    wheel = fake.project("httpx").releases[-1].files[0]
    fake.fail("/pypi/*", exception=httpx.ConnectError)
    files = UpstreamURL.parse(f"https://{FILES}/")
    with served(fake, clock=FakeClock(), circuit_threshold=1, files=FilesMode.PROXY, files_upstream=files) as client:
        with pytest.raises(Exception):  # noqa: B017 - the index is down: any fault
            call(client, "package_releases", "httpx")
        assert client.get("/healthz").json()["origins"][f"https://{INDEX}"]["circuit"] == "open"
        # The file proxy still reaches the files host.
        assert wheel.path is not None
        response = client.get(f"/packages/{wheel.path}")
        assert response.status_code == 200, response.text


def test_unreachable_feeds_cost_one_attempt_and_one_log_line_and_the_rows_are_still_recorded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeIndex()
    fake.fail("/rss/*", exception=httpx.ConnectError)
    running = Feed(fake, make_settings())
    with running.client:
        started(running)
        start = fake.state.serial
        fake.add_release("roundup", "1.7.0", created="2026-01-02T03:04:05Z", files=[wheel_file("roundup", "1.7.0")])
        assert running.refresh() == 1
        fake.add_release("roundup", "1.8.0", created="2026-01-03T03:04:05Z", files=[wheel_file("roundup", "1.8.0")])
        assert running.refresh() == 1
        rows = running.since(start)
    assert [(r[1], r[3]) for r in rows] == [
        ("1.7.0", "new release"),
        ("1.7.0", "add py3 file roundup-1.7.0-py3-none-any.whl"),
        ("1.8.0", "new release"),
        ("1.8.0", "add py3 file roundup-1.8.0-py3-none-any.whl"),
    ]
    # Not retried, and left alone once it failed: the first pass asked once, the second not at all.
    assert [r.path for r in fake.requests if r.path.startswith("/rss/")] == ["/rss/updates.xml"]
    assert len([m for m in caplog.messages if m.startswith("RSS feeds from https://upstream.test cannot be read")]) == 1


@pytest.mark.e2e
def test_with_defaults_a_service_process_answers_release_data_while_its_files_host_is_unreachable() -> None:
    """As a new user would meet it: the service started with its default settings (as a process, on a socket),
    over an index whose file URLs name a host nothing answers on."""
    fake = FakeIndex()
    with serve_in_thread(fake) as index_url:
        dead_files = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
        fake.set_urls(index_url + "/", dead_files)
        port = free_port()
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("SHIM_", "PIP_INDEX"))}
        environ.update(SHIM_UPSTREAM=index_url + "/", SHIM_PORT=str(port))
        server = subprocess.Popen(
            [sys.executable, "-m", "shim"], env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            base = f"http://127.0.0.1:{port}"
            assert wait_until_answering(base, server, timeout=20), "the service did not start"
            with xmlrpc.client.ServerProxy(base + "/pypi", allow_none=True) as proxy:
                for name in RECORDED:
                    for version in versions_of(fake, name):
                        assert len(cast(dict[str, Any], proxy.release_data(name, version))) == 33
                        assert proxy.package_releases(name) != []
                        assert proxy.release_urls(name, version) is not None
            with urllib.request.urlopen(base + "/healthz", timeout=10) as response:
                health = json.load(response)
        finally:
            server.terminate()
            output = server.communicate(timeout=10)[0].decode()
    dead = dead_files.rstrip("/")
    assert health["origins"][index_url]["circuit"] == "closed"
    assert health["optional_reads"]["core metadata"][dead]["failures"] == 1
    assert len([line for line in output.splitlines() if f"core metadata from {dead} cannot be read" in line]) == 1


META = "Metadata-Version: 2.1\nName: meta-demo\nVersion: {version}\nSummary: From the file\nRequires: os.path\n"


def wheel_with_metadata(version: str) -> dict[str, Any]:
    return {
        **wheel_file("meta-demo", version),
        "core_metadata_sha256": "4" * 64,
        "metadata": META.format(version=version),
    }


def test_per_release_json_that_cannot_be_read_is_optional_once_core_metadata_answered() -> None:
    fake = FakeIndex()
    fake.add_release("meta-demo", "1.0", files=[wheel_with_metadata("1.0")])
    fake.add_release("meta-demo", "2.0", files=[wheel_with_metadata("2.0")])
    fake.fail("/pypi/meta-demo/1.0/json", status=503)
    with served(fake, clock=FakeClock()) as client:
        answer = call(client, "release_data", "meta-demo", "1.0")
    assert (len(answer), answer["version"], answer["summary"], answer["requires"]) == (
        33,
        "1.0",
        "From the file",
        ["os.path"],
    )
    assert fake.count("/pypi/meta-demo/1.0/json") == 1  # tried once, not retried: the answer did without it


def test_per_release_json_that_cannot_be_read_is_unavailable_when_nothing_else_has_the_release() -> None:
    fake = FakeIndex()
    fake.fail("/pypi/roundup/1.5.1/json", status=503)
    with served(fake, clock=FakeClock()) as client:
        assert fault_of(rpc_for(client), "release_data", "roundup", "1.5.1") == (
            -32403,
            "server error; service unavailable",
        )
    assert fake.count("/pypi/roundup/1.5.1/json") == 3  # needed: retried as any document the answer needs


def test_a_malformed_core_metadata_file_costs_only_its_fields_and_is_counted() -> None:
    fake = FakeIndex()
    malformed = "Metadata-Version: 2.1\nSummary: no Name, no Version\nRequires: os.path\n"
    fake.add_release("meta-demo", "1.0", files=[{**wheel_with_metadata("1.0"), "metadata": malformed}])
    fake.add_release("meta-demo", "2.0", files=[])
    with served(fake, clock=FakeClock()) as client:
        answer = call(client, "release_data", "meta-demo", "1.0")
        health = client.get("/healthz").json()
    assert (len(answer), answer["version"], answer["requires"]) == (33, "1.0", [])  # from the per-release JSON
    core = health["optional_reads"]["core metadata"][f"https://{FILES}"]
    assert (core["malformed"], core["failures"], core["state"]) == (1, 0, "failing")
    assert "the metadata file has no Name or Version" in core["last_error"]
