"""The metadata index: an embedded SQLite file that remembers what the upstream showed over time.

It holds every project's display name and `_last-serial` from the Simple index, the serial changes seen
(project, old, new, when), the change rows derived from them (what `changelog_since_serial` answers),
and, for each project whose JSON was read, its releases, files and metadata.

One writer (the refresher, in the service or as `pypi-xmlrpc-shim index refresh`); every other use only
reads. A missing file is created; a corrupt one is moved aside (never deleted) and rebuilt.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")

__all__ = ["ChangeRow", "Coverage", "MetaIndex", "StoredFile", "StoredRelease"]

logger = logging.getLogger("shim.metaindex")

SCHEMA_VERSION = "1"
MAX_ROWS = 50_000

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


@dataclass(frozen=True)
class ChangeRow:
    """One `changelog_since_serial` row: the fields PyPI's journal gave, in its order."""

    name: str
    version: str | None
    timestamp: int
    action: str
    serial: int


@dataclass(frozen=True)
class StoredFile:
    filename: str
    python_version: str
    upload_time: int | None


@dataclass(frozen=True)
class StoredRelease:
    version: str
    yanked: bool
    files: tuple[StoredFile, ...]


@dataclass(frozen=True)
class Coverage:
    projects: int
    with_metadata: int
    oldest_serial: int | None
    last_refresh: int | None
    events: int


def _int64(value: int) -> int:
    # XML-RPC integers are unbounded, SQLite's 64-bit: nothing lies beyond either end.
    return max(-(2**63), min(value, 2**63 - 1))


def _locked(method: Callable[Concatenate[MetaIndex, P], T]) -> Callable[Concatenate[MetaIndex, P], T]:
    """The method holds the index's lock while it uses the connection."""

    @functools.wraps(method)
    def wrapper(self: MetaIndex, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


class MetaIndex:
    def __init__(self, path: Path, *, writer: bool) -> None:
        self.path = path
        self.writer = writer
        self._connection: sqlite3.Connection | None = None
        # One SQLite connection, used from worker threads and the event loop: one user at a time, and
        # closing waits for a query still running in a thread whose task was cancelled.
        self._lock = threading.RLock()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run a method (or any function using this index) off the event loop."""
        return await asyncio.to_thread(self._call_locked, function, *args)

    def _call_locked(self, function: Callable[..., T], *args: Any) -> T:
        with self._lock:
            return function(*args)

    # --- opening: never fatal -------------------------------------------------------------------

    def connect(self) -> sqlite3.Connection:
        with self._lock:
            if self._connection is None:
                self._connection = self._open()
            return self._connection

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._prepare(sqlite3.connect(self.path, check_same_thread=False, timeout=30))
        except sqlite3.DatabaseError as exc:
            if not self.writer:
                raise
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            logger.error("metadata index %s is unreadable (%s): moved to %s and rebuilt", self.path, exc, aside)
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            return self._prepare(sqlite3.connect(self.path, check_same_thread=False, timeout=30))

    def _prepare(self, connection: sqlite3.Connection) -> sqlite3.Connection:
        connection.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
        if connection.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            connection.close()
            raise sqlite3.DatabaseError("quick_check failed")
        if self.writer:
            connection.executescript(_SCHEMA)
            connection.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            columns = ", ".join(SEARCHED)
            try:
                connection.execute(
                    f"CREATE VIRTUAL TABLE IF NOT EXISTS search USING fts5(normalized UNINDEXED, {columns})"
                )
                fts = "1"
            except sqlite3.OperationalError:  # an SQLite built without FTS5: a plain table, scanned
                connection.execute(f"CREATE TABLE IF NOT EXISTS search (normalized TEXT PRIMARY KEY, {columns})")
                fts = "0"
            connection.execute("INSERT OR REPLACE INTO meta VALUES ('fts', ?)", (fts,))
            connection.commit()
        return connection

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            connection = self.connect()
            with connection:
                yield connection

    # --- meta ---------------------------------------------------------------------------------------

    @_locked
    def get_meta(self, key: str) -> str | None:
        try:
            row = self.connect().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:  # a reader before the writer made the schema
            return None
        return None if row is None else str(row[0])

    def set_meta(self, connection: sqlite3.Connection, key: str, value: str) -> None:
        connection.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def oldest_serial(self) -> int | None:
        value = self.get_meta("oldest_serial")
        return None if value is None else int(value)

    # --- reads --------------------------------------------------------------------------------------

    @_locked
    def serials(self) -> dict[str, int]:
        """Every project still listed, normalised name -> serial."""
        rows = self.connect().execute("SELECT normalized, serial FROM projects WHERE present = 1")
        return {str(name): int(serial) for name, serial in rows}

    @_locked
    def project(self, normalized: str) -> tuple[str, int, int, bool] | None:
        """(display name, serial, seen_at, known) of a project the index has seen."""
        row = (
            self.connect()
            .execute("SELECT name, serial, seen_at, known FROM projects WHERE normalized = ?", (normalized,))
            .fetchone()
        )
        return None if row is None else (str(row[0]), int(row[1]), int(row[2]), bool(row[3]))

    @_locked
    def releases(self, normalized: str) -> dict[str, StoredRelease]:
        connection = self.connect()
        files: dict[str, list[StoredFile]] = {}
        for version, filename, python_version, upload_time in connection.execute(
            "SELECT version, filename, python_version, upload_time FROM files WHERE normalized = ? ORDER BY filename",
            (normalized,),
        ):
            files.setdefault(version, []).append(StoredFile(filename, python_version, upload_time))
        return {
            str(version): StoredRelease(str(version), bool(yanked), tuple(files.get(version, [])))
            for version, yanked in connection.execute(
                "SELECT version, yanked FROM releases WHERE normalized = ?", (normalized,)
            )
        }

    @_locked
    def serial_of(self, normalized: str) -> int | None:
        """The serial the change feed reports for a project (None: not seen, or no index yet)."""
        try:
            row = self.connect().execute("SELECT serial FROM projects WHERE normalized = ?", (normalized,)).fetchone()
        except sqlite3.DatabaseError:  # no schema yet, or a damaged file its writer will rebuild
            return None
        return None if row is None else int(row[0])

    @_locked
    def rows_since(self, serial: int, limit: int = MAX_ROWS) -> list[ChangeRow]:
        """The rows above `serial`, by serial. Below the oldest change seen, a row per project whose serial
        is above `serial` stands for what happened there (the index cannot know more)."""
        serial = _int64(serial)
        connection = self.connect()
        oldest = self.oldest_serial
        if oldest is None:
            return []
        rows: list[tuple[Any, ...]] = []
        if serial < oldest:
            rows += connection.execute(
                "SELECT name, NULL, seen_at, ?, serial, -1 FROM projects "
                "WHERE serial > ? AND serial <= ? ORDER BY serial LIMIT ?",
                (DEFAULT_ACTION, serial, oldest, limit),
            ).fetchall()
        rows += connection.execute(
            "SELECT name, version, timestamp, action, serial, seq FROM events WHERE serial > ? "
            "ORDER BY serial, name, seq LIMIT ?",
            (max(serial, oldest), limit),
        ).fetchall()
        rows.sort(key=lambda row: (row[4], row[0], row[5]))
        return [ChangeRow(str(n), v, int(t), str(a), int(s)) for n, v, t, a, s, _ in rows[:limit]]

    @_locked
    def rows_after_time(self, since: int, limit: int = MAX_ROWS) -> list[ChangeRow]:
        """The rows newer than a POSIX time, by serial (PyPI's `changelog`)."""
        rows = self.connect().execute(
            "SELECT name, version, timestamp, action, serial FROM events WHERE timestamp > ? "
            "ORDER BY serial, name, seq LIMIT ?",
            (_int64(since), limit),
        )
        return [ChangeRow(str(n), v, int(t), str(a), int(s)) for n, v, t, a, s in rows]

    @_locked
    def coverage(self) -> Coverage:
        try:
            connection = self.connect()
            projects, known = connection.execute(
                "SELECT COUNT(*), COALESCE(SUM(known), 0) FROM projects WHERE present = 1"
            ).fetchone()
            (events,) = connection.execute("SELECT COUNT(*) FROM events").fetchone()
        except sqlite3.DatabaseError:
            return Coverage(0, 0, None, None, 0)
        refreshed = self.get_meta("last_refresh")
        return Coverage(int(projects), int(known), self.oldest_serial, int(refreshed) if refreshed else None, events)

    # --- writes (the refresher and the crawler only) -------------------------------------------------

    @_locked
    def baseline(self, projects: list[tuple[str, str, int]], last_serial: int, now: int) -> None:
        """The first look: every project and its serial, and no history before it."""
        with self.transaction() as connection:
            connection.executemany(
                "INSERT OR REPLACE INTO projects (normalized, name, serial, seen_at, present) VALUES (?, ?, ?, ?, 1)",
                [(normalized, name, serial, now) for normalized, name, serial in projects],
            )
            self.set_meta(connection, "oldest_serial", str(last_serial))
            self.set_meta(connection, "last_refresh", str(now))

    @_locked
    def record(
        self,
        normalized: str,
        name: str,
        *,
        old_serial: int | None,
        new_serial: int | None,
        row_serial: int,
        events: list[tuple[str | None, int, str]],
        releases: dict[str, StoredRelease] | None,
        metadata: dict[str, Any] | None,
        now: int,
    ) -> None:
        """One observed serial change of one project, with the rows it gives and what its JSON showed."""
        with self.transaction() as connection:
            connection.execute(
                "INSERT INTO serial_changes (normalized, old_serial, new_serial, seen_at) VALUES (?, ?, ?, ?)",
                (normalized, old_serial, new_serial, now),
            )
            connection.executemany(
                "INSERT OR REPLACE INTO events (serial, name, seq, version, timestamp, action) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(row_serial, name, seq, version, ts, action) for seq, (version, ts, action) in enumerate(events)],
            )
            if new_serial is None:
                connection.execute("UPDATE projects SET present = 0 WHERE normalized = ?", (normalized,))
                return
            connection.execute(
                "INSERT INTO projects (normalized, name, serial, seen_at, present) VALUES (?, ?, ?, ?, 1) "
                "ON CONFLICT (normalized) DO UPDATE SET name = excluded.name, serial = excluded.serial, "
                "seen_at = excluded.seen_at, present = 1",
                (normalized, name, new_serial, now),
            )
            if releases is not None:
                self._store(connection, normalized, releases, metadata)

    @_locked
    def store_releases(
        self, normalized: str, releases: dict[str, StoredRelease], metadata: dict[str, Any] | None
    ) -> None:
        """What the crawler read of a project, with no change rows (it is not a change)."""
        with self.transaction() as connection:
            self._store(connection, normalized, releases, metadata)

    def _store(
        self,
        connection: sqlite3.Connection,
        normalized: str,
        releases: dict[str, StoredRelease],
        metadata: dict[str, Any] | None,
    ) -> None:
        connection.execute("DELETE FROM releases WHERE normalized = ?", (normalized,))
        connection.execute("DELETE FROM files WHERE normalized = ?", (normalized,))
        connection.executemany(
            "INSERT INTO releases VALUES (?, ?, ?)",
            [(normalized, r.version, int(r.yanked)) for r in releases.values()],
        )
        connection.executemany(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
            [
                (normalized, r.version, f.filename, f.python_version, f.upload_time)
                for r in releases.values()
                for f in r.files
            ],
        )
        connection.execute(
            "UPDATE projects SET known = 1, metadata = ? WHERE normalized = ?",
            (json.dumps(metadata) if metadata is not None else None, normalized),
        )
        for table in ("search", "classifiers", "roles"):
            connection.execute(f"DELETE FROM {table} WHERE normalized = ?", (normalized,))
        if metadata is None:
            return
        connection.execute(
            f"INSERT INTO search (normalized, {', '.join(SEARCHED)}) VALUES (?{', ?' * len(SEARCHED)})",
            (normalized, *(str(metadata.get(field) or "") for field in SEARCHED)),
        )
        # What PyPI's browse matched: the release's classifiers (here: the latest release's, from its JSON).
        connection.executemany(
            "INSERT OR IGNORE INTO classifiers VALUES (?, ?, ?)",
            [(normalized, metadata["version"], c) for c in metadata.get("classifiers") or [] if isinstance(c, str)],
        )
        connection.executemany(
            "INSERT INTO roles VALUES (?, ?, ?, ?)",
            [
                (normalized, role, user, user.casefold())
                for role, user in metadata.get("roles") or []
                if isinstance(role, str) and isinstance(user, str)
            ],
        )

    @_locked
    def mark_refresh(self, now: int) -> None:
        with self.transaction() as connection:
            self.set_meta(connection, "last_refresh", str(now))

    @_locked
    def unknown_projects(self, after: str, limit: int) -> list[str]:
        """Projects whose JSON was never read, in name order after `after` (the crawler's cursor)."""
        rows = self.connect().execute(
            "SELECT normalized FROM projects WHERE present = 1 AND known = 0 AND normalized > ? "
            "ORDER BY normalized LIMIT ?",
            (after, limit),
        )
        return [str(name) for (name,) in rows]

    @_locked
    def text_matches(self, field: str, words: list[str]) -> set[str]:
        """Projects whose `field` holds every word (as a word prefix, case-insensitively)."""
        if field not in SEARCHED or not words:
            return set()
        try:
            connection = self.connect()
            if self.get_meta("fts") == "1":
                query = " AND ".join(f'{field} : "{word}"*' for word in words)
                rows = connection.execute("SELECT normalized FROM search WHERE search MATCH ?", (query,))
            else:
                clauses = " AND ".join(f"lower({field}) LIKE ?" for _ in words)
                rows = connection.execute(
                    f"SELECT normalized FROM search WHERE {clauses}", [f"%{word}%" for word in words]
                )
            return {str(name) for (name,) in rows}
        except sqlite3.DatabaseError:
            return set()

    @_locked
    def with_version(self, version: str) -> set[str]:
        """Projects with a release of exactly that version string."""
        try:
            rows = self.connect().execute("SELECT normalized FROM releases WHERE version = ?", (version,))
            return {str(name) for (name,) in rows}
        except sqlite3.DatabaseError:
            return set()

    @_locked
    def projects_metadata(self, names: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """(display name, metadata) of each of `names` whose JSON the index read, in one query."""
        if not names:
            return {}
        marks = ", ".join("?" * len(names))
        try:
            rows = (
                self.connect()
                .execute(
                    f"SELECT normalized, name, metadata FROM projects WHERE normalized IN ({marks}) "
                    "AND metadata IS NOT NULL",
                    names,
                )
                .fetchall()
            )
        except sqlite3.DatabaseError:
            return {}
        return {str(normalized): (str(name), json.loads(metadata)) for normalized, name, metadata in rows}

    @_locked
    def with_classifiers(self, classifiers: list[str]) -> list[tuple[str, str]]:
        """(project display name, version) of the releases carrying every one of `classifiers`."""
        wanted = sorted(set(classifiers))
        if not wanted or len(wanted) != len(classifiers):
            return []  # PyPI counted distinct matches against the list's length: a repeat never matches
        marks = ", ".join("?" * len(wanted))
        rows = self.connect().execute(
            f"SELECT p.name, c.version FROM classifiers c JOIN projects p USING (normalized) "
            f"WHERE c.classifier IN ({marks}) AND p.present = 1 GROUP BY c.normalized, c.version "
            f"HAVING COUNT(DISTINCT c.classifier) = ?",
            (*wanted, len(wanted)),
        )
        return sorted((str(name), str(version)) for name, version in rows)

    @_locked
    def roles_of(self, user: str) -> list[tuple[str, str]]:
        """(role, project display name) of every role `user` holds, case-insensitively."""
        rows = self.connect().execute(
            "SELECT r.role, p.name FROM roles r JOIN projects p USING (normalized) "
            "WHERE r.user_folded = ? AND p.present = 1",
            (user.casefold(),),
        )
        return [(str(role), str(name)) for role, name in rows]


# The text fields search reads from the index (name and version are matched elsewhere).
SEARCHED = (
    "summary",
    "description",
    "keywords",
    "author",
    "author_email",
    "maintainer",
    "maintainer_email",
    "home_page",
    "license",
    "platform",
    "download_url",
)

# When the index can prove a project changed but not how (a role, a description, a file it never saw):
# PyPI has no such word; this one is documented in the method table.
DEFAULT_ACTION = "update"
