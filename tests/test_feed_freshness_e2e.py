"""End to end, as a new user meets it: the service started with its default settings as a process, over an index on
127.0.0.1 with RSS feeds; a release made upstream mid-run is in all three change-feed methods within a minute."""

from __future__ import annotations

import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path
from typing import Any, cast

import pytest

from testkit.fakeindex import FakeIndex
from testkit.servers import free_port, serve_in_thread, wait_until_answering

from .helpers import shim_environ

pytestmark = pytest.mark.e2e


def test_with_defaults_a_release_reaches_the_three_feed_methods_within_a_minute(tmp_path: Path) -> None:
    fake = FakeIndex()
    with serve_in_thread(fake) as index_url:
        fake.set_urls(index_url + "/")
        port = free_port()
        environ = shim_environ(index_url + "/", tmp_path / "catalog.sqlite3", tmp_path, SHIM_PORT=str(port))
        server = subprocess.Popen([sys.executable, "-m", "shim"], env=environ, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            assert wait_until_answering(base, server, timeout=20), "the service did not start"
            with xmlrpc.client.ServerProxy(base + "/pypi", allow_none=True) as proxy:
                start = cast(int, proxy.changelog_last_serial())  # waits for the first look: the starting point
                time.sleep(1.1)  # a release after the first look's second (feed times have a second's resolution)
                fake.add_release("roundup", "1.7.0", files=[])
                serial = fake.project("roundup").last_serial
                released = time.monotonic()
                rows: list[Any] = []
                while not rows:
                    assert time.monotonic() - released < 60, "not in the change feed within a minute"
                    time.sleep(1)
                    rows = cast(list[Any], proxy.changelog_since_serial(start))
                took = time.monotonic() - released
                since_time = cast(list[Any], proxy.changelog(int(time.time()) - 3600))
                last = proxy.changelog_last_serial()
        finally:
            server.terminate()
            server.wait(timeout=10)
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [("roundup", "1.7.0", "new release", serial)]
    assert [r[:4] for r in since_time if r[1] == "1.7.0"] == [r[:4] for r in rows]
    assert last == serial
    assert took < 60  # one feed poll (SHIM_FEED_POLL, 30 s by default), not the Simple index's 300 s
