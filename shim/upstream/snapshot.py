"""One copy of the Simple index as the service holds it: the listing (compact), every name's normalised form, and a
lookup from a normalised name to its place; the whole answers encoded from it are kept with it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from shim.upstream.compact import NO_SERIAL, Lookup, NameList, normalized_names
from shim.upstream.parsers import IndexListing

__all__ = ["IndexSnapshot"]


@dataclass(frozen=True)
class IndexSnapshot:
    listing: IndexListing
    etag: str | None
    fetched_at: float
    is_json: bool
    # Every name's PEP 503 form, in the listing's order (the listing's own names when they are normalised).
    normalized: NameList = field(repr=False)
    lookup: Lookup = field(repr=False, compare=False)
    # Whole answers built from this snapshot (hundreds of thousands of names), encoded once.
    answers: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, listing: IndexListing, etag: str | None, fetched_at: float, is_json: bool) -> IndexSnapshot:
        normalized = normalized_names(listing.names)
        return cls(listing, etag, fetched_at, is_json, normalized, Lookup(normalized))

    def position_of(self, normalized: str) -> int | None:
        """Where the listing holds the project (the later place of one listed twice); None: not listed."""
        return self.lookup.position(normalized)

    def serial_at(self, position: int) -> int | None:
        serials = self.listing.serials
        serial = NO_SERIAL if serials is None else serials[position]
        return None if serial == NO_SERIAL else serial

    def serial_of(self, normalized: str) -> int | None:
        position = self.position_of(normalized)
        return None if position is None else self.serial_at(position)

    def __contains__(self, normalized: object) -> bool:
        return isinstance(normalized, str) and self.position_of(normalized) is not None

    @property
    def distinct(self) -> int:
        """How many projects it lists (a name listed twice is one project)."""
        return self.lookup.distinct

    def projects(self) -> Iterator[tuple[int, str]]:
        """(position, normalised name) of every project, once each, in the listing's order."""
        shadowed = self.lookup.shadowed
        for start, names in self.normalized.chunks():
            for position, name in enumerate(names, start):
                if not shadowed or position not in shadowed:
                    yield position, name
