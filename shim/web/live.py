"""The status page's live part: what the service has done since it started, read from memory only.

The figures are the merged ones `/metrics` shows (shim.metrics.figures: under `--workers` every worker's); the
upstream origins' health, the capabilities learnt, the Simple index and the shared store's state are this process's
own, as they stand. Nothing here waits on Redis, the catalog's file or the upstream: the catalog's figures are the
gauges the service samples in the background, "not yet" until it has.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from shim.metrics.figures import Figures, MethodFigures, read_figures
from shim.web.markup import Html, esc, markdown, table
from shim.xmlrpc.context import Services

__all__ = ["LIVE_ID", "REFRESH_SECONDS", "Live", "live_section", "read_live"]

LIVE_ID = "live"  # the element the page's script swaps for a fresh one
REFRESH_SECONDS = 5
NOT_YET = "not yet"
CIRCUIT_ORDER = ("closed", "half-open", "open")


@dataclass(frozen=True)
class Capability:
    name: str
    offered: bool | None
    learnt: str
    since: float | None


@dataclass(frozen=True)
class IndexCopy:
    projects: int
    last_serial: int | None
    is_json: bool
    serials: bool
    fetched_at: float


@dataclass(frozen=True)
class Live:
    figures: Figures
    origins: dict[str, dict[str, object]]  # each origin's guard report: its circuit and counts (this process)
    capabilities: list[Capability]
    index: IndexCopy | None
    shared: dict[str, object] | None  # the shared store's report; None without SHIM_CACHE_URL
    now: float


def read_live(services: Services, now: float | None = None) -> Live:
    """Everything the live part shows, from memory: no await, so nothing it reads can keep it waiting."""
    upstream = services.store.upstream
    capabilities = [
        Capability(capability.name, capability.offered, capability.learnt, capability.since)
        for capability in vars(services.store.capabilities).values()
    ]
    snapshot = services.index.snapshot
    index = None
    if snapshot is not None:
        listing = snapshot.listing
        index = IndexCopy(
            len(listing.names), listing.last_serial, snapshot.is_json, listing.serials is not None, snapshot.fetched_at
        )
    shared = services.shared
    return Live(
        read_figures(services.metrics),
        {origin: guard.report() for origin, guard in upstream.guards.items()},
        capabilities,
        index,
        None if shared is None else shared.report(),
        time.time() if now is None else now,
    )


def moment(posix: float | None) -> str:
    return NOT_YET if posix is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(posix))


def span(seconds: float | None) -> str:
    """`3 h 4 min`, `12 s`, `250 ms`, `0.4 ms`: a duration as a person reads it."""
    if seconds is None or math.isnan(seconds):
        return NOT_YET
    if seconds < 0.001:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, hours, days = int(seconds // 60), int(seconds // 3600), int(seconds // 86400)
    if days:
        return f"{days} d {hours % 24} h"
    if hours:
        return f"{hours} h {minutes % 60} min"
    return f"{minutes} min {int(seconds) % 60} s"


def amount(count: int | None) -> str:
    return NOT_YET if count is None else f"{count:,}"


def size(received: int) -> str:
    if received < 1024:
        return f"{received:,} B"
    scaled = float(received)
    for unit in ("KiB", "MiB", "GiB"):
        scaled /= 1024
        if scaled < 1024 or unit == "GiB":
            break
    return f"{scaled:.1f} {unit}"


def _faults(entry: MethodFigures) -> str:
    return ", ".join(f"{code} × {count:,}" for code, count in sorted(entry.faults.items())) or "none"


def _usage(figures: Figures) -> Html:
    methods = sorted(figures.methods.items(), key=lambda item: (-item[1].calls, item[0]))
    rows: list[list[object]] = [
        [Html(f"<code>{esc(name)}</code>"), f"{entry.calls:,}", _faults(entry), span(entry.p50), span(entry.p99)]
        for name, entry in methods
    ]
    if not rows:
        rows = [["no call yet", "0", "none", NOT_YET, NOT_YET]]
    return table(["Method", "Calls", "Faults (code × count)", "p50", "p99"], rows, id="usage")


def _clients(figures: Figures) -> Html:
    rows: list[list[object]] = [
        [family, f"{count:,}"] for family, count in sorted(figures.clients.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return table(["Client (User-Agent family)", "Requests"], rows or [["none yet", "0"]], id="clients")


def _state(word: str) -> Html:
    """A state word, marked for the style to colour (its class one of a known few, never the word itself)."""
    known = {"open": "open", "half-open": "half-open", "degraded": "degraded", "refusing": "degraded"}
    css = known.get(word)
    return Html(f"<span class='{css}'>{esc(word)}</span>") if css else esc(word)


def _worst(*states: str) -> str:
    return max(states, key=lambda s: CIRCUIT_ORDER.index(s) if s in CIRCUIT_ORDER else 0)


def _origins(live: Live) -> Html:
    figures = live.figures.origins
    rows: list[list[object]] = []
    for origin in sorted(set(live.origins) | set(figures)):
        report = live.origins.get(origin, {})
        counted = figures.get(origin)
        own = str(report.get("circuit", "closed"))
        circuit = _worst(own, counted.circuit) if counted is not None else own  # another worker's may be worse
        requests = ", ".join(f"{status} {n:,}" for status, n in sorted(counted.requests.items())) if counted else ""
        refused = sum(int(v) for k, v in report.items() if k.startswith("refused_") and isinstance(v, int))
        rows.append(
            [
                Html(f"<code>{esc(origin)}</code>"),
                _state(circuit),
                amount(int(str(report.get("consecutive_failures", 0)))),
                requests or "none",
                amount(counted.retries if counted else 0),
                size(counted.bytes if counted else 0),
                amount(refused),
            ]
        )
    header = ["Origin", "Circuit", "Failures in a row", "Requests by status", "Retries", "Received", "Refused"]
    return table(header, rows or [["none asked yet", "", "", "", "", "", ""]], id="origins")


def _offered(offered: bool | None) -> Html:
    if offered is None:
        return Html("<span class='unknown'>not known yet</span>")
    return Html("yes") if offered else Html("<span class='no'>no</span>")


def _capabilities(live: Live) -> Html:
    index = live.index
    rows: list[list[object]] = [
        ["JSON Simple API (PEP 691)", _offered(None if index is None else index.is_json), "the Simple index", ""],
        ["per-project serials", _offered(None if index is None else index.serials), "the Simple index", ""],
    ]
    rows += [
        [markdown(c.name), _offered(c.offered), c.learnt, "" if c.since is None else moment(c.since)]
        for c in live.capabilities
    ]
    return table(["Capability", "Offered", "Learnt from", "Since"], rows, id="capabilities")


def _figure(label: str, value: object, note: object = "") -> str:
    tail = f" <span class='hint'>{esc(note)}</span>" if note else ""
    return f"<li>{esc(label)}<b>{esc(value)}</b>{tail}</li>"


def _summary(live: Live) -> str:
    figures, catalog, index, shared = live.figures, live.figures.catalog, live.index, live.shared
    rate = figures.hit_rate
    lookups = ", ".join(f"{result} {n:,}" for result, n in sorted(figures.cache.items())) or "no lookup yet"
    # The catalog's gauges read 0 until the service has sampled the catalog, which sets its role gauge too: until
    # then its figures are "not yet", never a coverage of 0 that was not read.
    sampled = bool(catalog.roles)
    coverage = NOT_YET
    if sampled and catalog.covered is not None and catalog.projects is not None:
        share = f" ({catalog.covered / catalog.projects:.0%})" if catalog.projects else ""
        coverage = f"{catalog.covered:,} of {catalog.projects:,}{share}"
    roles = ", ".join(f"{role} {n}" for role, n in sorted(catalog.roles.items()) if n) or NOT_YET
    refused = ", ".join(f"{limit} {n:,}" for limit, n in sorted(figures.rate_limited.items())) or "none"
    shared_state = "none (SHIM_CACHE_URL unset)" if shared is None else str(shared.get("state", "unknown"))
    listed = NOT_YET if index is None else f"{index.projects:,} projects"
    serial = "" if index is None or index.last_serial is None else f"serial {index.last_serial:,}"
    return (
        "<ul class='figures'>"
        + _figure("Calls in progress", f"{figures.in_progress:,}")
        + _figure("Cache hit rate", NOT_YET if rate is None else f"{rate:.1%}", lookups)
        + _figure("Catalog coverage", coverage, "projects whose JSON it has read")
        + _figure("Crawl ETA", span(catalog.eta_seconds if sampled else None))
        + _figure("Feed lag", span(catalog.feed_lag_seconds if sampled else None), "behind the upstream's last serial")
        + _figure("Catalog role", roles)
        + _figure("Simple index", listed, serial or ("" if index is None else f"read {moment(index.fetched_at)}"))
        + _figure("Shared store", shared_state)
        + _figure("Rate-limit refusals", refused)
        + "</ul>\n"
    )


def live_section(live: Live) -> Html:
    """The part the page's script refreshes: a whole `<section>`, served alone on `?live`."""
    figures = live.figures
    started = "" if figures.started is None else f"Since {moment(figures.started)} ({span(live.now - figures.started)}"
    stamp = f"{started}{'); ' if started else ''}as of {moment(live.now)}."
    return Html(
        f"<section id='{LIVE_ID}' data-refresh='{REFRESH_SECONDS}' aria-live='polite'>\n"
        f"<h2>Live</h2>\n<p class='stamp'>{esc(stamp)} <span id='refreshing'></span>"
        "<noscript>Reload the page for fresh figures.</noscript></p>\n"
        + _summary(live)
        + "<h3>Usage since start</h3>\n"
        + _usage(figures)
        + "<h3>Clients</h3>\n"
        + _clients(figures)
        + "<h3>Upstream origins</h3>\n"
        + _origins(live)
        + "<h3>Capabilities of the upstream</h3>\n"
        + _capabilities(live)
        + "</section>\n"
    )
