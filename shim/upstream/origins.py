"""Where upstream content may send the service: files, on the upstream's own origin or its files host.

A project document names its files' URLs. The service fetches a file's core metadata (`<url>.metadata`), and
with SHIM_FILES=proxy streams files from the host those URLs name: a document must not steer those requests
to another host (a cloud metadata address, a private service), nor to another path of the upstream, which
its credentials open. So a URL is fetched only when it has a file's shape (`.../packages/<path>`, http(s),
no user-info, query, fragment or dot segments) on the upstream's origin or its files host.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import unquote, urldefrag, urlsplit

__all__ = ["FilesHost", "file_head"]

_MARKER = "/packages/"


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def file_head(url: str) -> str | None:
    """What precedes `/packages/` in an absolute URL of a file's shape; None for any other URL."""
    if any(c <= " " or c in "\\\x7f" for c in url) or "?" in url or "#" in url:
        return None
    try:
        parts = urlsplit(url)
        _ = parts.port  # validates it
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    head, marker, rest = url.partition(_MARKER)
    segments = [unquote(segment) for segment in parts.path.split("/")]
    if not marker or not rest or rest.endswith("/") or not urlsplit(head).netloc:
        return None
    # Percent-encoded too: `%2e%2e` is a dot segment to many servers, `%2f` a separator.
    if any(segment in (".", "..") or any(c < " " or c in "/\\\x7f" for c in segment) for segment in segments):
        return None
    return head


def _may_host_files(host: str, upstream_host: str) -> bool:
    """A host learnt from documents: any name but localhost, and no address outside the public internet
    (loopback, private, link-local: where cloud metadata lives), unless it is the upstream's own host."""
    host = host.lower().rstrip(".")
    if host == upstream_host.lower().rstrip("."):
        return True
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        try:  # the forms the resolver also reads as IPv4: `127.1`, `2130706433`, `0x7f000001`
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return True  # a name
    return address.is_global


class FilesHost:
    """The upstream's files host (`<base>packages/...`): configured (SHIM_FILES_UPSTREAM), else learnt once, from
    the first file URL a document names that may be one."""

    def __init__(self, upstream_base: str, configured: str | None = None) -> None:
        self.upstream_base = upstream_base
        self.base = configured

    def learn(self, url: str) -> None:
        """Take the files host from an absolute file URL (a link's fragment aside), unless one is known."""
        if self.base is not None:
            return
        head = file_head(urldefrag(url).url)
        upstream_host = urlsplit(self.upstream_base).hostname or ""
        if head is not None and _may_host_files(urlsplit(head).hostname or "", upstream_host):
            self.base = head + "/"

    def allows(self, url: str) -> bool:
        """Whether the service may fetch `url` (absolute): a file on the upstream's origin or its files host."""
        if file_head(url) is None:
            return False
        origin = _origin(url)
        return origin == _origin(self.upstream_base) or (self.base is not None and origin == _origin(self.base))
