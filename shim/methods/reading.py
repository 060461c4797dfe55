"""What the method families share: the project document by name, the Simple index snapshot, the catalog.

Each helper turns a missing or unreadable source into the answer PyPI gave for it (an empty answer, or a
`Refused` in PyPI's words), so the methods read as what they answer.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from shim.catalog.problems import CatalogUnavailable
from shim.catalog.refresher import missing_serials
from shim.errors import Refused
from shim.upstream.names import normalize_name
from shim.upstream.parsers import ProjectDoc
from shim.upstream.simple_index import IndexSnapshot
from shim.xmlrpc.compressed import Deflated
from shim.xmlrpc.context import CallContext
from shim.xmlrpc.protocol import Raw, WireError, encode_value

__all__ = ["encoded_once", "index_snapshot", "memo", "project", "read_catalog", "reads_settled"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Seconds a read of the catalog waits, at most, for what this process's calls read to be written there.
OBSERVED_WAIT = 2.0


async def project(context: CallContext, package_name: str) -> tuple[str, ProjectDoc] | None:
    """The project's normalised name and document; None for an invalid name (no request) or no project."""
    normalized = normalize_name(package_name)
    if normalized is None:
        return None
    doc = await context.services.store.project(normalized)
    return None if doc is None else (normalized, doc)


# What one document keeps of its answers: a few (a client asks for one release, or a few), small ones.
DOC_ANSWERS = 16
DOC_ANSWER_BYTES = 16 * 1024


def encoded_once(context: CallContext, doc: ProjectDoc, key: tuple[Any, ...], build: Callable[[], T]) -> Raw | T:
    """`build()`'s answer from `doc`, encoded once for as long as `doc` is the cache's copy: a cache hit then costs
    no rebuild and no encoding. An answer that cannot be encoded is left to dispatch, which says so."""
    key = (*key, context.allow_i8)
    answer: Raw | None = doc.answers.get(key)
    if answer is None:
        value = build()
        try:
            answer = encode_value(value, allow_i8=context.allow_i8)
        except WireError:
            return value
        if answer.size <= DOC_ANSWER_BYTES:
            if len(doc.answers) >= DOC_ANSWERS:
                doc.answers.clear()
            doc.answers[key] = answer
    return answer


async def index_snapshot(context: CallContext) -> IndexSnapshot:
    return await context.services.index.current()


async def memo(context: CallContext, snapshot: IndexSnapshot, method: str, build: Callable[[], Any]) -> Deflated:
    """A whole-index answer, encoded and deflated once per snapshot of the index, and kept deflated only.

    `build` gives the value (encoded here), its encoded `Raw`, or an iterator of the encoded `<value>` element's
    chunks, deflated as they come: the whole answer, uncompressed, need never be in memory at once. It runs in a
    worker thread (at the real index's size, a second and more that every other call would wait out), once: the
    callers that come meanwhile wait for the same build."""
    key = f"{method}:{context.allow_i8}"
    held = snapshot.answers.get(key)
    if isinstance(held, Deflated):
        return held
    if held is None:
        held = asyncio.ensure_future(asyncio.to_thread(_deflated, build, context.allow_i8))
        snapshot.answers[key] = held
        held.add_done_callback(lambda done: _settle(snapshot.answers, key, done))
    answer: Deflated = await asyncio.shield(held)
    return answer


def _deflated(build: Callable[[], Any], allow_i8: bool) -> Deflated:
    built = build()
    if isinstance(built, Iterator):
        chunks: Iterable[bytes] = built
    else:
        chunks = (built if isinstance(built, Raw) else encode_value(built, allow_i8=allow_i8)).chunks()
    return Deflated.response(chunks)


def _settle(answers: dict[str, Any], key: str, done: asyncio.Future[Deflated]) -> None:
    """The build done: its answer kept in its place, or, failed, its place freed for the next call to try again."""
    if answers.get(key) is not done:
        return
    if done.cancelled() or done.exception() is not None:
        del answers[key]
    else:
        answers[key] = done.result()


async def reads_settled(context: CallContext) -> None:
    """Wait (briefly) until what this process's calls just read (roles, summaries) is written to the catalog, so
    that an answer from the catalog reflects it."""
    observations = context.services.observations
    if observations is not None:
        await observations.settled(OBSERVED_WAIT)


async def read_catalog(context: CallContext, read: Callable[..., T], *args: Any, needs_serials: bool = False) -> T:
    """A read of the catalog, once the refresher in this process (if any) has made its first pass, and what this
    process read for calls is written there."""
    catalog = context.services.catalog
    ready = context.services.changes_ready
    if ready is not None and not ready.is_set():
        await ready.wait()  # as a first call waits for the first load of the Simple index
    await reads_settled(context)
    try:
        if needs_serials and await catalog.run(lambda: catalog.oldest_serial) is None:
            problem = catalog.state.cannot_write
            if problem is not None:  # its writer in this process cannot start the feed
                raise Refused(
                    RuntimeError(
                        f"The catalog {problem.reason}, so it has no change rows yet; "
                        "the change feed starts once an operator fixes that."
                    )
                )
            snapshot = context.services.index.snapshot
            if snapshot is not None and snapshot.listing.serials is None:  # no refresh would start the feed
                missing = missing_serials(snapshot)
                raise Refused(RuntimeError(missing[0].upper() + missing[1:] + "."))
            raise Refused(
                RuntimeError(
                    "The catalog has not seen the upstream's Simple index with serials yet; "
                    "the change feed starts at the first refresh."
                )
            )
        return await catalog.run(read, *args)
    except CatalogUnavailable as exc:
        logger.error("%s", exc)
        raise Refused(RuntimeError(_operator_must_fix(exc))) from None
    except sqlite3.DatabaseError as exc:
        logger.error("the catalog cannot be read: %s", exc)
        if catalog.state.cannot_write is not None:  # its writer here cannot rebuild it either
            raise Refused(RuntimeError(_operator_must_fix(catalog.state.cannot_write))) from None
        # Its writer (in another process) rebuilds a damaged file; until then, say so.
        raise Refused(RuntimeError("The catalog cannot be read right now; its writer rebuilds it.")) from None


def _operator_must_fix(problem: CatalogUnavailable) -> str:
    return f"The catalog {problem.reason}; the service answers from it again once an operator fixes that."
