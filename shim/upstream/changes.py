"""What differs between two copies of the Simple index, at its real size without a dict of either: the two are
walked side by side in the listing's order, comparing runs of names (one string comparison) and of serials (one
array comparison) at once, and only where a run differs name by name. A project added or gone costs a few
look-ups, and the rest of the index a few thousand comparisons done in C.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from shim.upstream.compact import NO_SERIAL
from shim.upstream.snapshot import IndexSnapshot

__all__ = ["Difference", "differences", "index_changes"]

RUNS = (4096, 256, 16)  # names compared at once, longest first


class Difference(NamedTuple):
    """One project whose listing differs: its serial before and after (None: malformed or none), and whether each
    copy lists it at all."""

    name: str
    before: int | None
    after: int | None
    listed_before: bool
    listed_after: bool


def index_changes(old: IndexSnapshot, new: IndexSnapshot) -> list[str]:
    """Projects that appeared, disappeared or rose in serial between two snapshots (a serial that fell, or that
    is malformed now, says nothing newer about the project than the old snapshot did)."""
    changed, gone = [], []
    for d in differences(old, new):
        if not d.listed_after:
            gone.append(d.name)
        elif not d.listed_before or (d.after is not None and (d.before is None or d.after > d.before)):
            changed.append(d.name)
    return changed + gone


def differences(old: IndexSnapshot, new: IndexSnapshot) -> Iterator[Difference]:
    """Every project listed by either copy whose serial, or whether it is listed, differs: those `new` lists in its
    order, then those only `old` lists."""
    if old.lookup.shadowed or new.lookup.shadowed or not (old.normalized.plain and new.normalized.plain):
        yield from _by_name(old, new)  # a name listed twice, or holding the separator: no runs to compare
        return
    a, b = old.normalized, new.normalized
    i = j = 0
    gone: list[str] = []
    while i < len(a) and j < len(b):
        for size in RUNS:
            if i + size <= len(a) and j + size <= len(b) and _same_run(old, i, new, j, size):
                i += size
                j += size
                break
        else:
            name, other = b[j], a[i]
            if name == other:
                yield from _compared(name, old.serial_at(i), new.serial_at(j))
                i += 1
                j += 1
                continue
            before = old.position_of(name)
            if before is None:
                yield Difference(name, None, new.serial_at(j), False, True)
                j += 1
            elif new.position_of(other) is None:
                gone.append(other)
                i += 1
            elif before < i:  # moved down the listing: met once it comes on the new side, as here
                yield from _compared(name, old.serial_at(before), new.serial_at(j))
                j += 1
            else:  # `other` moved up, and was compared when its new place came
                i += 1
    for position, name in enumerate(b.span(j, len(b)), j):
        before = old.position_of(name)
        if before is None:
            yield Difference(name, None, new.serial_at(position), False, True)
        else:
            yield from _compared(name, old.serial_at(before), new.serial_at(position))
    gone += [name for name in a.span(i, len(a)) if name not in new]
    for name in gone:
        yield Difference(name, old.serial_of(name), None, True, False)


def _compared(name: str, before: int | None, after: int | None) -> Iterator[Difference]:
    if before != after:
        yield Difference(name, before, after, True, True)


def _same_run(old: IndexSnapshot, i: int, new: IndexSnapshot, j: int, size: int) -> bool:
    a, b = old.normalized, new.normalized
    if a.text[a.starts[i] : a.starts[i + size] - 1] != b.text[b.starts[j] : b.starts[j + size] - 1]:
        return False
    x, y = old.listing.serials, new.listing.serials
    if x is None and y is None:
        return True
    run_x = [NO_SERIAL] * size if x is None else x[i : i + size]
    run_y = [NO_SERIAL] * size if y is None else y[j : j + size]
    return list(run_x) == list(run_y) if x is None or y is None else run_x == run_y


def _by_name(old: IndexSnapshot, new: IndexSnapshot) -> Iterator[Difference]:
    for position, name in new.projects():
        if name not in old:
            yield Difference(name, None, new.serial_at(position), False, True)
        else:
            yield from _compared(name, old.serial_of(name), new.serial_at(position))
    for _, name in old.projects():
        if name not in new:
            yield Difference(name, old.serial_of(name), None, True, False)
