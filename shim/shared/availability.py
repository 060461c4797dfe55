"""What every shared part (and the settings and the app) needs to know of the shared store without loading a Redis
client: its outcomes, its timings, its keys' namespace, and the units Redis speaks. The client itself
(shim.shared.store) is imported only by a service that names SHIM_CACHE_URL: redis-py costs each worker some 7 MB and
60 ms of start-up."""

from __future__ import annotations

import hashlib
import math

__all__ = [
    "CONFIRM",
    "REFUSALS_SHOWN",
    "RETRY",
    "SharedStoreRequired",
    "SharedUnavailable",
    "milliseconds",
    "namespace",
    "text",
]

RETRY = 1.0  # seconds between pings while Redis is away: it is back within a second of answering
REFUSALS_SHOWN = 60.0  # seconds /healthz says degraded after Redis refused a command
# A ping of its own, after a command timed out, has this many times SHIM_CACHE_TIMEOUT before Redis is taken for away.
CONFIRM = 8


class SharedUnavailable(Exception):
    """Redis is away (or just failed): the caller uses its in-process state instead."""


class SharedStoreRequired(Exception):
    """SHIM_CACHE_REQUIRED is set and Redis cannot be used at start: the message names the setting and why."""


def namespace(upstream_base: str, identity: str = "") -> str:
    """The prefix of every key of a service for `upstream_base`, as `identity` (the credentials it sends there, if
    any): services for other upstreams, or the same one as another user, may share one Redis and never read each
    other's entries (a private index shows each user its own projects). The credentials go through a slow, salted
    hash: a key's prefix gives nothing to guess a password against."""
    material = upstream_base.encode()
    if identity:
        material += b"\0" + hashlib.pbkdf2_hmac("sha256", identity.encode(), upstream_base.encode(), 100_000)
    return "shim:" + hashlib.sha256(material).hexdigest()[:12] + ":"


def milliseconds(seconds: float) -> int:
    """An expiry as Redis takes it (`PX`): whole milliseconds, never 0, which it refuses (a cooldown of 0 still opens
    a circuit, for a millisecond)."""
    return max(1, math.ceil(seconds * 1000))


def text(value: object) -> str:
    """A value Redis answered (bytes, as the client decodes nothing), as text."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
