"""Load the service: many concurrent XML-RPC clients over a fake upstream that fails a set fraction of requests.

    python scripts/load.py --clients 200 --seconds 60 --failure-rate 0.1 [--seed 1] [--json]

Run from the repository's root. Everything stays on 127.0.0.1: the fake index (testkit/fakeindex) is served in this
process behind a wrapper that fails the set fraction of its requests (503, a truncated body, or a slow answer;
seeded), and the service runs as its own process (`python -m shim`), whose memory is read from /proc. Clients loop
until the deadline or the call cap. Every answer is classified: a well-formed value, a fault (by code), or
malformed (for XML-RPC anything but HTTP 200 text/xml that xmlrpc.client reads; for the pass-through GETs, a status
other than 200/304/404/502, or no body). Exits 1 when any answer was malformed or the service died; the whole run is
bounded by `--seconds` + 30.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from testkit.fakeindex import FakeIndex  # noqa: E402
from testkit.flaky import FlakyIndex  # noqa: E402
from testkit.proc import cpu_seconds, proc_status  # noqa: E402
from testkit.servers import free_port, serve_in_thread, wait_until_answering  # noqa: E402

READY_TIMEOUT = 15.0  # seconds for the service to load its first Simple index
REQUEST_TIMEOUT = 10.0  # seconds a client waits for one answer (also the drain after the deadline)
STOP_TIMEOUT = 5.0  # seconds the service has to exit on SIGTERM before it is killed

# The fixture projects and their versions (plus a name and a version the index lacks, as real clients ask).
PROJECTS: dict[str, tuple[str, ...]] = {
    "roundup": ("1.5.1", "1.6.0", "1.6.1"),
    "httpx": ("0.0.1", "0.28.1", "1.0.dev6"),
    "starlette": ("0.1.0", "1.9.0", "1.10.0"),
    "defusedxml": ("0.3", "0.7.1", "0.8.0rc2"),
    "oddversions": ("1.0-beta", "2004d", "0.9.8-r1", "3.0.0"),
    "nofiles": ("0.1", "1.0"),
    "case-owners": ("1.0",),
    "pypi-simple": ("1.6.1", "1.8.0"),
    "all-yanked": ("1.0", "3.0"),
    "no-such-project": ("1.0",),
}
SEARCH_TERMS = ("http", "xml", "round", "star", "simple", "async", "zzz-nothing")


# --- the service, as its own process ------------------------------------------------------------------------------


@contextlib.contextmanager
def service(upstream: str, state: Path, cache_soft_ttl: float) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    environ = {
        **os.environ,
        "SHIM_HOST": "127.0.0.1",
        "SHIM_UPSTREAM": upstream,
        "SHIM_CATALOG_PATH": str(state / "catalog.sqlite3"),
        "SHIM_RATE_LIMIT": "off",
        "SHIM_PASSTHROUGH_RATE_LIMIT": "off",
        "SHIM_LOG_LEVEL": "warning",
        "SHIM_CACHE_SOFT_TTL": f"{cache_soft_ttl:g}",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    log = (state / "service.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "shim", "--port", str(port)],
        cwd=ROOT,
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


# --- the clients ---------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    calls: int = 0
    values: int = 0
    gets: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    faults: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def bad(self, kind: str, detail: str) -> None:
        self.malformed[kind] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {detail[:200]}")


Call = tuple[str, tuple[Any, ...]]


def pick_call(rng: random.Random) -> Call:
    name = rng.choice(list(PROJECTS))
    version = rng.choice(PROJECTS[name])
    query = rng.choice(SEARCH_TERMS)
    choices: list[tuple[int, Callable[[], Call]]] = [
        (20, lambda: ("package_releases", (name,))),
        (8, lambda: ("package_releases", (name, True))),
        (14, lambda: ("release_urls", (name, version))),
        (14, lambda: ("release_data", (name, version))),
        (8, lambda: ("package_roles", (name,))),
        (3, lambda: ("list_packages_with_serial", ())),
        (8, lambda: ("changelog_last_serial", ())),
        (6, lambda: ("search", ({"name": query, "summary": query}, "or"))),
        (
            8,
            lambda: (
                "system.multicall",
                (
                    [
                        {"methodName": "package_releases", "params": [name]},
                        {"methodName": "release_urls", "params": [name, version]},
                        {"methodName": "package_roles", "params": [name]},
                    ],
                ),
            ),
        ),
        (3, lambda: ("GET", (f"/pypi/{name}/json",))),
        (2, lambda: ("GET", (f"/simple/{name}/",))),
    ]
    weights = [w for w, _ in choices]
    return rng.choices([c for _, c in choices], weights)[0]()


def classify_xmlrpc(tally: Tally, method: str, response: httpx.Response) -> None:
    if response.status_code != 200:
        tally.bad(f"http {response.status_code}", f"{method}: {response.text}")
        return
    if not response.headers.get("content-type", "").startswith("text/xml"):
        tally.bad("content type", f"{method}: {response.headers.get('content-type')}")
        return
    try:
        (value,), _ = xmlrpc.client.loads(response.content)
    except xmlrpc.client.Fault as fault:
        code: object = fault.faultCode  # whatever the wire said, typeshed's int notwithstanding
        text: object = fault.faultString
        if isinstance(code, int) and isinstance(text, str):
            tally.faults[code] += 1
        else:
            tally.bad("fault shape", f"{method}: {fault!r}")
        return
    except Exception as exc:  # an unreadable body, whatever the parser raises
        tally.bad("unparseable", f"{method}: {type(exc).__name__}: {exc}; {response.content[:120]!r}")
        return
    if method == "system.multicall":
        if not isinstance(value, list) or len(value) != 3:
            tally.bad("multicall shape", repr(value)[:200])
            return
        for entry in value:
            if isinstance(entry, list) and len(entry) == 1:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("faultCode"), int):
                tally.faults[entry["faultCode"]] += 1  # a sub-call's fault, counted with the others
                continue
            tally.bad("multicall entry", repr(entry)[:200])
            return
    tally.values += 1


def classify_get(tally: Tally, path: str, response: httpx.Response) -> None:
    tally.gets += 1
    if response.status_code not in (200, 304, 404, 502):
        tally.bad(f"GET http {response.status_code}", f"{path}: {response.text}")
        return
    if response.status_code != 304 and not response.content:
        tally.bad("GET empty body", f"{path}: {response.status_code}")
        return
    if response.status_code == 200 and path.endswith("/json"):
        try:
            json.loads(response.content)
        except ValueError:
            tally.bad("GET bad JSON", f"{path}: {response.content[:120]!r}")
            return
    tally.values += 1


async def client_loop(base: str, seed: int, deadline: float, budget: list[int], tally: Tally) -> None:
    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT, trust_env=False, limits=limits) as client:
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            method, params = pick_call(rng)
            started = time.perf_counter()
            try:
                if method == "GET":
                    response = await client.get(params[0])
                else:
                    body = xmlrpc.client.dumps(params, methodname=method).encode()
                    response = await client.post("/pypi", content=body, headers={"Content-Type": "text/xml"})
            except httpx.HTTPError as exc:
                tally.calls += 1
                tally.bad(f"transport {type(exc).__name__}", f"{method}{params!r}: {exc}")
                continue
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)
            tally.calls += 1
            if method == "GET":
                classify_get(tally, params[0], response)
            else:
                classify_xmlrpc(tally, method, response)


async def drive(base: str, clients: int, seconds: float, max_calls: int, seed: int) -> tuple[Tally, float]:
    tally = Tally()
    budget = [max_calls]
    started = time.monotonic()
    deadline = started + seconds
    loops = [client_loop(base, seed * 100_003 + i, deadline, budget, tally) for i in range(clients)]
    tasks = [asyncio.create_task(loop) for loop in loops]
    try:
        async with asyncio.timeout(seconds + REQUEST_TIMEOUT + 2):  # the last calls' answers, then no more
            await asyncio.gather(*tasks)
    except TimeoutError:
        tally.bad("client cancelled at the hard deadline", "")
    return tally, time.monotonic() - started


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- the run -------------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    fake = FakeIndex()
    flaky = FlakyIndex(fake, args.failure_rate, args.seed)
    with (
        tempfile.TemporaryDirectory(prefix="shim-load-") as tmp,
        serve_in_thread(flaky) as upstream,
    ):
        fake.set_urls(upstream + "/")
        with service(upstream + "/", Path(tmp), args.cache_soft_ttl) as (process, base):
            ready = wait_until_answering(base, process, path="/readyz", timeout=READY_TIMEOUT)
            rss_start = proc_status(process.pid, "VmRSS")
            tally, elapsed = Tally(), 0.0
            if ready:
                tally, elapsed = asyncio.run(drive(base, args.clients, args.seconds, args.max_calls, args.seed))
            alive = process.poll() is None
            rss_end = proc_status(process.pid, "VmRSS")
            rss_peak = proc_status(process.pid, "VmHWM")
            cpu = cpu_seconds(process.pid)
            health: dict[str, Any] = {}
            if alive:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    health = httpx.get(base + "/healthz", timeout=5, trust_env=False).json()
        exit_code = process.returncode
        log = (Path(tmp) / "service.log").read_text(errors="replace")
    errors = [line for line in log.splitlines() if "Traceback" in line or " ERROR" in line or "ERROR:" in line]
    return {
        "clients": args.clients,
        "seconds": args.seconds,
        "failure_rate": args.failure_rate,
        "seed": args.seed,
        "ready": ready,
        "elapsed_s": round(elapsed, 1),
        "calls": tally.calls,
        "calls_per_s": round(tally.calls / elapsed, 1) if elapsed else 0.0,
        "values": tally.values,
        "gets": tally.gets,
        "malformed": sum(tally.malformed.values()),
        "malformed_by_kind": dict(tally.malformed),
        "malformed_examples": tally.examples,
        "faults_by_code": {str(code): n for code, n in sorted(tally.faults.items())},
        "p50_ms": round(percentile(tally.latencies_ms, 0.50), 1),
        "p99_ms": round(percentile(tally.latencies_ms, 0.99), 1),
        "max_ms": round(max(tally.latencies_ms, default=0.0), 1),
        "service_alive": alive,
        "service_exit_code": exit_code,
        "service_rss_mb_start": round(rss_start or 0.0, 1),
        "service_rss_mb_end": round(rss_end or 0.0, 1),
        "service_rss_mb_peak": round(rss_peak or 0.0, 1),
        "service_cpu_s": round(cpu or 0.0, 1),
        "service_error_lines": len(errors),
        "service_error_examples": errors[:5],
        "stale_served": health.get("stale_served"),
        "upstream_health": health.get("upstream_health"),
        "upstream_requests": flaky.stats.requests,
        "upstream_failures": dict(flaky.stats.failures),
    }


def summary(result: dict[str, Any]) -> str:
    faults = ", ".join(f"{code}: {n}" for code, n in result["faults_by_code"].items()) or "none"
    failures = ", ".join(f"{kind} {n}" for kind, n in sorted(result["upstream_failures"].items())) or "none"
    lines = [
        f"load: {result['clients']} clients for {result['seconds']:g} s, upstream failing "
        f"{result['failure_rate']:.0%} (seed {result['seed']})",
        f"  calls served      {result['calls']} in {result['elapsed_s']} s ({result['calls_per_s']} calls/s); "
        f"{result['gets']} of them pass-through GETs",
        f"  well-formed       {result['values']} values",
        f"  malformed         {result['malformed']}"
        + (f"  {result['malformed_by_kind']}" if result["malformed"] else ""),
        f"  faults by code    {faults}",
        f"  latency           p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms",
        f"  service RSS       {result['service_rss_mb_start']} MB at start, {result['service_rss_mb_end']} MB at end "
        f"(peak {result['service_rss_mb_peak']} MB); {result['service_cpu_s']} s CPU",
        f"  service           {'alive to the end' if result['service_alive'] else 'DIED'}; stopped with exit code "
        f"{result['service_exit_code']}; {result['service_error_lines']} error lines logged; "
        f"{result['stale_served']} stale copies served",
        f"  upstream          {result['upstream_requests']} requests, failures injected: {failures}",
    ]
    lines += [f"  malformed example {e}" for e in result["malformed_examples"]]
    lines += [f"  service error     {e}" for e in result["service_error_examples"]]
    if not result["ready"]:
        lines.append(f"  the service was not ready within {READY_TIMEOUT:g} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients (default 200)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the clients call (default 60)")
    parser.add_argument("--failure-rate", type=float, default=0.1, help="fraction of upstream requests failed")
    parser.add_argument("--seed", type=int, default=1, help="seed of the failures and of the call mix")
    parser.add_argument("--max-calls", type=int, default=1_000_000, help="stop after this many calls in all")
    parser.add_argument(
        "--cache-soft-ttl",
        type=float,
        default=1.0,
        help="the service's SHIM_CACHE_SOFT_TTL (default 1 s, so that the flaky upstream is asked all along)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line after the summary")
    args = parser.parse_args(argv)
    if not (1 <= args.clients <= 5000 and 0 < args.seconds <= 3600 and 0 <= args.failure_rate <= 1):
        parser.error("--clients 1..5000, --seconds 0..3600, --failure-rate 0..1")
    result = run(args)
    print(summary(result), flush=True)
    if args.json:
        print(json.dumps(result), flush=True)
    return 0 if result["ready"] and result["malformed"] == 0 and result["service_alive"] else 1


if __name__ == "__main__":
    sys.exit(main())
