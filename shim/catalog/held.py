"""The serial the catalog holds for each listed project, as its writer keeps it between two passes over the Simple
index: a snapshot of the index it matches, and the few projects it differs from that snapshot on. At the real
index's size a dict of every project cost a hundred megabytes for as long as the service ran."""

from __future__ import annotations

from array import array
from collections.abc import Iterable

from shim.upstream.changes import differences
from shim.upstream.compact import NameList
from shim.upstream.parsers import IndexListing
from shim.upstream.snapshot import IndexSnapshot

__all__ = ["HeldSerials"]


class HeldSerials:
    def __init__(self, base: IndexSnapshot) -> None:
        self.base = base
        self.moved: dict[str, int | None] = {}  # where the catalog differs from `base` (None: not held)

    @classmethod
    def of_rows(cls, rows: Iterable[tuple[str, int]], snapshot: IndexSnapshot | None) -> HeldSerials:
        """What the catalog's file holds (normalised name, serial of every listed project), read after a restart:
        as it differs from the Simple index's `snapshot` (a few projects, when the file is recent), else as a
        snapshot of its own."""
        if snapshot is None:
            names, serials = [], array("q")
            for name, serial in rows:
                names.append(name)
                serials.append(serial)
            return cls(IndexSnapshot.build(IndexListing(NameList.of(names), serials, None), None, 0.0, True))
        held = cls(snapshot)
        seen = bytearray(len(snapshot.listing.names))
        for name, serial in rows:
            position = snapshot.position_of(name)
            if position is not None:
                seen[position] = 1
            if position is None or snapshot.serial_at(position) != serial:
                held.moved[name] = serial
        for position, name in snapshot.projects():  # listed now, not held: the catalog has no serial for it
            if not seen[position] and snapshot.serial_at(position) is not None:
                held.moved[name] = None
        return held

    def get(self, normalized: str) -> int | None:
        if normalized in self.moved:
            return self.moved[normalized]
        return self.base.serial_of(normalized)

    def __setitem__(self, normalized: str, serial: int) -> None:
        self.moved[normalized] = serial

    def pop(self, normalized: str) -> None:
        self.moved[normalized] = None

    def candidates(self, snapshot: IndexSnapshot) -> list[str]:
        """Every project whose serial held may differ from what `snapshot` lists (listed or not): for any other, both
        give the same serial, or neither gives one."""
        found = dict.fromkeys(d.name for d in differences(self.base, snapshot))
        found.update(dict.fromkeys(self.moved))
        return list(found)

    def rebase(self, snapshot: IndexSnapshot, candidates: list[str]) -> None:
        """Hold the same serials relative to `snapshot` (`candidates` being what `candidates(snapshot)` gave)."""
        held = {name: self.get(name) for name in candidates}
        self.base = snapshot
        self.moved = {name: serial for name, serial in held.items() if serial != snapshot.serial_of(name)}
