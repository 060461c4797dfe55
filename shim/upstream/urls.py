"""Upstream URLs: parsing, credentials split off, and redaction for anything shown or logged."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["REDACTED", "Credentials", "Secret", "UpstreamURL", "redact_url", "split_userinfo"]

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

    def shown(self) -> str:
        """The user-info as it may be shown: a user name alone may be the token (`https://<token>@host/`)."""
        return f"{self.username}:{REDACTED}" if self.password.reveal() else REDACTED

    def __repr__(self) -> str:
        if not self.password.reveal():
            return f"Credentials(username={REDACTED!r}, password={self.password!r})"
        return f"Credentials(username={self.username!r}, password={self.password!r})"


# Where a URL starts, in text that may hold several. Its user-info runs from there to the LAST "@" before the next
# URL (a password may hold a raw "@", or an unencoded "/", "?", "#" or space that a URL parser would split at: the
# secret must be hidden however malformed the URL). A text that starts with no scheme starts a URL too
# (`user:token@host/`, `//user:token@host/`). Limitation: a secret that itself holds `scheme://` looks like a URL.
_URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# A user name shown beside the redacted password: only one made of the characters a user name may hold.
_PLAIN_USER = re.compile(r"[A-Za-z0-9._~%!$&'()*+,;=-]+")
# Characters a user name or password must percent-encode: a URL parser would split the URL at them.
_UNENCODED = re.compile(r"[/?#\[\]\s]")
# Query values may be tokens too (`?token=...`): shown as `***`.
_QUERY_VALUE = re.compile(r"(?P<key>[?&][^=&#\s]*=)[^&#\s]*")


def _hidden(userinfo: str) -> str:
    user, colon, _ = userinfo.partition(":")
    # A user name alone may be the token; one with odd characters may be part of the password.
    return f"{user}:{REDACTED}" if colon and _PLAIN_USER.fullmatch(user) else REDACTED


def split_userinfo(text: str) -> tuple[str, str | None]:
    """`text` without its user-info, and the user-info (None when there is no "@"): before any parser sees it."""
    start = re.match(r"(?:[A-Za-z][A-Za-z0-9+.-]*:)?//", text)
    head = start.group() if start else ""
    userinfo, at, rest = text[len(head) :].rpartition("@")
    return (head + rest, userinfo) if at else (text, None)


def redact_url(text: str) -> str:
    """Replace the user-info part of every URL in `text` by `***`, keeping a plain user name."""
    starts = [(m.start(), m.end()) for m in _URL_START.finditer(text)]
    if not starts or starts[0][0] != 0:
        starts.insert(0, (0, 2 if text.startswith("//") else 0))
    pieces = []
    for i, (begin, end) in enumerate(starts):
        stop = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        userinfo, at, rest = text[end:stop].rpartition("@")
        pieces.append(text[begin:end] + (f"{_hidden(userinfo)}@{rest}" if at else rest))
    return _QUERY_VALUE.sub(rf"\g<key>{REDACTED}", "".join(pieces))


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
        # The credentials come off first: no URL parser sees them, so none of its messages can quote them.
        text, userinfo = split_userinfo(text)
        if userinfo is not None and _UNENCODED.search(userinfo):
            raise ValueError(
                "the user name or password holds a / ? # [ ] that must be percent-encoded (or an @ follows the host)"
            )
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
        if userinfo is not None:
            username, _, password = userinfo.partition(":")
            credentials = Credentials(unquote(username), Secret(unquote(password)))
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
        return f"{scheme}://{self.credentials.shown()}@{rest}"
