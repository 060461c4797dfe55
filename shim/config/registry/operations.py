"""The settings of what an operator sees: the Prometheus metrics and who may read them, and the logs' format."""

from __future__ import annotations

from typing import Any

from shim.config import parsers
from shim.config.setting import LogClient, LogFormat, Setting

__all__ = ["OPERATIONS"]


OPERATIONS: tuple[Setting[Any], ...] = (
    Setting(
        "metrics",
        parsers.boolean,
        'Serve Prometheus metrics on `/metrics` (README, "Metrics"); false answers it 404.',
        True,
        metavar="BOOL",
    ),
    Setting(
        "metrics_token",
        parsers.secret,
        "When set, `/metrics` answers only a request carrying `Authorization: Bearer <token>` (401 otherwise); "
        "never shown.",
        None,
        metavar="SECRET",
        secret=True,
    ),
    Setting(
        "metrics_dir",
        parsers.folder,
        "Folder where each worker of `--workers` above 1 keeps its metrics, for prometheus_client's multiprocess "
        "mode (every worker's `/metrics` and status page then show all of them merged); emptied of metric files at "
        "start. In a container, a writable volume.",
        None,
        shown="a new folder in the system's temporary folder, removed at exit",
        metavar="PATH",
    ),
    Setting(
        "log_format",
        parsers.choice(LogFormat),
        "Log lines as `text` (for a terminal) or `json`: one object per line with time, level, event, request id, "
        "method, duration, outcome, upstream requests and client; access lines too. No credential or request body "
        "is ever logged.",
        LogFormat.TEXT,
        metavar="FORMAT",
    ),
    Setting(
        "log_client",
        parsers.choice(LogClient),
        "How a client is named in the logs: its `address`, or a `hash` of it that tells clients apart without "
        "keeping their addresses.",
        LogClient.ADDRESS,
        metavar="HOW",
    ),
)
