"""The benchmark's short run (CI's): it starts every server, checks every answer, lists every figure, and exits 0;
times and ratios are printed, never judged here."""

from __future__ import annotations

import subprocess
import sys
import xmlrpc.client
from pathlib import Path

import pytest

from testkit.benchfigures import FIGURES, Figure, WrongAnswer, value

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.e2e
@pytest.mark.timeout(150)
def test_the_short_benchmark_answers_right_and_lists_every_figure() -> None:
    run = subprocess.run(
        [sys.executable, "scripts/bench.py", "--short"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=140,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "WRONG" not in run.stderr
    assert "SHIM_RATE_LIMIT=off" in run.stderr  # it says that it turned the rate limit off
    table = run.stdout.splitlines()
    assert table[0].split() == ["figure", "value", "ratio", "target", "met"]
    for figure in FIGURES:
        assert any(line.startswith(figure) for line in table), figure


def test_a_fault_or_a_malformed_answer_is_a_wrong_answer() -> None:
    fault = xmlrpc.client.dumps(xmlrpc.client.Fault(-32500, "RuntimeError: boom"), methodresponse=True).encode()
    with pytest.raises(WrongAnswer, match="answered fault -32500: RuntimeError: boom"):
        value(fault, "package_releases")
    with pytest.raises(WrongAnswer, match="malformed"):
        value(b"<methodResponse><params><param><value><int>x", "package_releases")
    assert value(xmlrpc.client.dumps((["1.0"],), methodresponse=True).encode(), "package_releases") == ["1.0"]


@pytest.mark.parametrize(
    ("figure", "met"),
    [
        (Figure("calls", 900.0, 0.9, ">= 0.8"), "met"),
        (Figure("calls", 900.0, 0.7, ">= 0.8"), "not met"),
        (Figure("rss", 240.0, None, "<= 250", "MB", judged="value"), "met"),
        (Figure("rss", 260.0, None, "<= 250", "MB", judged="value"), "not met"),
        (Figure("calls", 900.0, None, ">= 0.8"), "not met"),  # no ratio (nothing to divide by): never met
        (Figure("bare", 9000.0, 0.4, "(the ceiling)"), ""),
        (Figure("dumps", 1.0, None, ""), ""),
    ],
)
def test_a_target_bounds_the_ratio_or_the_value_it_names(figure: Figure, met: str) -> None:
    assert figure.met == met
    assert figure.as_json()["met"] == met
