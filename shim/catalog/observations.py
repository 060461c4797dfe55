"""What calls read, kept: every project document the service fetches for a call or a pass-through updates the
catalog (summary, latest version, keywords, classifiers, roles), so a call's knowledge is never thrown away.

Every process does it, writer or standby, with idempotent upserts that never touch a change row or a serial
(`CatalogWriter.observe`). The call never waits for it: the document is handed to a bounded queue (one slot per
project, the newest copy wins) that a task drains into SQLite in a worker thread. The queue keeps no document in
memory (the cache does, within its budget); a full queue, a document the cache let go before its turn, or a failed
write costs the catalog that copy (the refresher or the crawler reads it again), never the call its answer. A read of
the catalog in the same process waits briefly for what is pending, so `user_packages` right after
`package_roles` sees the roles just read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import weakref

from shim.catalog.changes import project_metadata, releases_of
from shim.catalog.problems import CatalogUnavailable
from shim.catalog.writes import CatalogWriter
from shim.upstream.parsers import ProjectDoc

__all__ = ["CatalogObserver", "Observations"]

logger = logging.getLogger(__name__)


class CatalogObserver(CatalogWriter):
    """The catalog opened as it is, to keep what calls read: it never creates the schema nor moves a damaged file
    aside (the writer does), and what it finds of the file is its own, never reported as the writer's."""

    creates_schema = False


class Observations:
    """Project documents read for calls, on their way to the catalog."""

    def __init__(self, catalog: CatalogObserver, *, capacity: int = 64, ready: asyncio.Event | None = None) -> None:
        self.catalog = catalog
        # Set once the catalog lists the projects (the writer's first pass here): what is read before waits for it.
        self.ready = ready
        self.capacity = capacity  # documents held at most: each may be megabytes
        # By project, in line: the newest copy read (weakly: the cache alone decides how long a document stays in
        # memory) and the ticket it was handed over with (the first copy's: a newer one keeps its place in line).
        self._pending: dict[str, tuple[weakref.ref[ProjectDoc], int]] = {}
        self._ticket = 0  # the last handed out
        self._writing: int | None = None  # the ticket of the write under way
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self.kept = 0
        self.dropped = 0
        self.failed = 0
        self._problem: str | None = None  # the last failure logged: a lasting one is logged once

    def offer(self, normalized: str, doc: ProjectDoc) -> None:
        """Hand over a document just read; returns at once."""
        slot = self._pending.get(normalized)
        if slot is None and len(self._pending) >= self.capacity:
            self.dropped += 1
            return
        self._ticket += 1
        if slot is None:
            self._pending[normalized] = (weakref.ref(doc), self._ticket)
        else:
            held = slot[0]()
            if held is None or (held.last_serial or 0) <= (doc.last_serial or 0):
                self._pending[normalized] = (weakref.ref(doc), slot[1])
        self._wake.set()

    def _written_up_to(self, ticket: int) -> bool:
        """Whether every copy handed over up to `ticket` is written (or given up)."""
        oldest = self._writing
        if oldest is None and self._pending:
            oldest = next(iter(self._pending.values()))[1]  # the line is in ticket order
        return oldest is None or oldest > ticket

    async def settled(self, timeout: float) -> None:
        """Wait, at most `timeout` seconds, until what was handed over before now is written (or given up): never
        for what others hand over meanwhile, so a steady stream of reads never holds a caller up."""
        target = self._ticket
        if self._written_up_to(target):
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._progress:
                await self._progress.wait_for(lambda: self._written_up_to(target))

    async def run(self) -> None:
        """Drain the queue for ever; each failure is logged (once while it lasts) and the next document tried."""
        if self.ready is not None:
            await self.ready.wait()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                normalized = next(iter(self._pending))
                slot, self._writing = self._pending.pop(normalized)
                try:
                    await self._write(normalized, slot)
                finally:
                    self._writing = None
                    async with self._progress:
                        self._progress.notify_all()

    async def _write(self, normalized: str, slot: weakref.ref[ProjectDoc]) -> None:
        doc = slot()
        if doc is None:  # dropped by the cache before its turn: the refresher or the crawler reads it again
            self.dropped += 1
            return
        try:
            kept = await self.catalog.run(self._observe, normalized, doc)
        except sqlite3.OperationalError as exc:
            if str(exc).startswith("no such table"):  # before its writer made the schema: nothing listed to update
                return
            self._failed(f"{type(exc).__name__}: {exc}")
        except (CatalogUnavailable, sqlite3.Error, OSError) as exc:
            self._failed(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug here must not stop what follows
            logger.exception("what a call read of %s was not kept", normalized)
            self._failed(repr(exc), logged=True)
        else:
            self.kept += int(kept)
            if self._problem is not None:
                logger.info("what calls read reaches the catalog again")
                self._problem = None

    def _observe(self, normalized: str, doc: ProjectDoc) -> bool:
        # In the worker thread: a project of thousands of releases is milliseconds of work.
        return self.catalog.observe(normalized, doc.last_serial, releases_of(doc), project_metadata(doc))

    def _failed(self, problem: str, *, logged: bool = False) -> None:
        self.failed += 1
        if problem != self._problem and not logged:
            logger.warning("what calls read is not kept in the catalog %s: %s", self.catalog.path, problem)
        self._problem = problem

    def close(self) -> None:
        self.catalog.close()
