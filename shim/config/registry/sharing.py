"""The settings of state shared by replicas: the Redis that holds their document cache, rate limits and upstream
circuit, how long it may take, and whether the service may start without it."""

from __future__ import annotations

from typing import Any

from shim.config import parsers
from shim.config.setting import Setting
from shim.shared.address import RedisURL
from shim.shared.availability import CONFIRM, RETRY

__all__ = ["SHARING"]


SHARING: tuple[Setting[Any], ...] = (
    Setting(
        "cache_url",
        RedisURL.parse,
        "Redis shared by every replica and worker (`redis://host:6379/0`, or `rediss://` for TLS; a password in the "
        "URL or SHIM_CACHE_PASSWORD): the document cache (each document asked of the upstream once per TTL by all "
        "of them), the rate-limit windows, and the upstream's circuit and Retry-After pause. Unset: each process "
        "keeps them to itself. When Redis goes away each replica falls back to its own state, says so on /healthz, "
        "and goes back to Redis when it answers.",
        None,
        metavar="URL",
    ),
    Setting(
        "cache_password",
        parsers.secret,
        "Password for SHIM_CACHE_URL, instead of one in the URL; never shown. Prefer the variable: a command line "
        "is visible to every user of the machine.",
        None,
        metavar="SECRET",
        secret=True,
    ),
    Setting(
        "cache_timeout",
        parsers.seconds(0.01, 10),
        "Seconds each Redis command may take; past it that call uses the replica's own state, and when a ping of its "
        f"own has no answer within {CONFIRM} times as long either, every call does until Redis answers again "
        f"(checked every {RETRY:g} s).",
        0.25,
        metavar="SECONDS",
    ),
    Setting(
        "cache_required",
        parsers.boolean,
        "Refuse to start when SHIM_CACHE_URL is set but Redis cannot be reached or refuses the password; false "
        "starts with in-process state and says why.",
        False,
        metavar="BOOL",
    ),
)
