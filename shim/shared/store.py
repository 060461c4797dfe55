"""The one Redis connection (a bounded pool) every shared part of a replica uses, and whether it answers now.

Redis is for scale-out, never required (unless SHIM_CACHE_REQUIRED says so): every command is bounded by
SHIM_CACHE_TIMEOUT. A command that fails marks the store away; one that times out falls back for its call only,
and the store is away when a ping on a connection of its own gets no answer within CONFIRM times as long either (a
busy event loop reads answers late without Redis being gone). While it is away `run` raises `SharedUnavailable` at
once, without waiting on Redis again, and each part (the document cache, the rate limits, the upstream's circuit)
works from its in-process state; the loss is logged once and shown on /healthz. `watch` pings Redis every `RETRY`
seconds meanwhile, and the first answer puts every part back on it. A command Redis refuses (a full Redis that
evicts nothing) falls back for its call only, and /healthz says degraded for REFUSALS_SHOWN seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shim.shared.address import RedisURL
from shim.shared.availability import (
    CONFIRM,
    REFUSALS_SHOWN,
    RETRY,
    SharedStoreRequired,
    SharedUnavailable,
    namespace,
    text,
)

__all__ = ["SharedRedis"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

CONNECTIONS = 64  # the pool's bound: a call waits (SHIM_CACHE_TIMEOUT at most) for a connection beyond it


class SharedRedis:
    def __init__(
        self,
        address: RedisURL,
        *,
        timeout: float,
        upstream_base: str,
        upstream_identity: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.prefix = namespace(upstream_base, upstream_identity)
        self.clock = clock
        self.pool = redis.asyncio.BlockingConnectionPool.from_url(
            address.url, max_connections=CONNECTIONS, timeout=timeout, **self._connecting(timeout)
        )
        self.client: redis.asyncio.Redis = redis.asyncio.Redis(connection_pool=self.pool)
        self.available = False  # until the first ping answers
        self.problem: str | None = "not connected yet"
        self.since = clock()
        self.lost_count = 0  # times it went away since start
        self.refusals = 0  # commands it answered with an error
        self.last_refusal: tuple[float, str] | None = None  # when, and what it said
        self._confirming: asyncio.Task[None] | None = None
        self._refusal_kinds: set[str] = set()
        self.memory: dict[str, str] = {}  # its `maxmemory` and policy, as it reported them at start

    def _connecting(self, timeout: float) -> dict[str, Any]:
        """How a connection to this Redis is made, bounded by `timeout` (the pool's, or a confirming ping's)."""
        password = self.address.password.reveal() if self.address.password is not None else None
        # No retries of redis-py's own: a command that fails is the store going away, not a reason to wait longer.
        return {
            "password": password,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),
        }

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def run(self, command: Callable[[redis.asyncio.Redis], Awaitable[T]]) -> T:
        """`command` on the client, bounded by the timeout; SharedUnavailable (at once, while it is away) else."""
        if not self.available:
            raise SharedUnavailable(self.problem)
        try:
            async with asyncio.timeout(self.timeout):
                return await command(self.client)
        except ResponseError as exc:
            # Redis is there but refused this command (out of memory under `noeviction`, scripting disabled):
            # this call goes on in process; the others still use Redis.
            self.refused(exc)
            raise SharedUnavailable(str(exc)) from None
        except (RedisError, OSError, TimeoutError) as exc:
            if not _no_answer_in_time(exc):
                self.lost(exc)
                raise SharedUnavailable(self.problem) from None
            # No answer in time (or no free connection): Redis may be stuck, or this process too busy to read its
            # answer (a burst of calls queues on the event loop). This call goes on in process; whether Redis is
            # away is for a ping of its own to say, on a connection of its own, with a longer bound.
            self._suspect()
            raise SharedUnavailable(_reason(exc, self.timeout)) from None

    def _suspect(self) -> None:
        if self._confirming is None or self._confirming.done():
            self._confirming = asyncio.create_task(self._confirm())

    async def _confirm(self) -> None:
        """Away only when a ping on a connection of its own has no answer within CONFIRM times the timeout either."""
        bound = CONFIRM * self.timeout
        prober = redis.asyncio.Redis.from_url(
            self.address.url, single_connection_client=True, **self._connecting(bound)
        )
        try:
            async with asyncio.timeout(bound):
                await prober.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            self.lost(
                exc
                if str(exc)
                else TimeoutError(f"no answer within SHIM_CACHE_TIMEOUT, nor to a ping within {bound:g} s")
            )
        finally:
            with contextlib.suppress(RedisError, OSError):
                await prober.aclose()

    def refused(self, exc: ResponseError) -> None:
        """A command Redis answered with an error: counted, and logged once per kind of error."""
        self.refusals += 1
        self.last_refusal = (self.clock(), str(exc))
        kind = f"{type(exc).__name__} {str(exc).split(' ', 1)[0]}"
        if kind not in self._refusal_kinds:
            self._refusal_kinds.add(kind)
            logger.warning(
                "Redis at %s refused a command: %s; that call used this replica's own state", self.address, exc
            )

    def lost(self, exc: BaseException) -> None:
        """Redis failed a command: every part works in process until `watch` finds it answering again."""
        reason = _reason(exc, self.timeout)
        if self.available:
            self.available = False
            self.lost_count += 1
            self.since = self.clock()
            logger.warning(
                "Redis at %s (SHIM_CACHE_URL) is away: %s; this replica keeps its cache, rate limits and upstream "
                "state in process until it answers again",
                self.address,
                reason,
            )
        self.problem = reason

    async def ping(self) -> bool:
        """Whether Redis answers now; marks it back (logged) when it does after being away."""
        if not self.available:
            # The pool's idle connections are to the Redis that went away (a restarted one has closed them): the
            # first ping would fail on one of them, a second late.
            with contextlib.suppress(RedisError, OSError):
                await self.pool.disconnect(inuse_connections=False)
        try:
            async with asyncio.timeout(self.timeout):
                await self.client.ping()
                # The cache's locks and the rate limits run scripts: a Redis (or an ACL user) that refuses them
                # cannot be shared through, and is taken for away with the reason.
                await self.client.eval("return 1", 0)
        except ResponseError as exc:
            self.problem = f"it refuses scripts (EVAL), which the shared cache's locks and the rate limits need: {exc}"
            return False
        except (RedisError, OSError, TimeoutError) as exc:
            self.problem = _reason(exc, self.timeout)
            return False
        if not self.available:
            self.available = True
            self.problem = None
            self.since = self.clock()
            logger.info("Redis at %s answers: cache, rate limits and upstream state are shared", self.address)
        return True

    async def connect(self, *, required: bool) -> None:
        """The first ping, at start. Without an answer the replica starts in process and says why, or, when
        `required`, refuses to start (SharedStoreRequired)."""
        if await self.ping():
            await self._check_memory()
            return
        message = f"SHIM_CACHE_URL={self.address} cannot be used: {self.problem}"
        if required:
            raise SharedStoreRequired(f"{message}; SHIM_CACHE_REQUIRED is set, so the service does not start")
        logger.warning(
            "%s; starting with the cache, rate limits and upstream state in process, and trying again every %g s",
            message,
            RETRY,
        )

    async def _check_memory(self) -> None:
        """Warn when Redis may grow without bound or refuse writes once full: every shared document is kept for its
        TTL, so `maxmemory`, with a policy that evicts, is what bounds it (README, "Replicas on one Redis")."""
        try:
            async with asyncio.timeout(self.timeout):
                found = await self.client.config_get("maxmemory*")
        except (RedisError, OSError, TimeoutError):
            return  # CONFIG is often disabled on a managed Redis: its operator sets the limits
        pairs = {text(key): text(value) for key, value in dict(found).items() if value is not None}
        self.memory = {key: pairs[key] for key in ("maxmemory", "maxmemory-policy") if key in pairs}
        if self.memory.get("maxmemory") == "0":
            logger.warning(
                "Redis at %s has no maxmemory: the shared cache keeps every document it is given for its TTL, and a "
                "crawl gives it every project; set maxmemory and maxmemory-policy allkeys-lru",
                self.address,
            )
        elif self.memory.get("maxmemory-policy", "").startswith("noeviction"):
            logger.warning(
                "Redis at %s evicts nothing (maxmemory-policy noeviction): once full it refuses the cache's writes; "
                "set maxmemory-policy allkeys-lru",
                self.address,
            )

    async def watch(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """For the service's life: while Redis is away, ping it every RETRY seconds."""
        while True:
            await sleep(RETRY)
            if not self.available:
                await self.ping()

    @property
    def refusing(self) -> bool:
        """Whether Redis refused a command within the last REFUSALS_SHOWN seconds (a full Redis that evicts nothing
        refuses writes): answering, and shared for what it accepts, but /healthz says degraded."""
        return self.last_refusal is not None and self.clock() - self.last_refusal[0] < REFUSALS_SHOWN

    @property
    def degraded(self) -> bool:
        return not self.available or self.refusing

    def report(self) -> dict[str, object]:
        """For /healthz: where (redacted), whether shared now, since when, and why not."""
        return {
            "url": str(self.address),
            "state": "degraded" if not self.available else "refusing" if self.refusing else "shared",
            "since": self.since,
            "problem": self.problem,
            "times_lost": self.lost_count,
            "refused_commands": self.refusals,
            "last_refusal": None if self.last_refusal is None else self.last_refusal[1],
            "memory": self.memory,
        }

    async def close(self) -> None:
        await self.client.aclose()
        await self.pool.aclose()


def _no_answer_in_time(exc: BaseException) -> bool:
    """A command that timed out, or waited past the timeout for a connection of the pool."""
    if isinstance(exc, TimeoutError | RedisTimeoutError):
        return True
    return isinstance(exc, RedisConnectionError) and str(exc).startswith("No connection available")


def _reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within SHIM_CACHE_TIMEOUT={timeout:g} s"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
