"""What `/metrics` and the status page read: this worker's values, or under multiprocess mode every worker's,
merged by prometheus_client as `METRICS` states."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from shim.metrics.instruments import Metrics
from shim.metrics.processes import folder

__all__ = ["collected", "exposition"]


def _registry(metrics: Metrics) -> CollectorRegistry:
    path = folder()
    if path is None:
        return metrics.registry
    merged = CollectorRegistry()
    MultiProcessCollector(merged, str(path))  # type: ignore[no-untyped-call]
    return merged


def collected(metrics: Metrics) -> list[Metric]:
    return list(_registry(metrics).collect())


def exposition(metrics: Metrics, accept: str = "") -> tuple[bytes, str]:
    """The text format Prometheus reads (or OpenMetrics, when the scraper asks for it) and its content type."""
    encoder, content_type = choose_encoder(accept)
    return encoder(_registry(metrics)), content_type
