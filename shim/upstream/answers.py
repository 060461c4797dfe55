"""What the upstream client hands back, and the rules about origins and headers the web layer shares with it:
pure data and functions, no HTTP (that is shim.upstream.client's alone)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

__all__ = ["PASSED_HEADERS", "Fetched", "Ranged", "origin", "origin_label", "passed_headers"]


# What a client of a passed-through document or file sees of the upstream's answer.
PASSED_HEADERS = (
    "content-type",
    "etag",
    "last-modified",
    "cache-control",
    "vary",
    "x-pypi-last-serial",
    "content-range",
    "accept-ranges",
    "content-length",
)


@dataclass(frozen=True)
class Fetched:
    """One upstream answer: 200 (a body), 304 (not modified) or 404 (not found)."""

    url: str  # after redirects
    status: int
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None
    serial: int | None  # X-PyPI-Last-Serial, where the upstream sends it
    headers: dict[str, str] = field(default_factory=dict)  # those a pass-through keeps (PASSED_HEADERS)


@dataclass(frozen=True)
class Ranged:
    """An answer to a range request: 206 with `body` at `start` of a file of `total` bytes; 200 when the Range was
    ignored (nothing of the body is read); or 404, 416."""

    status: int
    body: bytes = b""
    start: int = 0
    total: int = 0


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.rpartition("@")[2].lower()


def passed_headers(headers: httpx.Headers) -> dict[str, str]:
    return {name: headers[name] for name in PASSED_HEADERS if name in headers and name != "content-length"}


def origin_label(url: str) -> str:
    """`scheme://host[:port]` of a URL, credentials left out: the key of its origin's guard, as /healthz shows it."""
    scheme, netloc = origin(url)
    return f"{scheme}://{netloc}"
