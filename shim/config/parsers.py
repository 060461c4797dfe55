"""Value parsers for the settings: each turns an operator's text into a value or raises ValueError saying why.

The message is the reason only; the caller names the setting and quotes the value (credentials redacted).
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult, urlsplit, urlunsplit

from shim.upstream.urls import Secret

__all__ = [
    "Network",
    "boolean",
    "ca_file",
    "choice",
    "file_or_url",
    "file_path",
    "host",
    "int_between",
    "networks",
    "optional_text",
    "public_url",
    "seconds",
    "show_number",
]

N = TypeVar("N", int, float)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def show_number(number: float) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


def _between(kind: type[N], low: N, high: N, *, what: str, unit: str = "") -> Callable[[str], N]:
    def parse(text: str) -> N:
        try:
            value = kind(text.strip().replace("_", ""))
        except ValueError:
            raise ValueError(f"not {what}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {show_number(low)} and {show_number(high)}{unit}")
        return value

    return parse


def int_between(low: int, high: int) -> Callable[[str], int]:
    return _between(int, low, high, what="a whole number")


def seconds(low: float, high: float) -> Callable[[str], float]:
    return _between(float, low, high, what="a number of seconds", unit=" seconds")


def networks(text: str) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError(f"not addresses or networks ({exc})") from None


def ca_file(text: str) -> str | None:
    path = text.strip()
    if not path:
        return None
    if not os.path.isfile(path):
        raise ValueError("no such file")
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ValueError(f"not a PEM file of certificates ({exc})") from None
    return path


def choice(enum: type[StrEnum]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return enum(text.strip().lower())
        except ValueError:
            raise ValueError("must be one of " + ", ".join(m.value for m in enum)) from None

    return parse


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false (also 1/0, yes/no, on/off)")


def host(text: str) -> str:
    value = text.strip()
    if not value or not re.fullmatch(r"[A-Za-z0-9.:_\-\[\]%]+", value):
        raise ValueError("not a host name or IP address")
    return value


def file_path(text: str) -> Path:
    path = Path(text.strip()).expanduser()
    if not text.strip() or path.is_dir():
        raise ValueError("not a file path")
    return path


def folder(text: str) -> Path:
    path = Path(text.strip()).expanduser()
    if not text.strip() or (path.exists() and not path.is_dir()):
        raise ValueError("not a folder")
    return path


def secret(text: str) -> Secret | None:
    """A credential, never shown; empty is none."""
    return Secret(text) if text else None


def optional_text(text: str) -> str | None:
    return text.strip() or None


def _http_url(value: str, *, scheme: str = "the scheme must be http or https") -> SplitResult:
    """The parts of an http(s) URL with a host; ValueError saying why it is none (`scheme`: what a bad scheme is)."""
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(scheme)
    if not parts.hostname:
        raise ValueError("the URL has no host")
    return parts


def file_or_url(text: str) -> str | None:
    """A file path, or an http(s) URL (anything with `://`); None when empty."""
    value = text.strip()
    if "://" in value:
        _http_url(value, scheme="a URL's scheme must be http or https (else give a file path)")
    return value or None


def public_url(text: str) -> str | None:
    """The service's public base URL (`https://mirror.example/shim/`), always ending with "/"; None when empty."""
    value = text.strip()
    if not value:
        return None
    parts = _http_url(value)
    if "@" in parts.netloc:
        raise ValueError("a public URL takes no user name or password")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValueError("a public URL takes no query or fragment")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/", "", ""))
