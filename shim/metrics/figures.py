"""The figures the status page shows, read from the same merged values as `/metrics`: per-method calls, faults
and latency quantiles (estimated from the histogram's buckets, as Prometheus's histogram_quantile does), the
clients, the upstream origins, the cache and the catalog."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from shim.metrics.exposition import collected
from shim.metrics.instruments import CIRCUIT_STATES, Metrics

__all__ = ["CatalogFigures", "Figures", "MethodFigures", "OriginFigures", "quantile", "read_figures"]


@dataclass
class MethodFigures:
    calls: int = 0
    faults: dict[int, int] = field(default_factory=dict)  # by faultCode
    p50: float | None = None  # seconds; None before any call
    p99: float | None = None


@dataclass
class OriginFigures:
    requests: dict[str, int] = field(default_factory=dict)  # by status class: 2xx ... 5xx, error
    retries: int = 0
    bytes: int = 0
    circuit: str = "closed"  # the worst any worker sees


@dataclass
class CatalogFigures:
    projects: int | None = None
    covered: int | None = None
    eta_seconds: float | None = None
    feed_lag_seconds: float | None = None
    roles: dict[str, int] = field(default_factory=dict)  # processes by role: writer, standby, reader


@dataclass
class Figures:
    started: float | None = None  # POSIX time the earliest worker started
    methods: dict[str, MethodFigures] = field(default_factory=dict)
    clients: dict[str, int] = field(default_factory=dict)  # requests by User-Agent family
    origins: dict[str, OriginFigures] = field(default_factory=dict)
    cache: dict[str, int] = field(default_factory=dict)  # lookups by result: hit, miss, revalidated, stale
    rate_limited: dict[str, int] = field(default_factory=dict)
    in_progress: int = 0
    catalog: CatalogFigures = field(default_factory=CatalogFigures)

    @property
    def hit_rate(self) -> float | None:
        served = self.cache.get("hit", 0) + self.cache.get("revalidated", 0) + self.cache.get("stale", 0)
        total = served + self.cache.get("miss", 0)
        return served / total if total else None


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The `q` quantile of a histogram's cumulative `(upper bound, count)` buckets, interpolated within its bucket
    (the last finite bound when it falls in +Inf); None when it holds no observation."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 0.0)
        lower, below = bound, count
    return lower


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def read_figures(metrics: Metrics) -> Figures:
    figures = Figures()
    buckets: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for family in collected(metrics):
        _read(family, figures, buckets)
    for method, cumulative in buckets.items():
        cumulative.sort()
        entry = figures.methods.setdefault(method, MethodFigures())
        entry.p50, entry.p99 = quantile(0.5, cumulative), quantile(0.99, cumulative)
    return figures


def _read(family: Metric, figures: Figures, buckets: dict[str, list[tuple[float, float]]]) -> None:
    catalog = figures.catalog
    for sample in family.samples:
        labels, value = sample.labels, sample.value
        name = sample.name
        if name == "shim_calls_total":
            figures.methods.setdefault(labels["method"], MethodFigures()).calls = int(value)
        elif name == "shim_faults_total":
            entry = figures.methods.setdefault(labels["method"], MethodFigures())
            entry.faults[int(labels["code"])] = int(value)
        elif name == "shim_call_duration_seconds_bucket":
            buckets[labels["method"]].append((float(labels["le"]), value))
        elif name == "shim_client_requests_total":
            figures.clients[labels["client"]] = int(value)
        elif name == "shim_rate_limited_total":
            figures.rate_limited[labels["limit"]] = int(value)
        elif name == "shim_calls_in_progress":
            figures.in_progress = int(value)
        elif name == "shim_cache_lookups_total":
            figures.cache[labels["result"]] = int(value)
        elif name.startswith("shim_upstream_"):
            origin = figures.origins.setdefault(labels["origin"], OriginFigures())
            if name == "shim_upstream_requests_total":
                origin.requests[labels["status"]] = int(value)
            elif name == "shim_upstream_retries_total":
                origin.retries = int(value)
            elif name == "shim_upstream_bytes_total":
                origin.bytes = int(value)
            elif name == "shim_upstream_circuit":
                origin.circuit = next((s for s, n in CIRCUIT_STATES.items() if n == value), "closed")
        elif name == "shim_catalog_projects":
            catalog.projects = int(value)
        elif name == "shim_catalog_covered":
            catalog.covered = int(value)
        elif name == "shim_catalog_crawl_eta_seconds":
            catalog.eta_seconds = _number(value)
        elif name == "shim_catalog_feed_lag_seconds":
            catalog.feed_lag_seconds = _number(value)
        elif name == "shim_catalog_role":
            catalog.roles[labels["role"]] = int(value)
        elif name == "shim_start_time_seconds":
            figures.started = value
