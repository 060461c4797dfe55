"""The idle-traffic script (scripts/idle_traffic.py): with default settings an idle deployment asks the upstream for
each site feed once a poll and for the Simple index once a refresh, every one a conditional request answered 304,
and for nothing else; the README gives its figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e


def test_an_idle_hour_costs_a_conditional_request_per_feed_a_poll_and_one_per_simple_index_read() -> None:
    command = [sys.executable, "scripts/idle_traffic.py", "--hours", "1", "--json"]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    report = json.loads(finished.stdout)
    assert (report["feed_poll"], report["index_refresh"]) == (30, 300)
    hour = report["per_hour"]
    assert {kind: (row["requests"], row["not_modified"]) for kind, row in hour.items()} == {
        "RSS feeds": (240, 240),
        "Simple index": (12, 12),
    }
    assert sum(row["received"] for row in hour.values()) < 150_000  # about 0.1 MB an hour, as the README says
    # The start-up reads both feeds and the Simple index whole, once.
    assert {kind: row["requests"] for kind, row in report["start_up"].items()} == {"RSS feeds": 2, "Simple index": 1}
