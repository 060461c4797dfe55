"""A client's family from its User-Agent, for the metrics' `client` label: a few known names, never the header itself
(an unbounded label would grow a series per distinct header)."""

from __future__ import annotations

import functools
import re

__all__ = ["FAMILIES", "client_family"]

# The clients that still call XML-RPC (../shared/reference/clients.md) and the libraries they call it with, in the
# order they are tried: a tool's own name before the library it sends ("pip/23 ... requests/2" is pip).
FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (family, re.compile(pattern, re.IGNORECASE))
    for family, pattern in (
        ("pip", r"^pip/"),
        ("bandersnatch", r"bandersnatch"),
        ("qypi", r"qypi"),
        ("pyroma", r"pyroma"),
        ("stdeb", r"stdeb"),
        ("py2pack", r"py2pack"),
        ("pyp2rpm", r"pyp2rpm"),
        ("vanity", r"vanity"),
        ("yolk", r"yolk"),
        ("piwheels", r"piwheels"),
        ("python-xmlrpc", r"^Python-xmlrpc/"),
        ("requests", r"python-requests/"),
        ("httpx", r"python-httpx/"),
        ("aiohttp", r"aiohttp"),
        ("curl", r"^curl/"),
        ("browser", r"^Mozilla/"),
    )
)


@functools.lru_cache(maxsize=1024)  # a few clients send most calls: each header is matched once
def client_family(user_agent: str | None) -> str:
    """`pip`, `bandersnatch`, ..., `python-xmlrpc`; `none` without the header; `other` for any other."""
    if not user_agent:
        return "none"
    for family, pattern in FAMILIES:
        if pattern.search(user_agent):
            return family
    return "other"
