"""Where the shared store is: a `redis://` or `rediss://` URL, validated at start, whose password is never shown."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from shim.upstream.urls import Secret, redact_url, split_userinfo

__all__ = ["RedisURL"]

SCHEMES = ("redis", "rediss")


@dataclass(frozen=True)
class RedisURL:
    """A Redis URL with its password (from the URL, or SHIM_CACHE_PASSWORD, which wins) held apart."""

    url: str  # without its password
    password: Secret | None = None

    @classmethod
    def parse(cls, text: str) -> RedisURL:
        """The URL in `text`; ValueError with the reason only (the setting's loader names it and redacts the value)."""
        # The user-info comes off before any URL parser sees it: their errors quote what they were given.
        rest, userinfo = split_userinfo(text.strip())
        try:
            parts = urllib.parse.urlsplit(rest)
        except ValueError:
            raise ValueError("it is not a URL of the form redis://[user:password@]host[:port][/database]") from None
        try:
            port = parts.port
        except ValueError:
            raise ValueError("its port is not a number from 1 to 65535") from None
        if parts.scheme not in SCHEMES:
            raise ValueError("expected a redis:// or rediss:// URL (`redis://host:6379/0`)")
        if not parts.hostname:
            raise ValueError("the URL names no host")
        database = parts.path.strip("/")
        if database and not database.isdigit():
            raise ValueError(f"its path must be a database number, such as /0, not /{database}")
        if parts.query or parts.fragment:
            raise ValueError("it takes no query or fragment: the timeout and password have their own settings")
        name, colon, secret = (userinfo or "").partition(":")
        password = urllib.parse.unquote(secret) if colon and secret else None
        user = urllib.parse.quote(urllib.parse.unquote(name), safe="") if name else ""
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        netloc = (f"{user}@" if user else "") + host + (f":{port}" if port is not None else "")
        url = urllib.parse.urlunsplit((parts.scheme, netloc, "/" + database if database else "", "", ""))
        return cls(url, Secret(password) if password else None)

    def with_password(self, password: Secret | None) -> RedisURL:
        return self if password is None else RedisURL(self.url, password)

    @property
    def username(self) -> str | None:
        name = urllib.parse.urlsplit(self.url).username
        return urllib.parse.unquote(name) if name else None

    def __str__(self) -> str:
        """As it may be shown: any password as `***`, as every URL the service shows (shim.upstream.urls)."""
        if self.password is None:
            return redact_url(self.url)
        scheme, rest = self.url.split("://", 1)
        user, _, host = rest.rpartition("@")
        return redact_url(f"{scheme}://{user}:password@{host}")
