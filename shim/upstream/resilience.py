"""Protecting the upstream, and the service from it: retries, a shared back-off, a circuit, a request cap.

- Idempotent GETs are retried on connection failures, timeouts and 5xx, a bounded number of times, with
  jittered exponential back-off.
- A 429 or 503 with `Retry-After` pauses every caller, not only the one that got it: requests wait for the
  pause when it ends before their deadline, and fail at once otherwise. The pause lasts `max_retry_after`
  at most, whatever the upstream asks (seconds or an HTTP date).
- After `threshold` consecutive failures the circuit opens: requests fail at once, without reaching the
  upstream, until `cooldown` has passed; then one request probes it: any answer closes the circuit, no
  answer (a failure, the deadline) opens it again.
- At most `max_concurrent` requests are in flight at once.

One guard per origin (the index, its files host): a files host that fails never refuses a request to the
index, nor the reverse. `Guard.sibling` makes another origin's guard, on the same limits and clock. Replicas
sharing a Redis (SHIM_CACHE_URL) tell each other's guards what they learn: shim.upstream.shared_guard, through the
`..._elsewhere` methods here.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Guard", "GuardConfig", "retry_after"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuardConfig:
    """The guard's limits. Each one but the first back-off is a setting, whose default the registry states:
    shim.wiring builds this from the settings."""

    retries: int
    deadline: float  # a whole document request, retries and waits included
    threshold: int
    cooldown: float
    max_retry_after: float  # the longest shared pause a Retry-After imposes
    max_concurrent: int
    backoff: float = 0.2  # seconds before the first retry; doubled each time, with jitter


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


@dataclass
class Guard:
    config: GuardConfig
    origin: str = ""  # `scheme://host[:port]`, as /healthz shows it
    clock: Callable[[], float] = time.monotonic
    # Every wait of the guard's, the back-off between retries and the shared pause, goes through `sleep`.
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    jitter: Callable[[], float] = random.random
    failures: int = 0  # consecutive
    open_until: float = 0.0
    resume_at: float = 0.0  # the shared back-off after a 429/503
    probing: bool = False
    openings: int = 0  # times the circuit opened (or a probe failed): each is news for the other replicas
    counters: dict[str, int] = field(default_factory=dict)
    _slots: asyncio.Semaphore | None = None

    @property
    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.config.max_concurrent)
        return self._slots

    def sibling(self, origin: str) -> Guard:
        """A guard of its own for another origin: the same limits, clock and waits, none of this one's state."""
        return Guard(self.config, origin, clock=self.clock, sleep=self.sleep, jitter=self.jitter)

    def report(self) -> dict[str, object]:
        return {"circuit": self.state, "consecutive_failures": self.failures, **self.counters}

    def count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1

    @property
    def tripped(self) -> bool:
        """Open or half-open: enough failures in a row, and no answer since."""
        return self.failures >= self.config.threshold

    @property
    def state(self) -> str:
        if self.tripped:
            return "half-open" if self.clock() >= self.open_until else "open"
        return "closed"

    def refusal(self) -> str | None:
        """Why the circuit lets no request go now (open, or its probe is out); None when one may go."""
        if not self.tripped:
            return None
        if self.clock() < self.open_until or self.probing:
            return self._refused()
        return None

    def _refused(self) -> str:
        self.count("refused_by_circuit")
        return f"{self._named} keeps failing; the circuit is open"

    def admit(self) -> str | None:
        """None when a request may go now, which makes it the probe of a half-open circuit; else why not.
        Every request admitted must end in `succeeded`, `failed` or `released`."""
        refused = self.refusal()
        if refused is None and self.tripped:
            self.probing = True  # this request is the probe
        return refused

    async def pause(self, deadline: float) -> str | None:
        """Wait out a shared back-off that ends before `deadline`; else say why not."""
        wait = self.resume_at - self.clock()
        if wait <= 0:
            return None
        if self.clock() + wait > deadline:
            self.count("refused_by_backoff")
            return f"the upstream asked to wait {wait:.0f} s"
        await self.sleep(wait)
        return None

    def throttled(self, seconds: float) -> None:
        cap = self.config.max_retry_after
        if seconds > cap:
            # One answer must not stop every request for hours: the pause is ours to bound.
            logger.warning(
                "the upstream asked every caller to wait %.0f s; waiting SHIM_MAX_RETRY_AFTER=%g s", seconds, cap
            )
            seconds = cap
        else:
            logger.warning("the upstream asked every caller to wait %.1f s", seconds)
        self.resume_at = max(self.resume_at, self.clock() + seconds)
        self.count("throttled")

    def succeeded(self) -> None:
        if self.tripped:
            logger.info("%s answers again: circuit closed", self._named)
        self.failures = 0
        self.probing = False

    def released(self) -> None:
        """The probe ended with no word on the upstream (cancelled from outside): the next request probes."""
        self.probing = False

    def failed(self) -> None:
        self.failures += 1
        self.count("failures")
        if self.probing or self.failures == self.config.threshold:
            self.open_until = self.clock() + self.config.cooldown
            # Warned once, when it opens; each failed probe after that is the same outage, not news.
            log = logger.warning if self.failures == self.config.threshold else logger.info
            log(
                "%s failed %d times in a row: circuit open for %.0f s", self._named, self.failures, self.config.cooldown
            )
            self.openings += 1
        self.probing = False

    def opened_elsewhere(self, remaining: float) -> None:
        """Another replica opened the circuit (or it is half-open there): open here too, for `remaining` seconds."""
        if not self.tripped:
            logger.info("%s: circuit opened by another replica", self._named)
            self.failures = self.config.threshold
            self.count("opened_elsewhere")
        # Never longer than this replica's own cooldown, whatever Redis holds (another's setting, a damaged key).
        self.open_until = self.clock() + min(remaining, self.config.cooldown)

    def closed_elsewhere(self) -> None:
        """Another replica's probe had an answer: the circuit is closed here too."""
        logger.info("%s answers again: circuit closed by another replica", self._named)
        self.failures = 0
        self.probing = False

    def paused_elsewhere(self, remaining: float) -> None:
        """Another replica was asked to wait: every caller here waits as long (a pause is only ever lengthened)."""
        # Bounded by this replica's own SHIM_MAX_RETRY_AFTER, as a pause it is asked for itself is.
        self.resume_at = max(self.resume_at, self.clock() + min(remaining, self.config.max_retry_after))

    def refused_elsewhere(self) -> str:
        """This request would have probed, but another replica's probe is out: refused as an open circuit refuses."""
        self.probing = False
        return self._refused()

    @property
    def _named(self) -> str:
        return f"the upstream ({self.origin})" if self.origin else "the upstream"

    def backoff(self, attempt: int) -> float:
        return float(self.config.backoff * (2**attempt) * (0.5 + self.jitter()))
