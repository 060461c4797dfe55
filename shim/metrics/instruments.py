"""The instruments of one service, made from `METRICS` into a registry of its own (a test's several apps in one
process each count their own), with the few calls the rest of the service makes on them.

Under prometheus_client's multiprocess mode (shim.metrics.processes) each value lives in the worker's own file, and
`/metrics` merges every worker's files; the registry here then only makes the instruments.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from shim.metrics.definitions import DURATION_BUCKETS, METRICS, MetricSpec

__all__ = ["CIRCUIT_STATES", "NO_METHOD", "UNKNOWN_METHOD", "Metrics", "status_class"]

UNKNOWN_METHOD = "(unknown)"  # a method name no table has: the label stays bounded by the table
NO_METHOD = "(none)"  # a request answered before any method was read (unparsable, too large, busy)
CIRCUIT_STATES = {"closed": 0, "half-open": 1, "open": 2}

# No `_created` series beside each counter: the start time is its own gauge, and a scrape stays half the size.
disable_created_metrics()  # type: ignore[no-untyped-call]


def status_class(status: int | None) -> str:
    """`2xx` ... `5xx`, or `error` when no answer came."""
    return "error" if status is None else f"{status // 100}xx"


def _instrument(spec: MetricSpec, registry: CollectorRegistry) -> Any:
    if spec.kind == "counter":
        return Counter(spec.name, spec.meaning, spec.labels, registry=registry)
    if spec.kind == "histogram":
        return Histogram(spec.name, spec.meaning, spec.labels, registry=registry, buckets=DURATION_BUCKETS)
    assert spec.merge is not None
    return Gauge(spec.name, spec.meaning, spec.labels, registry=registry, multiprocess_mode=spec.merge)


class Metrics:
    """One service's instruments. Each labelled child is looked up once and kept: a call's counting costs a few
    increments, never a label lookup under prometheus_client's lock."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.by_name: dict[str, Any] = {spec.name: _instrument(spec, self.registry) for spec in METRICS}
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}
        self.by_name["shim_start_time_seconds"].set(clock())
        self.in_progress = self.by_name["shim_calls_in_progress"]

    def child(self, name: str, *labels: str) -> Any:
        key = (name, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = self.by_name[name].labels(*labels)
        return found

    # Calls

    def called(self, method: str, seconds: float) -> None:
        self.child("shim_calls", method).inc()
        self.child("shim_call_duration_seconds", method).observe(seconds)

    def faulted(self, method: str, code: int) -> None:
        self.child("shim_faults", method, str(code)).inc()

    def client(self, family: str) -> None:
        self.child("shim_client_requests", family).inc()

    def rate_limited(self, limit: str) -> None:
        self.child("shim_rate_limited", limit).inc()

    # The upstream and the cache

    def upstream_answered(self, origin: str, status: int | None, received: int) -> None:
        self.child("shim_upstream_requests", origin, status_class(status)).inc()
        if received:
            self.child("shim_upstream_bytes", origin).inc(received)

    def upstream_retried(self, origin: str) -> None:
        self.child("shim_upstream_retries", origin).inc()

    def circuit(self, origin: str, state: str) -> None:
        self.child("shim_upstream_circuit", origin).set(CIRCUIT_STATES.get(state, 0))

    def looked_up(self, result: str) -> None:
        self.child("shim_cache_lookups", result).inc()

    # What the service samples (shim.web.vitals)

    def gauge(self, name: str, value: float, *labels: str) -> None:
        instrument = self.child(name, *labels) if labels else self.by_name[name]
        instrument.set(value)
