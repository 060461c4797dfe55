"""The benchmark's figures and the calls that take them: the service as its own process, one XML-RPC call fetched
as xmlrpc.client would, every answer checked, and the whole-index figures against a generated upstream."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import statistics
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .bigindex import RARE_WORD, normalize
from .proc import proc_status
from .servers import wait_until_answering
from .shimprocess import service as shim_service

__all__ = [
    "FIGURES",
    "Figure",
    "WrongAnswer",
    "fetch_raw",
    "index_figures",
    "median_time",
    "ratio",
    "service",
    "xmlrpc_call",
]

WORDS = ("django", "py", RARE_WORD)  # two common words (many hits), one rare (a handful)
CALL_TIMEOUT = 120.0

# Figure names, in the table's order (the bench's test checks that its output lists each).
FIGURES = (
    "cache-hit calls/s: service",
    "cache-hit calls/s: bare Starlette, fixed bytes",
    "cache-hit calls/s: parse-and-answer endpoint",
    "cache-hit calls/s: stdlib threaded SimpleXMLRPCServer",
    "cache-hit calls/s: service --workers 2",
    "RSS of each worker, --workers 2 (MB)",
    "RSS after whole-index calls (MB)",
    "peak RSS, VmHWM (MB)",
    "list_packages_with_serial bytes, gzip",
    "list_packages_with_serial bytes, identity",
    "cached list_packages_with_serial (s)",
    "xmlrpc.client.dumps of the same struct (s)",
    "readiness: start to /readyz 200 (s)",
    "json.loads of the index body (s)",
    *(f"search name {word!r} (s)" for word in WORDS),
    *(f"substring scan {word!r} (s)" for word in WORDS),
    "search: common vs rare word",
    "RSS of each worker over the whole index, --workers 2 (MB)",
    "start to the first list_packages answered (s)",
)


class WrongAnswer(Exception):
    """A fault, a malformed answer or a wrong value: the one thing that fails the benchmark."""


@dataclass(frozen=True)
class Figure:
    name: str
    value: float | None
    ratio: float | None
    target: str  # "<= 250", ">= 0.8"; "" or "(...)": none
    unit: str = ""
    judged: str = "ratio"  # what the target bounds: "ratio", or "value" (the RSS)

    @property
    def met(self) -> str:
        if not self.target.startswith(("<=", ">=")):
            return ""
        measured = self.value if self.judged == "value" else self.ratio
        if measured is None:
            return "not met"
        bound = float(self.target[2:])
        return "met" if (measured <= bound if self.target.startswith("<=") else measured >= bound) else "not met"

    def as_json(self) -> dict[str, Any]:
        return {
            "figure": self.name,
            "value": self.value,
            "unit": self.unit,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
        }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def median_time(step: Callable[[], object], times: int) -> float:
    taken = []
    for _ in range(times):
        started = time.perf_counter()
        step()
        taken.append(time.perf_counter() - started)
    return statistics.median(taken)


@contextlib.contextmanager
def service(
    upstream: str, state: Path, changed: dict[str, str], *, wait: bool = True
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The service with its defaults but the rate limit (off: every benchmark connection comes from one address)."""
    with shim_service(upstream, state, {"SHIM_RATE_LIMIT": "off", **changed}) as (process, base):
        if wait and not wait_until_answering(base, process, timeout=60.0):
            raise WrongAnswer(f"the service did not start: {(state / 'service.log').read_text()[-2000:]}")
        yield process, base


def fetch_raw(base: str, method: str, params: tuple[Any, ...], *, accept_gzip: bool) -> tuple[bytes, str]:
    """POST one call as xmlrpc.client's Transport does (its headers); the body as it came off the wire, undecoded,
    and its Content-Encoding. An HTTP status other than 200 or a non-XML answer is a wrong answer."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=CALL_TIMEOUT)
    try:
        headers = {
            "User-Agent": f"Python-xmlrpc/{sys.version_info.major}.{sys.version_info.minor}",
            "Content-Type": "text/xml",
            "Accept-Encoding": "gzip" if accept_gzip else "identity",
        }
        connection.request("POST", "/pypi", xmlrpc.client.dumps(params, method).encode(), headers)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200 or not (response.getheader("Content-Type") or "").startswith("text/xml"):
            raise WrongAnswer(f"{method}: HTTP {response.status} {response.getheader('Content-Type')}: {body[:200]!r}")
        return body, (response.getheader("Content-Encoding") or "identity").lower()
    finally:
        connection.close()


def decoded(body: bytes, encoding: str) -> bytes:
    if encoding in ("gzip", "x-gzip"):
        return gzip.decompress(body)
    if encoding == "identity":
        return body
    import zlib

    if encoding == "deflate":
        return zlib.decompress(body)
    raise WrongAnswer(f"an answer in an unknown Content-Encoding: {encoding}")


def xmlrpc_call(base: str, method: str, params: tuple[Any, ...], *, what: str = "the service") -> bytes:
    """One call's answer bytes (decoded); a fault or an answer xmlrpc.client cannot read is a wrong answer."""
    body, encoding = fetch_raw(base, method, params, accept_gzip=False)
    body = decoded(body, encoding)
    value(body, f"{what}: {method}{params!r}")
    return body


def value(body: bytes, what: str) -> Any:
    try:
        return xmlrpc.client.loads(body, use_builtin_types=True)[0][0]
    except xmlrpc.client.Fault as fault:
        raise WrongAnswer(f"{what} answered fault {fault.faultCode}: {fault.faultString}") from None
    except Exception as exc:  # expat's and the unmarshaller's errors alike: the answer is malformed
        raise WrongAnswer(f"{what} answered a malformed body ({exc}): {body[:200]!r}") from None


def _readyz(base: str, process: subprocess.Popen[bytes], timeout: float) -> float:
    """When /readyz first answered 200 (the first Simple index loaded), by time.monotonic()."""
    if not wait_until_answering(base, process, path="/readyz", timeout=timeout):
        raise WrongAnswer(f"/readyz never answered 200 within {timeout:.0f} s")
    return time.monotonic()


def _ready(base: str, process: subprocess.Popen[bytes], timeout: float) -> tuple[bytes, float]:
    """Call list_packages until it answers (a refused connection or a fault means not yet): its answer, and when
    it had arrived whole (time.monotonic()), before this process read it: readiness is the service's time, not the
    benchmark's own parse of 45 MB."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline and process.poll() is None:
        try:
            body, encoding = fetch_raw(base, "list_packages", (), accept_gzip=False)
            arrived = time.monotonic()
            body = decoded(body, encoding)
            value(body, "the service: list_packages()")
            return body, arrived
        except (OSError, http.client.HTTPException) as exc:
            last = str(exc)
        except WrongAnswer as exc:
            last = str(exc)
        time.sleep(0.05)
    raise WrongAnswer(f"list_packages never answered within {timeout:.0f} s ({last})")


def _search(base: str, word: str, names: list[str]) -> Callable[[], None]:
    every = {key for key in map(normalize, names) if word in key}

    def call() -> None:
        hits = value(xmlrpc_call(base, "search", ({"name": word},)), f"search name {word!r}")
        found = {normalize(hit["name"]) for hit in hits} if isinstance(hits, list) else None
        if found is None or not found or not found <= every or len(hits) > 100:
            raise WrongAnswer(f"search name {word!r} answered {str(hits)[:300]}")
        if len(every) <= 100 and found != every:
            raise WrongAnswer(f"search name {word!r} found {sorted(found)}, not {sorted(every)}")

    return call


def index_figures(
    big: str, state: Path, listing: list[dict[str, Any]], loads_time: float, short: bool, problems: list[str]
) -> list[Figure]:
    names = [project["name"] for project in listing]
    serials = {project["name"]: project["_last-serial"] for project in listing}
    repeat = 1 if short else 3
    started = time.monotonic()
    with service(big, state / "whole", {}, wait=False) as (process, base):
        ready = _readyz(base, process, 60.0 if short else 900.0) - started
        first, arrived = _ready(base, process, 60.0 if short else 900.0)
        answered = arrived - started
        listed = value(first, "list_packages")
        del first
        if sorted(listed) != sorted(names):
            problems.append(f"list_packages answered {len(listed)} names, not the index's {len(names)}")
        zipped, encoding = fetch_raw(base, "list_packages_with_serial", (), accept_gzip=True)
        plain, _ = fetch_raw(base, "list_packages_with_serial", (), accept_gzip=False)
        if decoded(zipped, encoding) != plain:
            problems.append("list_packages_with_serial answered other bytes when asked for gzip")
        if value(plain, "list_packages_with_serial") != serials:
            problems.append("list_packages_with_serial's struct is not the index's names and serials")
        fetch = median_time(lambda: fetch_raw(base, "list_packages_with_serial", (), accept_gzip=True), repeat + 2)
        dumps = median_time(lambda: xmlrpc.client.dumps((serials,), methodresponse=True), repeat)
        searches, scans = [], []
        for word in WORDS:
            search = _search(base, word, names)
            search()  # the first: it may read the JSON of its best matches
            searches.append(median_time(search, repeat))
            scans.append(median_time(lambda w=word: [n for n in names if w in n], repeat))  # type: ignore[misc]
        rss, peak = proc_status(process.pid, "VmRSS"), proc_status(process.pid, "VmHWM")
    return [
        Figure(FIGURES[6], rss, None, "<= 250", "MB", judged="value"),
        Figure(FIGURES[7], peak, None, "", "MB"),
        Figure(FIGURES[8], len(zipped), ratio(len(plain), len(zipped)), ">= 5", "B"),
        Figure(FIGURES[9], len(plain), None, "", "B"),
        Figure(FIGURES[10], fetch, ratio(dumps, fetch), ">= 4"),
        Figure(FIGURES[11], dumps, None, ""),
        Figure(FIGURES[12], ready, ratio(ready, loads_time), "<= 4"),
        Figure(FIGURES[13], loads_time, None, ""),
        *(Figure(FIGURES[14 + i], s, ratio(s, scans[i]), "<= 3") for i, s in enumerate(searches)),
        *(Figure(FIGURES[17 + i], s, None, "") for i, s in enumerate(scans)),
        Figure(FIGURES[20], None, ratio(max(searches[:-1]), searches[-1]), "<= 2"),
        Figure(FIGURES[22], answered, ratio(answered, loads_time), ""),
    ]


def children_rss(pid: int) -> list[float]:
    """The VmRSS of each child of `pid` (a supervisor's workers), in MB."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [rss for kid in kids if (rss := proc_status(int(kid), "VmRSS")) is not None]


def workers_figure(big: str, state: Path, short: bool) -> Figure:
    """What each worker costs at the index's size: `--workers 2` over it, both whole-index answers asked of each
    worker (calls spread over the two), the largest worker's VmRSS."""
    with service(big, state / "whole-workers", {"SHIM_WORKERS": "2"}, wait=False) as (process, base):
        _ready(base, process, 60.0 if short else 900.0)
        for _ in range(4):  # new connections each: both workers answer some
            for method in ("list_packages", "list_packages_with_serial"):
                fetch_raw(base, method, (), accept_gzip=True)
        rss = children_rss(process.pid)
    return Figure(FIGURES[21], max(rss, default=None), None, "", "MB")
