"""The benchmark of issue 15: the service beside comparison servers, and in front of a generated index the real
index's size, each figure printed with its ratio to what it is measured against in the same run.

    python scripts/bench.py [--short] [--json] [--projects N] [--seconds S] [--rounds R] [--deadline S]

Run from the repository's root; everything stays on 127.0.0.1, each server its own process. Cache hits: the
service (`python -m shim`, default settings but SHIM_RATE_LIMIT=off: every benchmark connection comes from one
address), the same with SHIM_WORKERS=2, a bare Starlette endpoint serving the service's answer bytes, the minimal
parse-and-answer endpoint (`xmlrpc.client.loads`, then cached bytes) and the standard library's threaded
SimpleXMLRPCServer (testkit/benchservers.py), all on uvicorn with httptools and the loop it picks (uvloop when
installed) but the last. The load is wrk (Debian: `apt-get install wrk`), 16 connections POSTing the same
package_releases call, every answer compared with the expected bytes; rounds interleave the servers, the median
counts. Without wrk, a small Python loop (its figures say little). The whole-index figures are taken against a
generated upstream (testkit/bigindex.py, --projects, 927,088 by default) by a fresh service.

`--short` (for CI): 20,000 projects, one-second runs, one round. The exit status is 1 on a wrong answer only (a
fault, a malformed answer, a wrong value, a server that would not start, no answer by --deadline: 30 minutes,
4 with --short), never on a time or a ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import signal
import statistics
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from testkit.benchfigures import (  # noqa: E402
    FIGURES,
    Figure,
    WrongAnswer,
    children_rss,
    index_figures,
    median_time,
    ratio,
    service,
    workers_figure,
    xmlrpc_call,
)
from testkit.benchload import Load, child, python_load, wrk_load, wrk_path  # noqa: E402
from testkit.benchservers import write_answers  # noqa: E402
from testkit.bigindex import PUBLIC_SIZE  # noqa: E402
from testkit.fakeindex import FakeIndex  # noqa: E402

PROBE = "roundup"  # a fixture project: package_releases answers its latest version
SMALL_INDEX = 2_000  # projects of the upstream the cache-hit runs are served from
START_TIMEOUT = 60.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="the CI version: a small index, one-second runs")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON rather than a table")
    parser.add_argument("--projects", type=int, default=None, help=f"generated projects (default {PUBLIC_SIZE:,})")
    parser.add_argument("--seconds", type=float, default=None, help="seconds of each load run (default 5)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds over the servers (default 3)")
    parser.add_argument("--deadline", type=float, default=None, help="seconds before what is left is given up")
    return parser


def _loop_name() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


@contextlib.contextmanager
def upstream(projects: int, state: Path) -> Iterator[str]:
    argv = [sys.executable, "-m", "testkit.bigindex", "--projects", str(projects)]
    with child(argv, cwd=ROOT, log=state / f"upstream-{projects}.log", timeout=300.0) as (_, url):
        yield url + "/"


def _answer(base: str, expected: list[str], what: str) -> bytes:
    """The bytes `base` answers to package_releases(PROBE), checked: the expected value, the same bytes twice."""
    first = xmlrpc_call(base, "package_releases", (PROBE,), what=what)
    second = xmlrpc_call(base, "package_releases", (PROBE,), what=what)
    for body in (first, second):
        value = xmlrpc.client.loads(body)[0][0]
        if value != expected:
            raise WrongAnswer(f"{what}: package_releases({PROBE!r}) answered {value!r}, not {expected!r}")
    if first != second:
        raise WrongAnswer(f"{what}: two cache-hit package_releases calls answered different bytes")
    return second


def cache_hits(args: argparse.Namespace, state: Path, problems: list[str]) -> list[Figure]:
    latest = FakeIndex().project(PROBE).latest()
    assert latest is not None
    expected = [latest.version]
    call = xmlrpc.client.dumps((PROBE,), "package_releases").encode()
    load = wrk_load if wrk_path() is not None else python_load
    with contextlib.ExitStack() as stack:
        small = stack.enter_context(upstream(SMALL_INDEX, state))
        servers: dict[str, tuple[str, bytes]] = {}
        _, base = stack.enter_context(service(small, state / "one", {}))
        servers["service"] = (base, _answer(base, expected, "the service"))
        two, base2 = stack.enter_context(service(small, state / "two", {"SHIM_WORKERS": "2"}))
        servers["service --workers 2"] = (base2, _answer(base2, expected, "the service with 2 workers"))
        answers = state / "answers.json"
        write_answers(answers, [("package_releases", (PROBE,), servers["service"][1])])
        for kind in ("bare", "parse", "stdlib"):
            argv = [sys.executable, "-m", "testkit.benchservers", kind, str(answers)]
            _, url = stack.enter_context(child(argv, cwd=ROOT, log=state / f"{kind}.log", timeout=START_TIMEOUT))
            servers[kind] = (url, _answer(url, expected, f"the {kind} server"))
        runs: dict[str, list[Load]] = {name: [] for name in servers}
        if not args.short:  # warm each once (connection set-up, first-call caches); its answers checked too
            for name, (base_url, body) in servers.items():
                warm = load(base_url + "/pypi", call, body, seconds=1.0)
                runs[name].append(Load(0.0, warm.answers, warm.wrong, warm.errors))
        for _ in range(args.rounds):
            for name, (base_url, body) in servers.items():
                runs[name].append(load(base_url + "/pypi", call, body, seconds=args.seconds))
        worker_rss = children_rss(two.pid)
    for name, loads in runs.items():
        wrong = sum(run.wrong for run in loads)
        if wrong or not any(run.answers for run in loads):
            problems.append(f"{name}: {wrong} of {sum(r.answers for r in loads)} answers under load were wrong")
    measured = {name: [r.calls_per_second for r in loads if r.calls_per_second] for name, loads in runs.items()}
    rate = {name: statistics.median(rates) if rates else 0.0 for name, rates in measured.items()}
    own = rate["service"]
    return [
        Figure(FIGURES[0], own, None, "", "calls/s"),
        Figure(FIGURES[1], rate["bare"], ratio(own, rate["bare"]), "(the ceiling)", "calls/s"),
        Figure(FIGURES[2], rate["parse"], ratio(own, rate["parse"]), ">= 0.8", "calls/s"),
        Figure(FIGURES[3], rate["stdlib"], ratio(own, rate["stdlib"]), ">= 3", "calls/s"),
        Figure(FIGURES[4], rate["service --workers 2"], ratio(rate["service --workers 2"], own), ">= 1.7", "calls/s"),
        Figure(FIGURES[5], max(worker_rss, default=None), None, "", "MB"),
    ]


def whole_index(args: argparse.Namespace, state: Path, problems: list[str]) -> list[Figure]:
    with upstream(args.projects, state) as big:
        with httpx.Client(trust_env=False, timeout=60.0) as client:
            headers = {"Accept": "application/vnd.pypi.simple.v1+json", "Accept-Encoding": "identity"}
            text = client.get(big + "simple/", headers=headers).content
        loads_time = median_time(lambda: json.loads(text), 3)
        listing = json.loads(text)["projects"]
        figures = index_figures(big, state, listing, loads_time, args.short, problems)
        del listing
        return [*figures, workers_figure(big, state, args.short)]


def _cell(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "B":
        return f"{value / 1e6:,.1f} MB"
    if unit == "calls/s":
        return f"{value:,.0f}"
    return f"{value:,.1f}" if value >= 100 else f"{value:.3g}"


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "ratio", "target", "met")]
    for f in figures:
        rows.append((f.name, _cell(f.value, f.unit), _cell(f.ratio), f.target, f.met))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _out_of_time(signum: int, frame: object) -> None:
    raise WrongAnswer("no answer within the run's deadline (--deadline)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.projects = args.projects or (20_000 if args.short else PUBLIC_SIZE)
    args.seconds = args.seconds or (1.0 if args.short else 5.0)
    args.rounds = args.rounds or (1 if args.short else 3)
    args.deadline = args.deadline or (240.0 if args.short else 1800.0)
    tool = "wrk" if wrk_path() is not None else "a Python loop (install wrk for real figures: apt-get install wrk)"
    print(
        f"bench: {args.projects:,} projects; load: {tool}, 16 connections, {args.rounds} x {args.seconds:g} s per "
        f"server; uvicorn with httptools and {_loop_name()}; the service's rate limit is off (SHIM_RATE_LIMIT=off), "
        "its other settings are the defaults",
        file=sys.stderr,
        flush=True,
    )
    problems: list[str] = []
    figures: list[Figure] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="shim-bench-") as directory:
        state = Path(directory)
        signal.signal(signal.SIGALRM, _out_of_time)
        signal.alarm(int(args.deadline))
        for phase in (cache_hits, whole_index):
            if time.monotonic() - started > args.deadline:
                problems.append(f"{phase.__name__}: not run, the run's deadline had passed")
                continue
            try:
                figures += phase(args, state, problems)
            except (WrongAnswer, RuntimeError, OSError, httpx.HTTPError, xmlrpc.client.Error) as exc:
                problems.append(f"{phase.__name__}: {type(exc).__name__}: {exc}")
        signal.alarm(0)
    if args.json:
        document: dict[str, Any] = {"figures": [f.as_json() for f in figures], "wrong": problems}
        print(json.dumps(document, indent=2))
    else:
        print(table(figures))
        print(f"({time.monotonic() - started:.0f} s)")
    for problem in problems:
        print(f"bench: WRONG: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
