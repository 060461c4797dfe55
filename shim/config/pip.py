"""The index pip is configured with: the service's upstream when SHIM_UPSTREAM is not set."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping

from shim.upstream.urls import UpstreamURL

__all__ = ["default_upstream", "pip_config"]


def pip_config() -> Mapping[str, str]:
    """pip's merged configuration, read through its supported interface (`pip config list`)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    values: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, sep, raw = line.partition("=")
        if sep:
            values[key.strip()] = raw.strip().strip("'\"")
    return values


def default_upstream(
    environ: Mapping[str, str], pip_config: Callable[[], Mapping[str, str]] = pip_config
) -> UpstreamURL:
    """The index pip is configured with, else the public index as pypi-simple publishes it."""
    candidates = [environ.get("PIP_INDEX_URL", "")]
    if not candidates[0]:
        config = pip_config()
        candidates += [config.get(k, "") for k in (":env:.index-url", "install.index-url", "global.index-url")]
    for candidate in candidates:
        # pip allows several URLs separated by white space in PIP_INDEX_URL's siblings; take the first.
        first = candidate.split()[0] if candidate.split() else ""
        if first:
            try:
                return UpstreamURL.parse(first)
            except ValueError:
                continue  # a file:// or odd index pip can use but we cannot: fall through
    from pypi_simple import PYPI_SIMPLE_ENDPOINT

    return UpstreamURL.parse(PYPI_SIMPLE_ENDPOINT)
