"""Load the service: many concurrent XML-RPC clients over a fake upstream that fails a set fraction of requests,
then the same run with a fraction of the clients hostile, side by side.

    python scripts/load.py --clients 200 --seconds 60 --failure-rate 0.1 --hostile 0.1 [--seed 1] [--json]

Run from the repository's root. Everything stays on 127.0.0.1: the fake index (testkit/fakeindex, grown by
`--index-projects` projects and one whose description is `--answer-mb` MB) is served in this process behind a
wrapper that fails the set fraction of its requests (503, a truncated body, or a slow answer; seeded), and the
service runs as its own process (`python -m shim`, a fresh one per run), whose memory is read from /proc. The
service keeps its default settings, rate limits included, but for the short cache TTL below: each client calls
from a loopback address of its own (127.1.x.y; the hostile ones 127.2.x.y), so that each stays within the default
per-client limits. Clients loop until the deadline or the call cap. Every answer is classified: a well-formed
value, a fault (by code), or malformed (for XML-RPC anything but HTTP 200 text/xml that xmlrpc.client reads; for the
pass-through GETs, a status other than 200/304/404/429/502, or no body); a rate-limit refusal is counted apart.

With `--hostile F`, a second run replaces that fraction of the clients by hostile ones, a third each: slowloris
connections (a header line every 2 s, never ending the head), clients that ask for the large answer and never read
it, and clients sending one multicall of every whole-index method again and again. It prints the well-behaved
clients' calls and p50/p99 latency and the service's RSS (start, peak, end) for both runs. Exits 1 when any answer
was malformed, a well-behaved client was rate limited, the service died, or a bound (`--max-p99-ratio`,
`--min-calls-ratio`, `--max-rss-mb`) is broken; each run is bounded by `--seconds` + 30.

With `--replicas N` (N > 1) each run serves from N service processes over one real redis-server (started here on a
free loopback port, `SHIM_CACHE_URL`), each client calling one of them (client i the (i mod N)-th), and a last run
has the same N replicas without Redis, for comparison. Each run prints the upstream requests per distinct document
(the JSON, Simple and metadata documents the cache keeps; not the files it streams nor the RSS feeds each catalog
polls): 1.0 when the replicas share one cache and nothing expires or fails (`--failure-rate 0`, a soft TTL longer
than the run), N without Redis. `--max-per-document X` makes a shared run above X a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import xmlrpc.client
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from testkit.attack import Attack, loopback  # noqa: E402
from testkit.fakeindex import FakeIndex  # noqa: E402
from testkit.flaky import FlakyIndex  # noqa: E402
from testkit.loadclients import REQUEST_TIMEOUT, Tally, client_loop, percentile, whole_index_loop  # noqa: E402
from testkit.proc import cpu_seconds, proc_status  # noqa: E402
from testkit.redisserver import running_redis  # noqa: E402
from testkit.servers import serve_in_thread, wait_until_answering  # noqa: E402
from testkit.shimprocess import service  # noqa: E402

READY_TIMEOUT = 15.0  # seconds for the service to load its first Simple index
LINE_EVERY = 2.0  # seconds between a slowloris connection's header lines
HOSTILE_KINDS = ("slowloris", "non_readers", "whole_index")

# The bounds a run with 10% hostile clients shows (README, "Load"): the well-behaved clients' p99 latency at most
# this many times the plain run's, their calls per client at least this share of the plain run's, the peak RSS.
MAX_P99_RATIO = 2.0
MIN_CALLS_RATIO = 0.6
MAX_RSS_MB = 250.0

# --- the clients ---------------------------------------------------------------------------------------------------


async def _again(kind: str, attack: Attack, port: int, request: bytes, source: str, deadline: float) -> None:
    """One hostile connection after another from `source`, until the deadline: the service closes each in turn."""
    while time.monotonic() < deadline:
        started = time.monotonic()
        await attack.hold(kind, port, request, LINE_EVERY if kind == "slowloris" else None, source)
        if time.monotonic() - started < 0.1:  # refused at once: no busy loop
            await asyncio.sleep(0.1)


def _big_request() -> bytes:
    call = xmlrpc.client.dumps(("big", "1.0"), "release_data").encode()
    head = f"POST /pypi HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {len(call)}\r\n\r\n"
    return head.encode() + call


async def drive(bases: list[str], args: argparse.Namespace, hostile: int) -> tuple[Tally, Tally, Attack, float]:
    """`args.clients - hostile` well-behaved clients and `hostile` hostile ones (a third of each kind), each on one of
    the services at `bases` in turn."""
    tally, whole = Tally(), Tally()
    attack = Attack()
    budget = [args.max_calls]
    started = time.monotonic()
    deadline = started + args.seconds
    loops = [
        client_loop(bases[i % len(bases)], loopback(1, i), args.seed * 100_003 + i, deadline, budget, tally)
        for i in range(args.clients - hostile)
    ]
    requests = {"slowloris": b"POST /pypi HTTP/1.1\r\nHost: x\r\n", "non_readers": _big_request()}
    attackers: list[Coroutine[Any, Any, None]] = []
    for j in range(hostile):
        kind, source = HOSTILE_KINDS[j % 3], loopback(2, j)
        base = bases[j % len(bases)]
        port = int(base.rsplit(":", 1)[1])
        if kind == "whole_index":
            attackers.append(whole_index_loop(base, source, deadline, whole))
        else:
            attackers.append(_again(kind, attack, port, requests[kind], source, deadline))
    tasks = [asyncio.create_task(loop) for loop in loops]
    hostile_tasks = [asyncio.create_task(loop) for loop in attackers]
    try:
        async with asyncio.timeout(args.seconds + REQUEST_TIMEOUT + 2):  # the last calls' answers, then no more
            await asyncio.gather(*tasks)
    except TimeoutError:
        tally.bad("client cancelled at the hard deadline", "")
    elapsed = time.monotonic() - started
    for task in hostile_tasks:  # a whole-index answer or a held connection in progress is dropped
        task.cancel()
    await asyncio.gather(*hostile_tasks, return_exceptions=True)
    return tally, whole, attack, elapsed


# --- the run -------------------------------------------------------------------------------------------------------


def changed_settings(args: argparse.Namespace) -> dict[str, str]:
    """The settings the runs change from the service's defaults (and only these)."""
    # A short cache TTL, so that the flaky upstream is asked all along rather than once per document.
    return {"SHIM_CACHE_SOFT_TTL": f"{args.cache_soft_ttl:g}"}


def is_document(path: str) -> bool:
    """A path whose answer the document cache keeps: not a file it streams, nor a feed each catalog polls."""
    return not path.startswith(("/files/", "/rss/"))


def one_run(
    args: argparse.Namespace, flaky: FlakyIndex, upstream: str, hostile: int, redis_url: str | None = None
) -> dict[str, Any]:
    """One run against `args.replicas` service processes, over `redis_url` when given (else each on its own)."""
    requests_before, failures_before = flaky.stats.requests, Counter(flaky.stats.failures)
    paths_before = Counter(flaky.stats.paths)
    settings = changed_settings(args) | ({"SHIM_CACHE_URL": redis_url} if redis_url else {})
    with tempfile.TemporaryDirectory(prefix="shim-load-") as tmp, contextlib.ExitStack() as services:
        # Each replica as on a machine of its own: its own state folder (catalog, log).
        started = [
            services.enter_context(service(upstream, Path(tmp) / str(n), settings)) for n in range(args.replicas)
        ]
        ready = all(wait_until_answering(base, p, path="/readyz", timeout=READY_TIMEOUT) for p, base in started)
        rss_start = max(proc_status(p.pid, "VmRSS") or 0.0 for p, _ in started)
        tally, whole, attack, elapsed = Tally(), Tally(), Attack(), 0.0
        if ready:
            tally, whole, attack, elapsed = asyncio.run(drive([base for _, base in started], args, hostile))
        alive = all(p.poll() is None for p, _ in started)
        rss_end = max(proc_status(p.pid, "VmRSS") or 0.0 for p, _ in started)
        rss_peak = max(proc_status(p.pid, "VmHWM") or 0.0 for p, _ in started)
        cpu = sum(cpu_seconds(p.pid) or 0.0 for p, _ in started)
        health: dict[str, Any] = {}
        if alive:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                health = httpx.get(started[0][1] + "/healthz", timeout=5, trust_env=False).json()
        services.close()
        exit_code = next((p.returncode for p, _ in started if p.returncode), started[0][0].returncode)
        log = "".join((Path(tmp) / str(n) / "service.log").read_text(errors="replace") for n in range(args.replicas))
    errors = [line for line in log.splitlines() if "Traceback" in line or " ERROR" in line or "ERROR:" in line]
    documents = {path: n for path, n in (flaky.stats.paths - paths_before).items() if is_document(path)}
    return {
        "ready": ready,
        "replicas": args.replicas,
        "shared": redis_url is not None,
        "documents": len(documents),
        "document_requests": sum(documents.values()),
        "requests_per_document": round(sum(documents.values()) / len(documents), 3) if documents else 0.0,
        "asked_again": dict(sorted(((p, n) for p, n in documents.items() if n > 1), key=lambda pn: -pn[1])[:10]),
        "well_behaved_clients": args.clients - hostile,
        "hostile_clients": hostile,
        "source_addresses": args.clients - hostile,
        "elapsed_s": round(elapsed, 1),
        "calls": tally.calls,
        "calls_per_s": round(tally.calls / elapsed, 1) if elapsed else 0.0,
        "values": tally.values,
        "gets": tally.gets,
        "malformed": sum(tally.malformed.values()),
        "malformed_by_kind": dict(tally.malformed),
        "malformed_examples": tally.examples,
        "rate_limited": tally.rate_limited,
        "faults_by_code": {str(code): n for code, n in sorted(tally.faults.items())},
        "p50_ms": round(percentile(tally.latencies_ms, 0.50), 1),
        "p99_ms": round(percentile(tally.latencies_ms, 0.99), 1),
        "max_ms": round(max(tally.latencies_ms, default=0.0), 1),
        "hostile": {
            "slowloris": {"connections": attack.opened["slowloris"]},
            "non_readers": {"connections": attack.opened["non_readers"]},
            "whole_index": {
                "answers": whole.values,
                "calls": whole.calls,
                "faults_by_code": {str(code): n for code, n in sorted(whole.faults.items())},
                "rate_limited": whole.rate_limited,
                "malformed": sum(whole.malformed.values()),
                "malformed_examples": whole.examples,
            },
        },
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
        "upstream_requests": flaky.stats.requests - requests_before,
        "upstream_failures": dict(Counter(flaky.stats.failures) - failures_before),
    }


def fake_index(args: argparse.Namespace) -> FakeIndex:
    """The fixtures, `--index-projects` more (so that a whole-index answer is large) and one large answer."""
    fake = FakeIndex()
    for i in range(args.index_projects):
        fake.add_release(f"load-{i:06d}", "1.0", info={"summary": f"Load project {i}"})
    fake.add_release("big", "1.0", info={"description": "x" * int(args.answer_mb * 1024 * 1024)})
    return fake


def broken_bounds(args: argparse.Namespace, plain: dict[str, Any], hostile: dict[str, Any]) -> list[str]:
    broken = []
    if hostile["p99_ms"] > args.max_p99_ratio * max(plain["p99_ms"], 1.0):
        broken.append(f"p99 {hostile['p99_ms']} ms > {args.max_p99_ratio:g} x the plain run's {plain['p99_ms']} ms")
    if hostile["calls"] < args.min_calls_ratio * plain["calls"] * hostile["well_behaved_clients"] / args.clients:
        broken.append(f"calls {hostile['calls']} < {args.min_calls_ratio:g} x the plain run's {plain['calls']}")
    if hostile["service_rss_mb_peak"] > args.max_rss_mb:
        broken.append(f"peak RSS {hostile['service_rss_mb_peak']} MB > {args.max_rss_mb:g} MB")
    return broken


def run(args: argparse.Namespace) -> dict[str, Any]:
    fake = fake_index(args)
    flaky = FlakyIndex(fake, args.failure_rate, args.seed)
    result: dict[str, Any] = {
        "clients": args.clients,
        "seconds": args.seconds,
        "failure_rate": args.failure_rate,
        "hostile_fraction": args.hostile,
        "seed": args.seed,
        "service_settings": changed_settings(args),
    }
    with serve_in_thread(flaky) as upstream, contextlib.ExitStack() as stack:
        fake.set_urls(upstream + "/")
        redis_url = stack.enter_context(running_redis()).url if args.replicas > 1 else None
        result["plain"] = one_run(args, flaky, upstream + "/", 0, redis_url)
        if args.hostile > 0:
            hostile = max(3, round(args.clients * args.hostile))
            result["hostile"] = one_run(args, flaky, upstream + "/", hostile, redis_url)
        if redis_url is not None:  # the same replicas, each with its own cache, limits and circuit
            result["unshared"] = one_run(args, flaky, upstream + "/", 0)
    if args.max_per_document is not None:
        result.setdefault("bounds", {})["max_per_document"] = args.max_per_document
    if args.max_per_document is not None and result["plain"]["requests_per_document"] > args.max_per_document:
        result.setdefault("broken_bounds", []).append(
            f"{result['plain']['requests_per_document']} upstream requests per document > {args.max_per_document:g}"
        )
    if "hostile" in result:
        result.setdefault("bounds", {}).update(max_p99_ratio=args.max_p99_ratio, min_calls_ratio=args.min_calls_ratio)
        result["bounds"]["max_rss_mb"] = args.max_rss_mb
        result["broken_bounds"] = result.get("broken_bounds", []) + broken_bounds(
            args, result["plain"], result["hostile"]
        )
    return result


def well(run: dict[str, Any]) -> bool:
    whole = run["hostile"]["whole_index"]["malformed"]
    return bool(
        run["ready"] and run["service_alive"] and not run["malformed"] and not run["rate_limited"] and not whole
    )


def summary(result: dict[str, Any]) -> str:
    runs = [(name, result[name]) for name in ("plain", "hostile", "unshared") if name in result]
    lines = [
        f"load: {result['clients']} clients for {result['seconds']:g} s per run, upstream failing "
        f"{result['failure_rate']:.0%} (seed {result['seed']}); settings changed: {result['service_settings']}",
        f"  {'':24}" + "".join(f"{name:>28}" for name, _ in runs),
    ]

    def row(label: str, cell: Any) -> None:
        lines.append(f"  {label:24}" + "".join(f"{cell(r):>28}" for _, r in runs))

    row("replicas", lambda r: f"{r['replicas']}" + (" on one Redis" if r["shared"] else ", each its own"))
    row(
        "upstream req / document",
        lambda r: f"{r['requests_per_document']:g} ({r['document_requests']}/{r['documents']})",
    )
    row("clients (hostile)", lambda r: f"{r['well_behaved_clients']} ({r['hostile_clients']})")
    row("calls (per s)", lambda r: f"{r['calls']} ({r['calls_per_s']})")
    row("well-formed / GETs", lambda r: f"{r['values']} / {r['gets']}")
    row("malformed", lambda r: str(r["malformed"]))
    row("rate limited", lambda r: str(r["rate_limited"]))
    row("faults by code", lambda r: ", ".join(f"{c}: {n}" for c, n in r["faults_by_code"].items()) or "none")
    row("p50 / p99 / max ms", lambda r: f"{r['p50_ms']:g} / {r['p99_ms']:g} / {r['max_ms']:g}")
    row(
        "RSS MB start/peak/end",
        lambda r: f"{r['service_rss_mb_start']}/{r['service_rss_mb_peak']}/{r['service_rss_mb_end']}",
    )
    row("service CPU s", lambda r: str(r["service_cpu_s"]))
    row("service", lambda r: ("alive" if r["service_alive"] else "DIED") + f", exit {r['service_exit_code']}")
    row("error lines / stale", lambda r: f"{r['service_error_lines']} / {r['stale_served']}")
    row("upstream req (failed)", lambda r: f"{r['upstream_requests']} ({sum(r['upstream_failures'].values())})")
    row("slowloris connections", lambda r: str(r["hostile"]["slowloris"]["connections"]))
    row("non-reader connections", lambda r: str(r["hostile"]["non_readers"]["connections"]))
    row(
        "whole-index answers",
        lambda r: f"{r['hostile']['whole_index']['answers']} of {r['hostile']['whole_index']['calls']}",
    )
    for name, r in runs:
        lines += [f"  {name} malformed example {e}" for e in r["malformed_examples"]]
        lines += [f"  {name} whole-index malformed {e}" for e in r["hostile"]["whole_index"]["malformed_examples"]]
        lines += [f"  {name} service error {e}" for e in r["service_error_examples"]]
        if not r["ready"]:
            lines.append(f"  {name}: the service was not ready within {READY_TIMEOUT:g} s")
    if "broken_bounds" in result:
        lines.append(f"  bounds {result.get('bounds', {})}: " + ("; ".join(result["broken_bounds"]) or "all kept"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients (default 200)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the clients call, per run (default 60)")
    parser.add_argument("--failure-rate", type=float, default=0.1, help="fraction of upstream requests failed")
    parser.add_argument("--hostile", type=float, default=0.0, help="fraction of clients hostile in a second run")
    parser.add_argument("--seed", type=int, default=1, help="seed of the failures and of the call mix")
    parser.add_argument("--max-calls", type=int, default=1_000_000, help="stop after this many calls in all")
    parser.add_argument("--index-projects", type=int, default=5000, help="projects added to the fake index")
    parser.add_argument("--answer-mb", type=float, default=5.0, help="size of the answer non-readers ask for")
    parser.add_argument(
        "--cache-soft-ttl",
        type=float,
        default=1.0,
        help="the service's SHIM_CACHE_SOFT_TTL (default 1 s, so that the flaky upstream is asked all along)",
    )
    parser.add_argument("--max-p99-ratio", type=float, default=MAX_P99_RATIO, help="bound: hostile p99 / plain p99")
    parser.add_argument("--min-calls-ratio", type=float, default=MIN_CALLS_RATIO, help="bound: calls, hostile/plain")
    parser.add_argument("--max-rss-mb", type=float, default=MAX_RSS_MB, help="bound: the hostile run's peak RSS")
    parser.add_argument("--replicas", type=int, default=1, help="service processes, over one Redis when above 1")
    parser.add_argument(
        "--max-per-document", type=float, default=None, help="bound: upstream requests per document, shared run"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line after the summary")
    args = parser.parse_args(argv)
    if not (10 <= args.clients <= 5000 and 0 < args.seconds <= 3600 and 0 <= args.failure_rate <= 1):
        parser.error("--clients 10..5000, --seconds 0..3600, --failure-rate 0..1")
    if not 1 <= args.replicas <= 8:
        parser.error("--replicas 1..8")
    if not (0 <= args.hostile <= 0.5 and 0 <= args.index_projects <= 200_000 and 0 < args.answer_mb <= 100):
        parser.error("--hostile 0..0.5, --index-projects 0..200000, --answer-mb 0..100")
    result = run(args)
    print(summary(result), flush=True)
    if args.json:
        print(json.dumps(result), flush=True)
    runs = [result[name] for name in ("plain", "hostile", "unshared") if name in result]
    return 0 if all(well(r) for r in runs) and not result.get("broken_bounds") else 1


if __name__ == "__main__":
    sys.exit(main())
