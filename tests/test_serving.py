"""`pypi-xmlrpc-shim` as a real process: a SIGTERM drains and exits 0, workers keep the guards, and a process
short of file descriptors keeps answering."""

from __future__ import annotations

import importlib.util
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from testkit.fakeindex import FakeIndex
from testkit.servers import free_port, serve_in_thread, wait_until_answering

pytestmark = pytest.mark.e2e

COMMAND = str(Path(sys.executable).with_name("pypi-xmlrpc-shim"))
UPSTREAM = "https://upstream.test/"


def environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIM_", "PIP_INDEX", "WEB_CONCURRENCY"))}
    env.update({"SHIM_UPSTREAM": UPSTREAM, "SHIM_CATALOG_WRITER": "false", **extra})
    return env


@dataclass
class Command:
    base: str  # http://127.0.0.1:<port>
    process: subprocess.Popen[bytes]
    log: IO[bytes]  # its standard output and error: a file, never a pipe that a chatty process could fill

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> tuple[int, str]:
        """SIGTERM, then its exit status and all it wrote."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self.log.seek(0)
        return code, self.log.read().decode(errors="replace")


@contextmanager
def command(env: dict[str, str], **popen: Any) -> Iterator[Command]:
    """The command on a free port, answering. Killed at the end if still running."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([COMMAND, "--port", str(port)], env=env, stdout=log, stderr=log, **popen)
        try:
            running = Command(f"http://127.0.0.1:{port}", process, log)
            assert wait_until_answering(running.base, process, timeout=30), f"exit status {process.poll()}"
            yield running
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


class _Transport(xmlrpc.client.Transport):
    def make_connection(self, host: Any) -> Any:
        connection = super().make_connection(host)
        connection.timeout = 10  # a client that is never answered fails, never waits forever
        return connection


def answers(base: str) -> bool:
    with xmlrpc.client.ServerProxy(base + "/pypi", transport=_Transport()) as proxy:
        return bool(proxy.package_hosting_mode("roundup") == "pypi-only")


def test_with_defaults_the_command_serves_on_uvloop_where_installed_and_logs_no_line_per_request() -> None:
    expected = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    with command(environ()) as running:
        assert answers(running.base)
        code, output = running.stop()
    assert code == 0 and f"serving on {expected}'s event loop" in output, output
    assert '"POST /pypi HTTP/1.1" 200' not in output, output


def test_asked_to_the_command_logs_a_line_per_request_and_serves_on_asyncio_s_own_loop() -> None:
    with command(environ(SHIM_ACCESS_LOG="on", SHIM_EVENT_LOOP="asyncio")) as running:
        assert answers(running.base)
        code, output = running.stop()
    assert code == 0 and "serving on asyncio's event loop" in output, output
    assert '"POST /pypi HTTP/1.1" 200' in output, output


def test_a_sigterm_lets_the_call_in_progress_finish_then_exits_0() -> None:
    fake = FakeIndex()
    with serve_in_thread(fake) as index_url:
        fake.set_urls(index_url + "/")
        fake.slow("/pypi/roundup/json", 1.0)
        with command(environ(SHIM_UPSTREAM=index_url + "/")) as shim:
            answered: list[object] = []

            def call() -> None:
                with xmlrpc.client.ServerProxy(shim.base + "/pypi", transport=_Transport()) as proxy:
                    answered.append(proxy.package_releases("roundup"))

            caller = threading.Thread(target=call)
            caller.start()
            deadline = time.monotonic() + 30
            while not fake.count("/pypi/roundup/json") and time.monotonic() < deadline:
                time.sleep(0.02)
            code, output = shim.stop()
            caller.join(timeout=30)
    assert answered == [["1.6.1"]]
    assert code == 0, output  # uvicorn raises the signal again after its drain: -15, status 143 in a shell
    assert "Shutting down" in output


def test_workers_serve_with_the_connection_guards_and_stop_with_0() -> None:
    env = environ(SHIM_WORKERS="2", SHIM_IDLE_TIMEOUT="0.5")
    with command(env) as shim:
        assert answers(shim.base)
        host, port = shim.base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as silent:
            started = time.monotonic()
            assert silent.recv(1) == b""  # closed by the worker's idle timeout
            assert time.monotonic() - started < 5
        code, output = shim.stop()
    assert code == 0, output
    assert output.count("Started server process") == 2


def test_workers_with_the_catalog_writer_on_start_and_elect_one_writer(tmp_path: Path) -> None:
    # Once refused (each worker would have written the catalog): now one is elected, the other stands by.
    env = environ(SHIM_WORKERS="2", SHIM_CATALOG_WRITER="true", SHIM_CATALOG_PATH=str(tmp_path / "catalog.sqlite3"))
    with command(env) as shim:
        assert answers(shim.base)
        deadline = time.monotonic() + 30
        while "standing by: pid " not in shim.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        code, output = shim.stop()
    assert code == 0, output
    assert output.count("standing by: pid ") == 1 and output.count("writes the catalog") == 2, output


def few_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_short_of_file_descriptors_the_service_still_answers() -> None:
    # 300 idle connections against a process that may open 256 files: uvicorn alone fails accept() (EMFILE) and
    # every new client waits. Here the cap is lowered to fit, and idle connections make room for new ones.
    with command(environ(), preexec_fn=few_descriptors) as shim, ExitStack() as stack:
        host, port = shim.base.removeprefix("http://").split(":")
        for _ in range(300):
            stack.enter_context(socket.create_connection((host, int(port)), timeout=10))
        assert answers(shim.base)
        code, output = shim.stop()
    assert code == 0
    assert (
        "SHIM_MAX_CONNECTIONS is 1000, but this process may open only 256 files (its RLIMIT_NOFILE: LimitNOFILE= "
        "in a systemd unit, ulimit -n in a shell): serving at most 128 connections at once"
    ) in output
