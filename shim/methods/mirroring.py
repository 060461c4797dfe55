"""Mirroring and the change feed: the whole index's names and serials, and the change rows since a serial or
a time (bandersnatch, change-feed pollers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import StrictBool, StrictInt

from shim.catalog.rows import ChangeRow
from shim.errors import Refused
from shim.methods.reading import index_snapshot, memo, read_catalog
from shim.xmlrpc.compressed import Deflated
from shim.xmlrpc.context import CallContext
from shim.xmlrpc.text import clean_for_xml

__all__ = ["changelog", "changelog_last_serial", "changelog_since_serial", "list_packages", "list_packages_with_serial"]


async def changelog_last_serial(context: CallContext) -> int | None:
    """The index's last serial: the Simple index's `meta._last-serial` (or its X-PyPI-Last-Serial header), or the
    catalog's highest serial when that is higher: one reported before a restart (the Simple index may answer from
    an older copy now), one its writer in another process has seen, or one the feed poller read from a project's
    JSON since the Simple index was read. It never goes back while either holds."""
    listing = (await index_snapshot(context)).listing
    catalog = context.services.catalog
    known = [s for s in (listing.last_serial, await catalog.run(catalog.last_serial)) if s is not None]
    if not known:
        raise Refused(
            RuntimeError(
                "The upstream index publishes no serials, so there is no last serial to give; it needs "
                "X-PyPI-Last-Serial on its Simple index, or a JSON Simple index (PEP 691) with _last-serial."
            )
        )
    last = max(known)
    # PyPI answers nil for an empty journal, where the Simple index says 0.
    return None if last == 0 and not listing.names else last


async def _rows(context: CallContext, read: Callable[[int], list[ChangeRow]], value: int) -> list[ChangeRow]:
    return await read_catalog(context, read, value, needs_serials=True)


async def changelog_since_serial(context: CallContext, serial: StrictInt) -> list[Any]:
    """`[name, version, timestamp, action, serial]` rows above `serial`, from the catalog."""
    rows = await _rows(context, context.services.catalog.rows_since, serial)
    return [[r.name, r.version, r.timestamp, clean_for_xml(r.action), r.serial] for r in rows]


async def list_packages_with_serial(context: CallContext) -> Deflated:
    """Every project's display name and last serial, from the Simple index (PEP 691 JSON)."""
    snapshot = await index_snapshot(context)
    serials = snapshot.listing.serials
    if serials is None:
        raise Refused(
            RuntimeError(
                "The upstream's Simple index gives no per-project serials (it is HTML only); use list_packages."
            )
        )
    names = snapshot.listing.names

    def build() -> dict[str, int]:
        # A project whose serial is malformed has none to give (the Simple index logged it).
        return {name: serial for name, serial in zip(names, serials, strict=True) if serial is not None}

    return memo(context, snapshot, "list_packages_with_serial", build)


async def list_packages(context: CallContext) -> Deflated:
    """Every project's display name, from the Simple index."""
    snapshot = await index_snapshot(context)
    return memo(context, snapshot, "list_packages", lambda: snapshot.listing.names)


async def changelog(context: CallContext, since: StrictInt, with_ids: StrictBool = False) -> list[Any]:
    """Rows newer than a POSIX time, by serial: 4-tuples, or 5 with `with_ids` (actions not cleaned, as PyPI)."""
    rows = await _rows(context, context.services.catalog.rows_after_time, since)
    if with_ids:
        return [[r.name, r.version, r.timestamp, r.action, r.serial] for r in rows]
    return [[r.name, r.version, r.timestamp, r.action] for r in rows]
