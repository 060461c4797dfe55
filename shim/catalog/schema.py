"""The catalog's file: its SQL schema, opening it (never fatally), one connection used one caller at a time.

An embedded SQLite file, in WAL mode so that readers never wait for the writer. A missing file is created
by the writer; one SQLite calls corrupt is moved aside (never deleted) and rebuilt; one the service cannot
open or write is left as it is and reported (shim.catalog.problems); a file at a former default path is
adopted (moved, with its journal) rather than left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from shim.catalog.problems import (
    CatalogCorrupt,
    CatalogState,
    CatalogUnavailable,
    is_corrupt,
    os_problem,
    other_upstream,
    unavailable,
)
from shim.catalog.search_table import SEARCHED, rewrite_search
from shim.upstream.urls import UpstreamURL, redact_url

__all__ = [
    "DEFAULT_ACTION",
    "MAX_ROWS",
    "CatalogFile",
    "ConnectionFactory",
    "adopt",
    "clamp_int64",
    "locked",
    "open_sqlite",
    "recorded_upstream",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")
F = TypeVar("F", bound="CatalogFile")

SCHEMA_VERSION = "1"
MAX_ROWS = 50_000
_JOURNALS = ("-wal", "-shm")

# When the catalog can prove a project changed but not how (a role, a description, a file it never saw):
# PyPI has no such word; this one is documented in the method table.
DEFAULT_ACTION = "update"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects (
    normalized TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    serial INTEGER NOT NULL,
    seen_at INTEGER NOT NULL,           -- when this serial was first seen
    present INTEGER NOT NULL DEFAULT 1, -- still listed by the Simple index
    known INTEGER NOT NULL DEFAULT 0,   -- releases and files below were read from its JSON
    metadata TEXT                       -- summary, keywords, classifiers, people, roles (JSON)
);
CREATE INDEX IF NOT EXISTS projects_serial ON projects (serial);
CREATE TABLE IF NOT EXISTS serial_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    normalized TEXT NOT NULL,
    old_serial INTEGER,
    new_serial INTEGER,
    seen_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    serial INTEGER NOT NULL,
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    version TEXT,
    timestamp INTEGER NOT NULL,
    action TEXT NOT NULL,
    PRIMARY KEY (serial, name, seq)
);
CREATE INDEX IF NOT EXISTS events_timestamp ON events (timestamp);
-- A project's rows recorded below a serial the feed had already given (`behind`): the Simple index's pass records
-- what the RSS feeds never showed after the feed poller recorded newer serials. changelog_since_serial gives them
-- again to callers since a serial between the two, who could have missed them.
CREATE TABLE IF NOT EXISTS late (
    serial INTEGER NOT NULL,
    name TEXT NOT NULL,
    behind INTEGER NOT NULL,
    PRIMARY KEY (serial, name)
);
CREATE INDEX IF NOT EXISTS late_behind ON late (behind);
CREATE TABLE IF NOT EXISTS classifiers (
    normalized TEXT NOT NULL,
    version TEXT NOT NULL,
    classifier TEXT NOT NULL,
    PRIMARY KEY (normalized, version, classifier)
);
CREATE INDEX IF NOT EXISTS classifiers_by_name ON classifiers (classifier);
CREATE TABLE IF NOT EXISTS roles (
    normalized TEXT NOT NULL,
    role TEXT NOT NULL,
    user TEXT NOT NULL,
    user_folded TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS roles_by_user ON roles (user_folded);
CREATE TABLE IF NOT EXISTS releases (
    normalized TEXT NOT NULL,
    version TEXT NOT NULL,
    yanked INTEGER NOT NULL,
    PRIMARY KEY (normalized, version)
);
CREATE TABLE IF NOT EXISTS files (
    normalized TEXT NOT NULL,
    version TEXT NOT NULL,
    filename TEXT NOT NULL,
    python_version TEXT NOT NULL,
    upload_time INTEGER,
    PRIMARY KEY (normalized, filename)
);
"""


ConnectionFactory = Callable[[Path], sqlite3.Connection]


def open_sqlite(path: Path) -> sqlite3.Connection:
    """SQLite's connection to the file at `path`: shared with worker threads, waiting up to 30 s for a lock."""
    return sqlite3.connect(path, check_same_thread=False, timeout=30)


def clamp_int64(value: int) -> int:
    # XML-RPC integers are unbounded, SQLite's 64-bit: nothing lies beyond either end.
    return max(-(2**63), min(value, 2**63 - 1))


def locked(method: Callable[Concatenate[F, P], T]) -> Callable[Concatenate[F, P], T]:
    """The method holds the catalog's lock while it uses the connection."""

    @functools.wraps(method)
    def wrapper(self: F, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


def recorded_upstream(path: Path) -> str | None:
    """The upstream the catalog at `path` records (None: it records none, or it cannot be read), read-only."""
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        row = connection.execute("SELECT value FROM meta WHERE key = 'upstream'").fetchone()
    except sqlite3.Error:  # no meta table (written before it recorded one), or not a catalog at all
        return None
    finally:
        connection.close()
    return None if row is None else str(row[0])


def adopt(former: Path, path: Path, upstream: str | None = None) -> bool:
    """Move the catalog at `former` (and its journal) to `path` when only the former exists and, given
    `upstream`, when it records that upstream or none (written before catalogs recorded theirs)."""
    if path.exists() or not former.is_file():
        return False
    if upstream is not None and recorded_upstream(former) not in (None, upstream):
        return False  # another upstream's: left for its own service to adopt
    path.parent.mkdir(parents=True, exist_ok=True)
    # The journals first: whoever opens the file at its new path then finds its log beside it, never without it.
    for suffix in _JOURNALS:
        # Another process (a worker beside this one) may be adopting it at the same moment: whoever moves a
        # file first has it, the other finds it gone.
        with contextlib.suppress(FileNotFoundError):
            Path(str(former) + suffix).rename(str(path) + suffix)
    try:
        former.rename(path)
    except FileNotFoundError:  # another process adopted it first
        return False
    logger.warning("the catalog at the former default path %s was moved to %s", former, path)
    return True


class CatalogFile:
    """The connection to one catalog file. Readers open it as it is; the writer creates its schema.

    `connection_factory` opens the file (tests pass one that opens an SQLite without FTS5, or read-only);
    `state` is what the process found of the file, shared by its reader and its writer; `upstream`, the
    upstream whose catalog it must be (the writer records it in a file that records none)."""

    creates_schema = False

    def __init__(
        self,
        path: Path,
        *,
        connection_factory: ConnectionFactory = open_sqlite,
        state: CatalogState | None = None,
        upstream: UpstreamURL | None = None,
    ) -> None:
        self.path = path
        self.upstream = upstream
        self.connection_factory = connection_factory
        self.state = state if state is not None else CatalogState()
        self._connection: sqlite3.Connection | None = None
        # One SQLite connection, used from worker threads and the event loop: one user at a time, and
        # closing waits for a query still running in a thread whose task was cancelled.
        self._lock = threading.RLock()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run a method (or any function using this catalog) off the event loop."""
        return await asyncio.to_thread(self._call_locked, function, *args)

    def _call_locked(self, function: Callable[..., T], *args: Any) -> T:
        with self._lock:
            return function(*args)

    def run_locked(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """`function` of the catalog's connection, holding its lock: a backup out of it or into it."""
        with self._lock:
            return function(self.connect())

    # --- opening: never fatal -------------------------------------------------------------------

    def connect(self) -> sqlite3.Connection:
        with self._lock:
            if self._connection is None:
                self._connection = self._open()
            return self._connection

    def _open(self) -> sqlite3.Connection:
        try:
            connection = self._open_or_rebuild()
        except (OSError, sqlite3.DatabaseError) as exc:
            problem = self._operator_error(exc)
            if problem is None:
                raise
            raise problem from exc
        self._found(None)
        return connection

    def _open_or_rebuild(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._prepare(self.connection_factory(self.path))
        except sqlite3.DatabaseError as exc:
            # Only a file SQLite calls corrupt is the writer's to rebuild: one it may not write is an operator's.
            if not (self.creates_schema and is_corrupt(exc)):
                raise
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            try:
                self.path.rename(aside)
            except OSError as error:
                raise os_problem(error, self.path, "is corrupt and cannot be moved aside") from exc
            logger.error("the catalog %s is unreadable (%s): moved to %s and rebuilt", self.path, exc, aside)
            for suffix in _JOURNALS:
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            return self._prepare(self.connection_factory(self.path))

    def _operator_error(self, exc: BaseException) -> CatalogUnavailable | None:
        """`exc` as the operator's error it stands for, recorded; None when it is no such error."""
        problem = unavailable(exc, self.path)
        if problem is not None:
            self._found(problem)
        return problem

    def _found(self, problem: CatalogUnavailable | None) -> None:
        """Record what opening or writing the file found (None: it worked)."""
        if self.creates_schema:
            self.state.writable = problem is None
            self.state.cannot_write = problem
        else:
            self.state.cannot_read = problem

    def _prepare(self, connection: sqlite3.Connection) -> sqlite3.Connection:
        try:
            self._check(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def _check(self, connection: sqlite3.Connection) -> None:
        self._check_upstream(connection)  # before anything is written: another upstream's file is left as it is
        if self.creates_schema:  # readers open it as it is: they may not be allowed to write
            connection.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
        result = connection.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise CatalogCorrupt(f"quick_check failed: {result}")
        if self.creates_schema:
            connection.executescript(_SCHEMA)
            connection.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            columns = ", ".join(SEARCHED)
            try:
                connection.execute(
                    f"CREATE VIRTUAL TABLE IF NOT EXISTS search USING fts5(normalized UNINDEXED, {columns})"
                )
                fts = "1"
            except sqlite3.DatabaseError:  # an SQLite without FTS5 (or that refuses it): a plain table, scanned
                connection.execute(f"CREATE TABLE IF NOT EXISTS search (normalized TEXT PRIMARY KEY, {columns})")
                fts = "0"
            connection.execute("INSERT OR REPLACE INTO meta VALUES ('fts', ?)", (fts,))
            rewrite_search(connection)
            if self.upstream is not None:  # a file that records none is this upstream's from now on
                connection.execute("INSERT OR IGNORE INTO meta VALUES ('upstream', ?)", (self.upstream.base,))
            connection.commit()

    def _check_upstream(self, connection: sqlite3.Connection) -> None:
        """Another upstream's catalog is refused: its serials and projects are not this upstream's."""
        if self.upstream is None:
            return
        try:
            row = connection.execute("SELECT value FROM meta WHERE key = 'upstream'").fetchone()
        except sqlite3.OperationalError:  # a reader before any writer made the schema
            return
        if row is not None and str(row[0]) != self.upstream.base:
            raise other_upstream(self.path, redact_url(str(row[0])), redact_url(str(self.upstream)))

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            connection = self.connect()
            try:
                with connection:
                    yield connection
            except sqlite3.DatabaseError as exc:  # a full disk, a file made read-only since it was opened
                problem = self._operator_error(exc)
                if problem is None:
                    raise
                raise problem from exc
            self._found(None)

    # --- meta ---------------------------------------------------------------------------------------

    @locked
    def get_meta(self, key: str) -> str | None:
        try:
            row = self.connect().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except CatalogUnavailable:
            raise  # not "no value": the file cannot be opened, and callers say why
        except sqlite3.OperationalError:  # a reader before the writer made the schema
            return None
        return None if row is None else str(row[0])

    def set_meta(self, connection: sqlite3.Connection, key: str, value: str) -> None:
        connection.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def oldest_serial(self) -> int | None:
        value = self.get_meta("oldest_serial")
        return None if value is None else int(value)
