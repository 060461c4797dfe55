"""What the upstream offers, learnt so that one stray 404 cannot fake it.

Each capability is set by an explicit probe (shim.upstream.probes: at start, then periodically, on a project
and version the index lists), by an answer that shows it, or switched off by `MISSES` misses in a row on
distinct documents the index lists; one missing document never switches a route off for the whole process.
The Simple index's own capabilities (JSON, serials) are read from the copy held (shim.upstream.simple_index).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["MISSES", "Capabilities", "Capability"]

logger = logging.getLogger(__name__)

# Misses in a row, on distinct documents, that switch a capability off until the next probe or answer.
MISSES = 3


@dataclass
class Capability:
    name: str
    fallback: str  # what the service does without it, for the one log line that says it is off
    clock: Callable[[], float] = time.time
    offered: bool | None = None  # None: not known yet
    learnt: str = "not yet"  # from a "probe", from "answers", or from "misses"
    at: float | None = None
    _misses: set[str] = field(default_factory=set, repr=False)

    def _set(self, offered: bool, learnt: str) -> None:
        if offered is False and self.offered is not False:
            logger.warning("the upstream has no %s (learnt from %s); %s", self.name, learnt, self.fallback)
        elif offered is True and self.offered is False:
            logger.info("the upstream offers %s again (learnt from %s)", self.name, learnt)
        self.offered, self.learnt, self.at = offered, learnt, self.clock()
        self._misses.clear()

    def probed(self, offered: bool) -> None:
        self._set(offered, "probe")

    def answered(self) -> None:
        """A document this capability serves was there."""
        if self.offered is not True:
            self._set(True, "answers")
        self._misses.clear()

    def missed(self, document: str) -> None:
        """A document the index lists, which this capability would serve, was not there."""
        if self.offered is False:
            return
        self._misses.add(document)
        if len(self._misses) >= MISSES:
            self._set(False, "misses")

    @property
    def usable(self) -> bool:
        """Whether to ask for it: unless known to be missing."""
        return self.offered is not False

    def report(self) -> dict[str, object]:
        return {"offered": self.offered, "learnt": self.learnt, "at": self.at, "misses_in_a_row": len(self._misses)}


@dataclass
class Capabilities:
    per_version_json: Capability = field(
        default_factory=lambda: Capability(
            "per-release JSON", "release_data reads an older release from its core metadata or its files"
        )
    )
    core_metadata: Capability = field(
        default_factory=lambda: Capability(
            "core metadata files (PEP 658)", "only files that declare one are asked for theirs"
        )
    )
    ownership: Capability = field(
        default_factory=lambda: Capability("`ownership` in its JSON API", "package_roles says so in a fault")
    )

    def report(self) -> dict[str, dict[str, object]]:
        return {
            "per_version_json": self.per_version_json.report(),
            "core_metadata": self.core_metadata.report(),
            "ownership": self.ownership.report(),
        }
