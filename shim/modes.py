"""The answer modes and the files modes: words that the settings, the method table and the web layer share."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FilesMode", "Mode"]


class Mode(StrEnum):
    """What the XML-RPC endpoint answers."""

    RESTORE = "restore"  # the last working behaviour of every method
    PYPI_TODAY = "pypi-today"  # exactly what PyPI answers now
    REMOVED = "removed"  # the XML-RPC endpoint gone: HTTP 404


class FilesMode(StrEnum):
    """Where file URLs in passed-through documents point."""

    DIRECT = "direct"  # file URLs keep pointing at the upstream's files host; /packages/ is 404
    PROXY = "proxy"  # file URLs are rewritten to <service>/packages/..., streamed from the files host
