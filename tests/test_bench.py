"""The benchmark's short run (CI's): it starts every server, checks every answer, lists every figure, and exits 0;
times and ratios are printed, never judged here."""

from __future__ import annotations

import subprocess
import sys
import xmlrpc.client
from pathlib import Path

import httpx
import pytest

from testkit.benchfigures import FIGURES, Figure, WrongAnswer, value
from testkit.benchload import _lua_string
from testkit.benchservers import Call, bare_app, parse_app

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


ANSWER = xmlrpc.client.dumps((["1.6.1"],), methodresponse=True).encode()
CALLS: list[Call] = [("package_releases", ("roundup",), ANSWER)]


@pytest.mark.anyio
async def test_the_parse_and_answer_endpoint_answers_the_cached_bytes_for_that_call_only() -> None:
    transport = httpx.ASGITransport(app=parse_app(CALLS))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench.test") as client:
        hit = await client.post("/pypi", content=xmlrpc.client.dumps(("roundup",), "package_releases"))
        assert hit.content == ANSWER and hit.headers["content-type"].startswith("text/xml")
        miss = await client.post("/pypi", content=xmlrpc.client.dumps(("other",), "package_releases"))
        with pytest.raises(xmlrpc.client.Fault, match="no cached answer for package_releases"):
            xmlrpc.client.loads(miss.content)


@pytest.mark.anyio
async def test_the_bare_endpoint_answers_the_same_bytes_to_anything() -> None:
    transport = httpx.ASGITransport(app=bare_app(CALLS))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench.test") as client:
        assert (await client.post("/pypi", content=b"anything")).content == ANSWER


def test_a_body_goes_into_a_lua_long_string_whatever_brackets_it_holds() -> None:
    assert _lua_string(b"<a/>") == "[[<a/>]]"
    assert _lua_string(b"x]]y]=]z") == "[==[x]]y]=]z]==]"
