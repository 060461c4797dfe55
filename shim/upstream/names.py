"""Project names and versions as they may reach the upstream: checked, normalised, one path segment each."""

from __future__ import annotations

import functools
import re
from urllib.parse import quote

from packaging.utils import canonicalize_name

__all__ = ["normalize_name", "path_segment"]

# PEP 508's name pattern: a client's name either fits it or names no project on any index.
_PEP508_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


@functools.lru_cache(maxsize=16384)  # the names clients ask for again and again
def normalize_name(name: str) -> str | None:
    """The PEP 503 form of a valid project name; None for a name no index can hold."""
    if len(name) > 200 or not _PEP508_NAME.match(name):
        return None
    return canonicalize_name(name)


@functools.lru_cache(maxsize=16384)
def path_segment(text: str) -> str:
    """`text` as exactly one URL path segment: every reserved character escaped, dot segments refused."""
    if text in ("", ".", ".."):
        raise ValueError(f"{text!r} cannot be a path segment")
    return quote(text, safe="")
