"""Every metric the service exposes, stated once: name, kind, labels, meaning, and how the workers' values merge.

The instruments (shim.metrics.instruments), the README's list of metrics and its test are made from `METRICS`.
prometheus_client's multiprocess mode (`--workers` above 1) merges counters and histograms by summing each
worker's; a gauge merges as its `merge` says (a `live` mode forgets a worker once it has died). That mode carries no
Info, Enum or callback gauge, so what would be one is a plain gauge here, set by the service, with its merge stated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DURATION_BUCKETS", "METRICS", "MetricSpec", "by_name"]

Kind = Literal["counter", "gauge", "histogram"]
Merge = Literal["livesum", "livemax", "livemin", "livemostrecent", "max", "min"]

# Seconds: a cache-hit call takes about 50 µs, a cold one an upstream round trip or several, a whole-index one more.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as exposed (a counter's `_total` is added by prometheus_client)
    kind: Kind
    meaning: str
    labels: tuple[str, ...] = ()
    merge: Merge | None = None  # gauges only: how `--workers` merge (counters and histograms sum)

    @property
    def exposed(self) -> str:
        return self.name + "_total" if self.kind == "counter" else self.name

    @property
    def merged(self) -> str:
        """How the values of several workers make one, as the README says it."""
        if self.kind != "gauge":
            return "sum"
        assert self.merge is not None
        words = {"sum": "sum", "max": "highest", "min": "lowest", "mostrecent": "latest set"}
        live = self.merge.startswith("live")
        return words[self.merge.removeprefix("live")] + (" of live workers" if live else " of all, dead ones too")


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "shim_calls",
        "counter",
        "XML-RPC calls by method (a multicall's calls each under its own; `(unknown)`: a method no table names)",
        ("method",),
    ),
    MetricSpec(
        "shim_faults",
        "counter",
        "Faults answered, by method and faultCode (`(none)`: a body with no method, such as an unparsable one)",
        ("method", "code"),
    ),
    MetricSpec("shim_call_duration_seconds", "histogram", "Time to answer a call, by method", ("method",)),
    MetricSpec("shim_calls_in_progress", "gauge", "XML-RPC requests being answered", merge="livesum"),
    MetricSpec(
        "shim_client_requests",
        "counter",
        "XML-RPC requests by the client's User-Agent family (pip, bandersnatch, python-xmlrpc, ..., `other`)",
        ("client",),
    ),
    MetricSpec(
        "shim_rate_limited",
        "counter",
        "Requests refused by a rate limit: `xmlrpc.client` (SHIM_RATE_LIMIT, PyPI's name for it) or `passthrough` "
        "(SHIM_PASSTHROUGH_RATE_LIMIT)",
        ("limit",),
    ),
    MetricSpec(
        "shim_upstream_requests",
        "counter",
        "Requests to an upstream origin, by status class (`2xx` ... `5xx`, `error` for no answer); each retry counts",
        ("origin", "status"),
    ),
    MetricSpec("shim_upstream_retries", "counter", "Retries of upstream requests, by origin", ("origin",)),
    MetricSpec("shim_upstream_bytes", "counter", "Body bytes received from an upstream origin", ("origin",)),
    MetricSpec(
        "shim_upstream_circuit",
        "gauge",
        "An origin's circuit as this worker sees it: 0 closed, 1 half-open (probing), 2 open",
        ("origin",),
        merge="livemax",
    ),
    MetricSpec(
        "shim_cache_lookups",
        "counter",
        "The document cache: lookups answered by its copy (`hit`) or by a stale one while the upstream failed "
        "(`stale`); loads the upstream answered (`miss`; `revalidated`: a 304 kept the copy, once however many "
        "callers waited on it); copies another replica loaded, taken from Redis (`shared`)",
        ("result",),
    ),
    MetricSpec("shim_catalog_projects", "gauge", "Projects the catalog knows", merge="livemostrecent"),
    MetricSpec(
        "shim_catalog_covered",
        "gauge",
        "Projects whose JSON the catalog has read (their release data is exact)",
        merge="livemostrecent",
    ),
    MetricSpec(
        "shim_catalog_crawl_eta_seconds",
        "gauge",
        "Seconds until the crawler has read every listed project at its recent rate (NaN: no rate yet)",
        merge="livemostrecent",
    ),
    MetricSpec(
        "shim_catalog_feed_lag_seconds",
        "gauge",
        "Seconds the catalog's change feed has been behind the upstream's last serial (0: caught up; NaN: the "
        "upstream tells no serial)",
        merge="livemostrecent",
    ),
    MetricSpec(
        "shim_catalog_role",
        "gauge",
        "Processes by their part in writing the catalog: `writer`, `standby` or `reader` (one writer per catalog)",
        ("role",),
        merge="livesum",
    ),
    MetricSpec(
        "shim_shared_store_up",
        "gauge",
        "1 while the shared Redis (SHIM_CACHE_URL) answers, 0 while this worker does without it",
        merge="livemin",
    ),
    MetricSpec("shim_start_time_seconds", "gauge", "When the service started (POSIX time)", merge="min"),
    MetricSpec("shim_info", "gauge", "Always 1: the version and mode served, as labels", ("version", "mode"), "max"),
)


def by_name(name: str) -> MetricSpec:
    return next(spec for spec in METRICS if spec.name == name)
