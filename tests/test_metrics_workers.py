"""`/metrics` under `pypi-xmlrpc-shim --workers 2` (prometheus_client's multiprocess mode): whichever worker a scrape
reaches, it shows every worker's calls once; a worker that dies keeps its counts in the sums, and leaves the gauges
of live workers. Real processes, a fake index on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import time
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from testkit.fakeindex import FakeIndex
from testkit.servers import serve_in_thread
from testkit.shimprocess import Running, command

pytestmark = pytest.mark.e2e

T = TypeVar("T")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(shim: Running) -> Samples:
    """One scrape over a new connection: any worker may answer it."""
    with httpx.Client(trust_env=False, timeout=10) as client:
        text = client.get(shim.base + "/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def calls(samples: Samples, method: str) -> float:
    return samples.get(("shim_calls_total", frozenset({("method", method)})), 0.0)


def roles(samples: Samples) -> float:
    """Processes counted by the live role gauge: one per live worker."""
    return sum(value for (name, _), value in samples.items() if name == "shim_catalog_role")


def pids(shim: Running, count: int) -> set[int]:
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while len(seen) < count and time.monotonic() < deadline:
        seen.add(int(shim.health()["catalog"]["pid"]))
    assert len(seen) == count, seen
    return seen


def eventually(find: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := find()) is not None:
            return found
        time.sleep(0.1)
    raise AssertionError(f"never: {what}")


def test_every_workers_calls_are_counted_once_whichever_worker_is_scraped_and_survive_its_death(
    tmp_path: Path,
) -> None:
    fake = FakeIndex()
    folder = tmp_path / "metrics"
    with serve_in_thread(fake) as index_url:
        fake.set_urls(index_url + "/")
        settings = {"SHIM_UPSTREAM": index_url + "/", "XDG_STATE_HOME": str(tmp_path), "SHIM_WORKERS": "2"}
        folder.mkdir()
        stale = folder / "counter_999999.db"
        stale.write_bytes(b"an earlier run's worker")  # read by the merge, it would break every scrape
        with command({**settings, "SHIM_METRICS_DIR": str(folder)}) as shim:
            assert not stale.exists()  # emptied at start
            workers = pids(shim, 2)
            for _ in range(20):  # each over a new connection: both workers answer some
                with xmlrpc.client.ServerProxy(shim.base + "/pypi") as proxy:
                    assert proxy.package_releases("roundup") == ["1.6.1"]
            scrapes = [scrape(shim) for _ in range(6)]
            assert {calls(samples, "package_releases") for samples in scrapes} == {20.0}
            assert eventually(lambda: roles(scrape(shim)) == 2 or None, "both workers' roles")
            assert list(folder.glob("*.db")), "the workers count in SHIM_METRICS_DIR"
            killed = min(workers)
            os.kill(killed, signal.SIGKILL)
            eventually(lambda: (pids(shim, 2) - workers) or None, "a new worker in the dead one's place")
            after = [scrape(shim) for _ in range(6)]
            shim.process.send_signal(signal.SIGTERM)
            code = shim.process.wait(timeout=60)
    assert {calls(samples, "package_releases") for samples in after} == {20.0}  # the dead worker's calls stay
    assert {roles(samples) for samples in after} == {2.0}  # and its live gauges left: two workers, not three
    assert code == 0, shim.output()


def test_a_metrics_folder_that_cannot_be_used_is_named_with_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with serve_in_thread(FakeIndex()) as index_url:
        settings = {"SHIM_UPSTREAM": index_url + "/", "XDG_STATE_HOME": str(tmp_path), "SHIM_WORKERS": "2"}
        settings["SHIM_METRICS_DIR"] = str(blocker / "below")
        with pytest.raises(AssertionError) as refused, command(settings):
            pass
    assert f"SHIM_METRICS_DIR {str(blocker / 'below')!r} cannot be used" in str(refused.value)
