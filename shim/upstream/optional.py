"""Optional reads: sources an answer does without (core metadata, RSS times, per-release JSON where the project
document answers). One that fails costs the answer only what it would have added:

- it is tried once, within a short budget (the client's `optional=True`), never retried;
- its cause is logged once per source and origin when it starts failing, and once when it reads again;
- after a failure to reach it, that origin is left alone for that source for `pause` seconds (the circuit's
  cooldown): the calls meanwhile answer without it, at once, and are counted as skipped;
- a malformed answer is counted and logged the same way, but pauses nothing: the next file may be fine.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from shim.errors import UpstreamError, UpstreamMalformed
from shim.upstream.urls import redact_url

__all__ = ["OptionalReads"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Sources times origins tracked; an upstream only ever has a few of each, so this bounds a hostile document.
MAX_TRACKED = 64


@dataclass
class _Record:
    failures: int = 0
    malformed: int = 0
    skipped: int = 0
    failing: bool = False
    paused_until: float = 0.0
    last_error: str | None = None

    def report(self, now: float) -> dict[str, object]:
        state = "ok" if not self.failing else ("paused" if now < self.paused_until else "failing")
        return {
            "state": state,
            "failures": self.failures,
            "malformed": self.malformed,
            "skipped": self.skipped,
            "last_error": self.last_error,
        }


class OptionalReads:
    def __init__(self, clock: Callable[[], float], *, pause: float) -> None:
        self.clock = clock
        self.pause = pause
        self._records: dict[tuple[str, str], _Record] = {}

    def _record(self, source: str, origin: str) -> _Record | None:
        record = self._records.get((source, origin))
        if record is None and len(self._records) < MAX_TRACKED:
            record = self._records[(source, origin)] = _Record()
        return record

    async def read(self, source: str, origin: str, fetch: Callable[[], Awaitable[T]]) -> T | None:
        """What `fetch()` gives, or None when `source` at `origin` cannot be read now (or is left alone)."""
        record = self._record(source, origin)
        now = self.clock()
        if record is not None and now < record.paused_until:
            record.skipped += 1
            return None
        try:
            result = await fetch()
        except UpstreamError as exc:
            self._failed(source, origin, record, exc)
            return None
        if record is not None and record.failing:
            record.failing = False
            logger.info("%s from %s reads again", source, origin)
        return result

    def _failed(self, source: str, origin: str, record: _Record | None, exc: UpstreamError) -> None:
        malformed = isinstance(exc, UpstreamMalformed)
        if record is None:
            logger.debug("%s from %s cannot be read: %s", source, origin, exc)
            return
        record.last_error = redact_url(str(exc))[:500]
        if malformed:
            record.malformed += 1
        else:
            record.failures += 1
            record.paused_until = self.clock() + self.pause
        if not record.failing:
            record.failing = True
            then = "" if malformed else f"; not asked again for {self.pause:g} s"
            logger.warning("%s from %s cannot be read, answers go without it%s: %s", source, origin, then, exc)

    def failing(self, source: str, origin: str) -> bool:
        """Whether `source` at `origin` failed last time it was read (an answer that needs it says so)."""
        record = self._records.get((source, origin))
        return record is not None and record.failing

    def report(self) -> dict[str, dict[str, dict[str, object]]]:
        """Per source, per origin: its state and its counts (/healthz)."""
        now = self.clock()
        shown: dict[str, dict[str, dict[str, object]]] = {}
        for (source, origin), record in self._records.items():
            shown.setdefault(source, {})[origin] = record.report(now)
        return shown
