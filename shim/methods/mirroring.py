"""Mirroring and the change feed: the whole index's names and serials, and the change rows since a serial or
a time (bandersnatch, change-feed pollers)."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from typing import Any
from xml.sax.saxutils import escape

from pydantic import StrictBool, StrictInt

from shim.catalog.rows import ChangeRow
from shim.errors import Refused
from shim.methods.reading import index_snapshot, memo, read_catalog
from shim.upstream.compact import NO_SERIAL, SEP, NameList
from shim.upstream.simple_index import IndexSnapshot
from shim.xmlrpc.compressed import Deflated
from shim.xmlrpc.context import CallContext
from shim.xmlrpc.protocol import INT32, INT64, WireError, encode_value
from shim.xmlrpc.text import clean_for_xml, strip_illegal_xml

__all__ = [
    "changelog",
    "changelog_last_serial",
    "changelog_since_serial",
    "list_packages",
    "list_packages_with_serial",
    "names_answer",
    "serials_answer",
]


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
    allow_i8 = context.allow_i8
    return await memo(context, snapshot, "list_packages_with_serial", lambda: serials_answer(snapshot, allow_i8))


async def list_packages(context: CallContext) -> Deflated:
    """Every project's display name, from the Simple index."""
    snapshot = await index_snapshot(context)
    return await memo(context, snapshot, "list_packages", lambda: names_answer(snapshot))


def names_answer(snapshot: IndexSnapshot) -> Iterator[bytes]:
    """list_packages' `<value>`, in chunks of some thousands of names encoded straight from the listing's buffer:
    the bytes `encode_value` gives for the list of names, without that list."""
    names = snapshot.listing.names
    yield b"<value><array><data>\n"
    for _, chunk in names.chunks():
        if chunk:
            texts = "</string></value>\n<value><string>".join(_texts(chunk, names.plain))
            yield f"<value><string>{texts}</string></value>\n".encode()
    yield b"</data></array></value>\n"


def serials_answer(snapshot: IndexSnapshot, allow_i8: bool) -> Iterator[bytes]:
    """list_packages_with_serial's `<value>`, in chunks, as `encode_value` gives the struct {name: serial} of every
    project with a serial (one whose serial is malformed has none to give: the Simple index logged it). An
    out-of-range serial is the WireError encode_value raises, before any chunk."""
    listing = snapshot.listing
    serials = listing.serials
    assert serials is not None
    if snapshot.lookup.shadowed:  # a display name listed twice: a dict's order and last value, as before
        pairs = zip(listing.names, serials, strict=True)
        return encode_value({n: s for n, s in pairs if s != NO_SERIAL}, allow_i8=allow_i8).chunks()
    high = (INT64 if allow_i8 else INT32)[1]
    if len(serials) and max(serials) > high:  # serials are never below 0 (NO_SERIAL is skipped)
        raise WireError(f"integer {next(s for s in serials if s > high)} is outside the range the client can read")
    return _members(listing.names, serials)


def _members(names: NameList, serials: array[int]) -> Iterator[bytes]:
    yield b"<value><struct>\n"
    for start, chunk in names.chunks():
        members = []
        for text, serial in zip(_texts(chunk, names.plain), serials[start : start + len(chunk)], strict=True):
            if serial != NO_SERIAL:
                tag = "int" if serial <= INT32[1] else "i8"
                members.append(f"<member>\n<name>{text}</name>\n<value><{tag}>{serial}</{tag}></value>\n</member>\n")
        yield "".join(members).encode()
    yield b"</struct></value>\n"


def _texts(chunk: list[str], plain: bool) -> list[str]:
    """The names as the marshaller writes them: illegal code points stripped, then escaped (in one pass per chunk
    where no name holds the separator)."""
    if not plain:
        return [escape(strip_illegal_xml(name)) for name in chunk]
    return escape(strip_illegal_xml(SEP.join(chunk))).split(SEP)


async def changelog(context: CallContext, since: StrictInt, with_ids: StrictBool = False) -> list[Any]:
    """Rows newer than a POSIX time, by serial: 4-tuples, or 5 with `with_ids` (actions not cleaned, as PyPI)."""
    rows = await _rows(context, context.services.catalog.rows_after_time, since)
    if with_ids:
        return [[r.name, r.version, r.timestamp, r.action, r.serial] for r in rows]
    return [[r.name, r.version, r.timestamp, r.action] for r in rows]
