"""What the upstream offers, learnt so that one stray 404 cannot fake it.

A capability is on once a document it serves is there. A miss (a document the index lists, not there) never
switches it off alone: `MISSES` misses in a row, on distinct documents, do, or a probe that settles it (for
per-release JSON, the project's latest release, which the route has if it exists: shim.upstream.documents).
Off, its fallback is used without asking until `recheck` seconds have passed; then the next call asks again,
as a probe. The Simple index's own capabilities (JSON, serials) are read from the copy it holds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["MISSES", "Capabilities", "Capability"]

logger = logging.getLogger(__name__)

# Misses in a row, on distinct documents, that switch off a capability that had answered.
MISSES = 3


@dataclass
class Capability:
    name: str
    fallback: str  # what the service does without it, for the one log line that says it is off
    clock: Callable[[], float]
    recheck: float  # seconds, once off, before it is asked again
    offered: bool | None = None  # None: not known yet
    learnt: str = "not yet"  # from a "probe", from "answers", or from "misses"
    at: float | None = None  # on `clock` (the guard's): when it was learnt, for the recheck
    since: float | None = None  # the same moment as a POSIX time, for /healthz
    _misses: set[str] = field(default_factory=set, repr=False)

    def _set(self, offered: bool, learnt: str) -> None:
        if offered is False and self.offered is not False:
            logger.warning("the upstream has no %s (learnt from %s); %s", self.name, learnt, self.fallback)
        elif offered is True and self.offered is False:
            logger.info("the upstream offers %s again", self.name)
        self.offered, self.learnt, self.at, self.since = offered, learnt, self.clock(), time.time()
        self._misses.clear()

    def probed(self, offered: bool) -> None:
        """A probe's finding: a document the capability must serve, if it has it, was there or not."""
        self._set(offered, "probe")

    def answered(self) -> None:
        """A document this capability serves was there."""
        if self.offered is not True:
            self._set(True, "answers")
        self._misses.clear()

    def missed(self, document: str) -> bool:
        """A document the index lists, which this capability would serve, was not there; True while the capability
        is not known yet: a probe may then settle it at once."""
        if self.offered is False:
            self._set(False, self.learnt)  # asked again once its recheck was due: still missing
            return False
        self._misses.add(document)
        if len(self._misses) >= MISSES:
            self._set(False, "misses")
            return False
        return self.offered is None

    def observed(self, offered: bool) -> None:
        """Every document says whether it has it (the JSON API's `ownership`): the last one read tells."""
        if offered is not self.offered:
            self._set(offered, "answers")

    @property
    def usable(self) -> bool:
        """Whether to ask for it: unless known to be missing, and not yet due to be asked again."""
        return self.offered is not False or self.at is None or self.clock() >= self.at + self.recheck

    def report(self) -> dict[str, object]:
        return {"offered": self.offered, "learnt": self.learnt, "at": self.since, "misses_in_a_row": len(self._misses)}


class Capabilities:
    def __init__(self, clock: Callable[[], float], *, recheck: float) -> None:
        self.per_version_json = Capability(
            "per-release JSON",
            "release_data reads an older release from its core metadata or its files",
            clock,
            recheck,
        )
        self.core_metadata = Capability(
            "core metadata files (PEP 658)",
            "only files that declare one are asked for theirs",
            clock,
            recheck,
        )
        self.ownership = Capability("`ownership` in its JSON API", "package_roles says so in a fault", clock, recheck)
        self.ranges = Capability(
            "Range support on its files host",
            "release_data reads sdists, not wheels, for an older release's metadata",
            clock,
            recheck,
        )

    def report(self) -> dict[str, dict[str, object]]:
        return {name: capability.report() for name, capability in vars(self).items()}
