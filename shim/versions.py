"""Version order as PyPI kept it: shared by the catalog (change rows) and the methods (answers)."""

from __future__ import annotations

from collections.abc import Iterable

from packaging_legacy.version import parse as legacy_parse

__all__ = ["legacy_sorted"]


def legacy_sorted(versions: Iterable[str]) -> list[str]:
    """Versions in PyPI's `_pypi_ordering`, lowest first (packaging-legacy, as Warehouse sorted them).

    Equal versions (`1.0` and `1.0.0`) keep the order given: Warehouse broke such ties by row id.
    """
    return sorted(versions, key=legacy_parse)
