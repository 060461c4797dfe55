"""prometheus_client's multiprocess mode, for `--workers` above 1: every worker writes its values to files in one
folder, and whichever worker a scrape reaches merges them all.

The library reads PROMETHEUS_MULTIPROC_DIR once, as it is imported: the supervisor sets it (and empties the folder of
an earlier run's files) before it starts any worker, and the workers, new processes, import the library under it. A
worker that dies is marked dead, so that the gauges of live workers forget it; its counters stay in the sums (a
counter must never go back).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["ENV", "folder", "mark_dead", "multiprocess_folder"]

ENV = "PROMETHEUS_MULTIPROC_DIR"
METRIC_FILES = ("counter_*.db", "gauge_*.db", "histogram_*.db", "summary_*.db")


def folder() -> Path | None:
    """The multiprocess folder this process counts in, or None: its values are its own, in memory."""
    value = os.environ.get(ENV) or os.environ.get(ENV.lower())
    return Path(value) if value else None


@contextlib.contextmanager
def multiprocess_folder(wanted: Path | None) -> Iterator[Path]:
    """For the supervisor's life: `wanted` (SHIM_METRICS_DIR), else the one the environment names, else a new one
    in the system's temporary folder (removed at the end), emptied of metric files and set for the workers."""
    chosen, made = wanted or folder(), False
    if chosen is None:
        chosen, made = Path(tempfile.mkdtemp(prefix="pypi-xmlrpc-shim-metrics-")), True
    try:
        chosen.mkdir(parents=True, exist_ok=True)
        for pattern in METRIC_FILES:
            for stale in chosen.glob(pattern):
                stale.unlink(missing_ok=True)
    except OSError as exc:
        raise OSError(f"SHIM_METRICS_DIR {str(chosen)!r} cannot be used: {exc.strerror or exc}") from None
    previous = os.environ.get(ENV)
    os.environ[ENV] = str(chosen)
    try:
        yield chosen
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
        if made:
            shutil.rmtree(chosen, ignore_errors=True)


def mark_dead(pid: int) -> None:
    """A worker gone: its live gauges leave the merge (imported here only: the supervisor counts nothing itself)."""
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(pid, str(folder()))  # type: ignore[no-untyped-call]
