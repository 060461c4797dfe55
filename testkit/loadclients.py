"""The load script's clients: well-behaved ones making the call mix real clients make, and the hostile ones that
ask for the whole index in one multicall; each from its own loopback source address, so that the service's
per-client limits see as many clients as there are."""

from __future__ import annotations

import json
import random
import time
import xmlrpc.client
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["PROJECTS", "WHOLE_INDEX_CALLS", "Tally", "client_loop", "percentile", "pick_call", "whole_index_loop"]

REQUEST_TIMEOUT = 10.0  # seconds a client waits for one answer (also the drain after the deadline)
WHOLE_INDEX_TIMEOUT = 30.0  # seconds a whole-index multicall waits for its (large) answer
RATE_LIMITED = "HTTPTooManyRequests"

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


@dataclass
class Tally:
    calls: int = 0
    values: int = 0
    gets: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    faults: Counter[int] = field(default_factory=Counter)
    rate_limited: int = 0  # -32500 HTTPTooManyRequests faults and 429s: a client past its per-client limit
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


# One multicall of every whole-index method, the index's full list twice over and its whole journal.
WHOLE_INDEX_CALLS: list[dict[str, Any]] = [
    {"methodName": "list_packages_with_serial", "params": []},
    {"methodName": "list_packages", "params": []},
    {"methodName": "changelog_since_serial", "params": [0]},
    {"methodName": "changelog", "params": [0, True]},
    {"methodName": "browse", "params": [[]]},
]


def _fault(tally: Tally, code: int, text: str) -> None:
    tally.faults[code] += 1
    if RATE_LIMITED in text:
        tally.rate_limited += 1


def classify_xmlrpc(tally: Tally, method: str, response: httpx.Response, entries: int = 3) -> None:
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
            _fault(tally, code, text)
        else:
            tally.bad("fault shape", f"{method}: {fault!r}")
        return
    except Exception as exc:  # an unreadable body, whatever the parser raises
        tally.bad("unparseable", f"{method}: {type(exc).__name__}: {exc}; {response.content[:120]!r}")
        return
    if method == "system.multicall":
        if not isinstance(value, list) or len(value) != entries:
            tally.bad("multicall shape", repr(value)[:200])
            return
        for entry in value:
            if isinstance(entry, list) and len(entry) == 1:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("faultCode"), int):
                _fault(tally, entry["faultCode"], str(entry.get("faultString")))  # a sub-call's, with the others
                continue
            tally.bad("multicall entry", repr(entry)[:200])
            return
    tally.values += 1


def classify_get(tally: Tally, path: str, response: httpx.Response) -> None:
    tally.gets += 1
    if response.status_code == 429:
        tally.rate_limited += 1
        return
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


def _client(base: str, source: str, timeout: float) -> httpx.AsyncClient:
    """One connection, from `source` (a 127.x address): the service sees each client as a peer of its own."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    transport = httpx.AsyncHTTPTransport(local_address=source, limits=limits)
    return httpx.AsyncClient(base_url=base, timeout=timeout, trust_env=False, transport=transport)


async def client_loop(base: str, source: str, seed: int, deadline: float, budget: list[int], tally: Tally) -> None:
    rng = random.Random(seed)
    async with _client(base, source, REQUEST_TIMEOUT) as client:
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


async def whole_index_loop(base: str, source: str, deadline: float, tally: Tally) -> None:
    """A hostile client: the whole index in one multicall, again and again (each answer read in full)."""
    body = xmlrpc.client.dumps((WHOLE_INDEX_CALLS,), methodname="system.multicall").encode()
    async with _client(base, source, WHOLE_INDEX_TIMEOUT) as client:
        while time.monotonic() < deadline:
            tally.calls += 1
            try:
                response = await client.post("/pypi", content=body, headers={"Content-Type": "text/xml"})
            except httpx.HTTPError as exc:
                tally.bad(f"transport {type(exc).__name__}", f"whole-index multicall: {exc}")
                continue
            classify_xmlrpc(tally, "system.multicall", response, entries=len(WHOLE_INDEX_CALLS))


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
