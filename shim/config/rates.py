"""A rate, as the rate-limit settings take it: `N per second|minute|hour|day` (the `limits` library's notation)."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["RateLimit"]

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class RateLimit:
    amount: int
    window: int  # seconds

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """`3600 per hour`, `20 per 1 minute`, `100/second`: the `limits` library's notation."""
        match = re.fullmatch(r"\s*(\d+)\s*(?:per|/)\s*(\d+)?\s*(second|minute|hour|day)s?\s*", text.lower())
        if not match or int(match[1]) < 1:
            raise ValueError("not a rate such as `3600 per hour` (per second, minute, hour or day)")
        return cls(int(match[1]), int(match[2] or 1) * _UNITS[match[3]])

    def __str__(self) -> str:
        """The notation `parse` reads: `3600 per minute`, `20 per 5 minutes`."""
        for unit, size in reversed(_UNITS.items()):
            if self.window % size == 0:
                count = self.window // size
                return f"{self.amount} per {unit}" if count == 1 else f"{self.amount} per {count} {unit}s"
        raise AssertionError("every window is a whole number of seconds")
