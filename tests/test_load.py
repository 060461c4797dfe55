"""The load script, short: 50 clients for 20 s over an upstream failing 10% of requests, all answers well formed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The faults the service sends under load: "service unavailable", and the -32500/-32602 a method may answer.
SERVICE_FAULTS = {"-32403", "-32500", "-32602"}

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(120)
def test_twenty_seconds_of_load_over_a_flaky_upstream_answer_well_formed() -> None:
    command = [sys.executable, "scripts/load.py", "--clients", "50", "--seconds", "20", "--failure-rate", "0.1"]
    finished = subprocess.run([*command, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=100)
    lines = [line for line in finished.stdout.splitlines() if line.startswith("{")]
    assert lines, finished.stdout + finished.stderr
    result = json.loads(lines[-1])
    report = finished.stdout + finished.stderr
    assert result["ready"], report
    assert result["malformed"] == 0, report
    assert result["service_alive"], report
    assert result["calls"] > 200, report
    assert set(result["faults_by_code"]) <= SERVICE_FAULTS, report
    assert result["upstream_failures"], report  # the upstream did fail, and the service answered regardless
    assert finished.returncode == 0, report
