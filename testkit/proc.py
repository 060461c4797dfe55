"""A process's memory and CPU time, read from /proc (Linux): for the load script and the benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cpu_seconds", "proc_status"]


def proc_status(pid: int, key: str) -> float | None:
    """A `kB` figure from /proc/<pid>/status (VmRSS, VmHWM), in MB; None when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
