"""Measure the connection guards: slowloris, silent and non-reading clients against the service as its own process.

    python scripts/connections.py [--slowloris 1000] [--silent 2000] [--non-readers 40] [--answer-mb 20]
                                  [--seconds 60] [--nofile-soft 1024] [--json]

Run from the repository's root. Everything stays on 127.0.0.1: the fake index (testkit/fakeindex) is served in this
process with one project whose description is `--answer-mb` MB, and the service runs as `pypi-xmlrpc-shim` with the
settings of the environment (SHIM_IDLE_TIMEOUT=5 and the like shorten a run) and a soft open-files limit of
`--nofile-soft`, as a systemd unit's default. The attack opens its connections at once: slowloris ones send a
header line every `--line-every` seconds and never end their head, silent ones send nothing, non-readers ask for
the large answer and never read it. Meanwhile a normal client makes one call every half second. Every
`--report-every` seconds it prints the attack's connections still open as this side sees them, the service's
descriptors and memory, and the normal client's answers, failures and slowest call; it exits 1 if the service
died. Bounded by `--seconds` + 30. A connection the service never accepted (its listen queue overflowed in the
burst) stays open on this side while holding nothing of the service's: its descriptors tell what it holds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from testkit.attack import Attack  # noqa: E402
from testkit.fakeindex import FakeIndex  # noqa: E402
from testkit.proc import proc_status  # noqa: E402
from testkit.servers import free_port, serve_in_thread, wait_until_answering  # noqa: E402

CALL_TIMEOUT = 10.0


@dataclass
class Sample:
    second: float
    slowloris_open: int
    silent_open: int
    non_readers_open: int
    service_descriptors: int | None
    service_rss_mb: float | None
    normal_answers: int
    normal_failures: int
    normal_slowest_s: float


class Normal:
    def __init__(self) -> None:
        self.answers = self.failures = 0
        self.slowest = 0.0

    async def run(self, base: str, until: float) -> None:
        while time.monotonic() < until:
            started = time.monotonic()
            ok = await asyncio.to_thread(_one_call, base)
            self.slowest = max(self.slowest, time.monotonic() - started)
            if ok:
                self.answers += 1
            else:
                self.failures += 1
            await asyncio.sleep(0.5)


def _one_call(base: str) -> bool:
    socket.setdefaulttimeout(CALL_TIMEOUT)
    try:
        with xmlrpc.client.ServerProxy(base + "/pypi") as proxy:
            return bool(proxy.package_hosting_mode("roundup") == "pypi-only")
    except (OSError, xmlrpc.client.Error):
        return False


def _descriptors(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


async def measure(args: argparse.Namespace, port: int, process: subprocess.Popen[bytes]) -> list[Sample]:
    attack, normal = Attack(), Normal()
    started = time.monotonic()
    until = started + args.seconds
    call = xmlrpc.client.dumps(("big", "1.0"), "release_data").encode()
    big = b"POST /pypi HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s" % (
        len(call),
        call,
    )
    tasks = [asyncio.create_task(normal.run(f"http://127.0.0.1:{port}", until))]
    # The non-readers first, so that their requests are in progress before the flood can close them as idle.
    tasks += [asyncio.create_task(attack.hold("non_readers", port, big, None)) for _ in range(args.non_readers)]
    await asyncio.sleep(2)
    for kind, count, request, every in (
        ("slowloris", args.slowloris, b"POST /pypi HTTP/1.1\r\nHost: x\r\n", args.line_every),
        ("silent", args.silent, b"", None),
    ):
        tasks += [asyncio.create_task(attack.hold(kind, port, request, every)) for _ in range(count)]
    samples: list[Sample] = []
    while time.monotonic() < until and process.poll() is None:
        await asyncio.sleep(args.report_every)
        sample = Sample(
            round(time.monotonic() - started, 1),
            attack.open["slowloris"],
            attack.open["silent"],
            attack.open["non_readers"],
            _descriptors(process.pid),
            proc_status(process.pid, "VmRSS"),
            normal.answers,
            normal.failures,
            round(normal.slowest, 2),
        )
        samples.append(sample)
        if not args.json:
            print("  ".join(f"{k}={v}" for k, v in asdict(sample).items()), flush=True)
        normal.slowest = 0.0
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slowloris", type=int, default=1000)
    parser.add_argument("--silent", type=int, default=2000)
    parser.add_argument("--non-readers", type=int, default=40)
    parser.add_argument("--answer-mb", type=float, default=20)
    parser.add_argument("--line-every", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--report-every", type=float, default=5)
    parser.add_argument("--nofile-soft", type=int, default=1024)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.slowloris + args.silent + args.non_readers + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:  # this process holds the attack's sockets
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
        )

    def service_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile_soft, hard))

    fake = FakeIndex()
    fake.add_release("big", "1.0", info={"description": "x" * int(args.answer_mb * 1024 * 1024)})
    with serve_in_thread(fake) as index_url, tempfile.TemporaryDirectory() as state:
        fake.set_urls(index_url + "/")
        port = free_port()
        environ = {"SHIM_LOG_LEVEL": "warning", **os.environ, "SHIM_UPSTREAM": index_url + "/"}
        environ.update(SHIM_CATALOG_PATH=str(Path(state) / "catalog.sqlite3"), SHIM_RATE_LIMIT="off")
        with (Path(state) / "service.log").open("wb") as log:
            # The command as a deployment runs it, with the limit a systemd unit would give it by default.
            command = [str(Path(sys.executable).with_name("pypi-xmlrpc-shim")), "--port", str(port)]
            process = subprocess.Popen(command, env=environ, stdout=log, stderr=log, preexec_fn=service_limit)
            try:
                if not wait_until_answering(f"http://127.0.0.1:{port}", process, timeout=30):
                    print("the service did not start", file=sys.stderr)
                    return 1
                samples = asyncio.run(asyncio.wait_for(measure(args, port, process), args.seconds + 30))
                died = process.poll() is not None
            finally:
                if process.poll() is None:
                    process.terminate()
                    process.wait(30)
    if args.json:
        print(json.dumps({"samples": [asdict(s) for s in samples], "service_died": died}))
    elif samples:
        last = samples[-1]
        print(
            f"after {last.second} s: {last.slowloris_open} slowloris, {last.silent_open} silent and "
            f"{last.non_readers_open} non-reading connections open; the service at "
            f"{max(s.service_rss_mb or 0 for s in samples):.0f} MB at most, {last.service_rss_mb or 0:.0f} MB now; "
            f"the normal client: {last.normal_answers} answers, {last.normal_failures} failures"
        )
    return 1 if died else 0


if __name__ == "__main__":
    raise SystemExit(main())
