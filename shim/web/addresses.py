"""Who a request comes from, as the rate limits count it: the peer, or the client a trusted proxy forwarded."""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable

from starlette.requests import Request

from shim.config.settings import Settings

__all__ = ["PeerAddresses", "client_address", "peer_address"]


def client_address(request: Request, settings: Settings) -> str:
    """The caller of `request` (see `peer_address`)."""
    peer = request.client.host if request.client else ""
    return peer_address(peer, request.headers.getlist("x-forwarded-for"), settings)


def peer_address(peer: str, forwarded: Iterable[str], settings: Settings) -> str:
    """The caller, as the rate limits count it: the peer, or the client a trusted proxy forwarded (`forwarded`: the
    request's X-Forwarded-For lines).

    Every X-Forwarded-For line is read, in order, as one list (a proxy may add a line of its own rather than
    append to the client's). Walking it from the right, past the trusted proxies, the first other entry is the
    client. An entry that is no address (garbage, or a proxy's obfuscated name) is never a client: the hop that
    passed it on is. IPv6 clients are grouped by their SHIM_IPV6_PREFIX network, as a host holds a whole one.
    """
    hop = _address(peer)
    if hop is None:
        return peer  # not an IP peer (a test client, a Unix socket): the only name there is
    if _trusted(hop, settings):
        entries = [entry for line in forwarded for entry in line.split(",") if entry.strip()]
        for entry in reversed(entries):
            address = _address(entry)
            if address is None:
                break
            hop = address
            if not _trusted(address, settings):
                break
    return _client_key(hop, settings.ipv6_prefix)


class PeerAddresses:
    """`peer_address` under one process's settings, each peer's worked out once when no proxy forwarded it."""

    def __init__(self, settings: Settings, *, size: int = 4096) -> None:
        self.settings = settings
        self.size = size
        self._direct: dict[str, str] = {}

    def __call__(self, peer: str, forwarded: list[str]) -> str:
        if forwarded:
            return peer_address(peer, forwarded, self.settings)
        key = self._direct.get(peer)
        if key is None:
            if len(self._direct) >= self.size:
                self._direct.clear()
            key = self._direct[peer] = peer_address(peer, (), self.settings)
        return key


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# uvicorn's own proxy-header middleware reads one header line and no ports, hence this. Quotes are allowed.
_ENTRY = re.compile(
    r"""
    "?(?:
        \[(?P<bracketed>[0-9A-Fa-f:.]+)\](?::[0-9]{1,5})?  # [2001:db8::1], [2001:db8::1]:443
      | (?P<v4>[0-9.]+)(?::[0-9]{1,5})?                   # 1.2.3.4, 1.2.3.4:5678
      | (?P<v6>[0-9A-Fa-f:.]+)                            # 2001:db8::1, ::ffff:1.2.3.4
    )"?
    """,
    re.VERBOSE,
)


@functools.lru_cache(maxsize=4096)  # a proxy forwards the same clients again and again: parse each once
def _address(text: str) -> IPAddress | None:
    """The IP address an X-Forwarded-For entry (or the peer) names, its port dropped; None for anything else."""
    match = _ENTRY.fullmatch(text.strip())
    if match is None:
        return None
    try:
        address = ipaddress.ip_address(match["bracketed"] or match["v4"] or match["v6"])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket's view of an IPv4 client
    return address


def _client_key(address: IPAddress, ipv6_prefix: int) -> str:
    if isinstance(address, ipaddress.IPv6Address) and ipv6_prefix < 128:
        return str(ipaddress.IPv6Network((address, ipv6_prefix), strict=False))
    return str(address)


def _trusted(address: IPAddress, settings: Settings) -> bool:
    return any(address in network for network in settings.trusted_proxies)
