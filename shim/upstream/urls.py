"""Upstream URLs: parsing, credentials split off, and redaction for anything shown or logged."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["REDACTED", "Credentials", "Secret", "UpstreamURL", "redact_url"]

REDACTED = "***"


class Secret:
    """A value that is never shown: its repr and str are redacted, only `reveal()` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: Secret

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password={self.password!r})"


# User-info runs to the LAST "@" before the path (a password may hold a raw "@"); it follows a scheme and
# "//", a bare "//", or starts the text (a URL given without its scheme, `user:token@host/`).
_USERINFO = re.compile(r"(?P<scheme>(?:[A-Za-z][A-Za-z0-9+.-]*:)?//|^)(?P<userinfo>[^\s/?#]*)@")
# Query values may be tokens too (`?token=...`): shown as `***`.
_QUERY_VALUE = re.compile(r"(?P<key>[?&][^=&#\s]*=)[^&#\s]*")


def redact_url(text: str) -> str:
    """Replace the user-info part of every URL in `text` by `***`, keeping the user name."""

    def _hide(match: re.Match[str]) -> str:
        user = match["userinfo"].split(":", 1)[0]
        shown = f"{user}:{REDACTED}" if user else REDACTED
        return f"{match['scheme']}{shown}@"

    return _QUERY_VALUE.sub(rf"\g<key>{REDACTED}", _USERINFO.sub(_hide, text))


@dataclass(frozen=True)
class UpstreamURL:
    """The base URL of a Warehouse-compatible index, with any credentials held apart.

    `base` always ends with "/" and carries no user-info, so it can be logged and shown as it is.
    """

    base: str
    credentials: Credentials | None = None

    @classmethod
    def parse(cls, value: str) -> UpstreamURL:
        """Parse an operator-given URL; raise ValueError with a reason that never quotes a secret."""
        text = value.strip()
        if any(c.isspace() for c in text):
            raise ValueError("a URL has no white space in it")
        try:
            parts = urlsplit(text)
            port = parts.port  # validates the port
        except ValueError as exc:
            raise ValueError(f"not a valid URL ({exc})") from None
        if parts.scheme not in ("http", "https"):
            raise ValueError("the scheme must be http or https")
        if not parts.hostname:
            raise ValueError("the URL has no host")
        if parts.query or parts.fragment:
            raise ValueError("a base URL takes no query or fragment")
        credentials = None
        if parts.username is not None or parts.password is not None:
            credentials = Credentials(unquote(parts.username or ""), Secret(unquote(parts.password or "")))
        host = parts.hostname
        if ":" in host:
            host = f"[{host}]"
        netloc = host if port is None else f"{host}:{port}"
        path = parts.path.rstrip("/")
        # pip's index URL points at the Simple API; the index's other APIs live one level up.
        path = path.removesuffix("/simple")
        return cls(urlunsplit((parts.scheme, netloc, path + "/", "", "")), credentials)

    @property
    def host(self) -> str:
        return urlsplit(self.base).hostname or ""

    def __str__(self) -> str:
        if self.credentials is None:
            return self.base
        scheme, rest = self.base.split("://", 1)
        return f"{scheme}://{self.credentials.username}:{REDACTED}@{rest}"
