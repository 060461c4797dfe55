"""The catalog's one writer: the refresher's and the crawler's writes, each in one transaction; and what any
process read for a call (`observe`), which never touches a change row or a serial."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from shim.catalog.reads import CatalogReader
from shim.catalog.rows import Event, ListedProject, StoredRelease
from shim.catalog.schema import locked
from shim.catalog.search_table import SEARCHED, search_row

__all__ = ["CatalogWriter"]


class CatalogWriter(CatalogReader):
    """The catalog, read and written: it creates the schema, and moves a corrupt file aside to rebuild it."""

    creates_schema = True

    @locked
    def baseline(self, projects: Iterable[ListedProject], last_serial: int, now: int) -> None:
        """The first look: every project and its serial, and no history before it (what was read of a project
        listed before, without serials, is kept)."""
        with self.transaction() as connection:
            connection.executemany(
                "INSERT INTO projects (normalized, name, serial, seen_at, present) VALUES (?, ?, ?, ?, 1) "
                "ON CONFLICT (normalized) DO UPDATE SET name = excluded.name, serial = excluded.serial, "
                "seen_at = excluded.seen_at, present = 1",
                (
                    (p.normalized, p.name, p.serial, now) for p in projects
                ),  # as they come: a million, at the index's size
            )
            self.set_meta(connection, "oldest_serial", str(last_serial))
            self.set_meta(connection, "last_refresh", str(now))

    @locked
    def list_projects(self, projects: Iterable[tuple[str, str]], now: int) -> None:
        """Every project (normalised name, display name) of a Simple index without serials: listed at serial 0, for
        what calls and the crawler read of them; no change row, and no first look (`oldest_serial`) either."""
        with self.transaction() as connection:
            connection.executemany(
                "INSERT INTO projects (normalized, name, serial, seen_at, present) VALUES (?, ?, 0, ?, 1) "
                "ON CONFLICT (normalized) DO UPDATE SET name = excluded.name, present = 1",
                ((normalized, name, now) for normalized, name in projects),
            )
            self.set_meta(connection, "listed_at", str(now))

    @locked
    def record(
        self,
        normalized: str,
        name: str,
        *,
        old_serial: int | None,
        new_serial: int | None,
        row_serial: int,
        events: list[Event],
        releases: dict[str, StoredRelease] | None,
        metadata: dict[str, Any] | None,
        now: int,
        given: int | None = None,
    ) -> None:
        """One observed serial change of one project, with the rows it gives and what its JSON showed; `given` is
        the highest serial the feed gave before (rows below it are late: given again to callers since between)."""
        with self.transaction() as connection:
            if given is not None and row_serial < given and events:
                connection.execute("INSERT OR REPLACE INTO late VALUES (?, ?, ?)", (row_serial, name, given))
            connection.execute(
                "INSERT INTO serial_changes (normalized, old_serial, new_serial, seen_at) VALUES (?, ?, ?, ?)",
                (normalized, old_serial, new_serial, now),
            )
            connection.executemany(
                "INSERT OR REPLACE INTO events (serial, name, seq, version, timestamp, action) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(row_serial, name, seq, e.version, e.timestamp, e.action) for seq, e in enumerate(events)],
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

    @locked
    def store_releases(
        self, normalized: str, releases: dict[str, StoredRelease], metadata: dict[str, Any] | None
    ) -> None:
        """What the crawler read of a project, with no change rows (it is not a change)."""
        with self.transaction() as connection:
            self._store(connection, normalized, releases, metadata)

    @locked
    def observe(
        self, normalized: str, serial: int | None, releases: dict[str, StoredRelease], metadata: dict[str, Any]
    ) -> bool:
        """What a call read of a project (its JSON, at `serial`), kept with no change row and no serial, from any
        process: idempotent. At the serial the catalog holds for the project, its releases and files too; at a newer
        one (or none), only its metadata: the refresher diffs the change from the releases held, so they stay. An
        older copy, or a project the catalog has not listed, is left out. Whether it was kept."""
        with self.transaction() as connection:
            connection.execute("BEGIN IMMEDIATE")  # the serial compared is the one written against
            row = connection.execute(
                "SELECT serial, known FROM projects WHERE normalized = ?", (normalized,)
            ).fetchone()
            if row is None or (serial is not None and serial < row[0]):
                return False
            if serial == row[0]:
                self._store(connection, normalized, releases, metadata)
            else:
                self._store(connection, normalized, self.releases(normalized), metadata)
                connection.execute("UPDATE projects SET known = ? WHERE normalized = ?", (row[1], normalized))
            return True

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
        for table in ("search", "roles"):
            connection.execute(f"DELETE FROM {table} WHERE normalized = ?", (normalized,))
        # What PyPI's browse matched: each release's classifiers. A project's JSON shows its latest release's; those
        # of the releases that were latest when read before are kept while the release exists.
        connection.execute(
            "DELETE FROM classifiers WHERE normalized = ? AND version NOT IN "
            "(SELECT version FROM releases WHERE normalized = ?)",
            (normalized, normalized),
        )
        if metadata is None:
            return
        connection.execute(
            f"INSERT INTO search (normalized, {', '.join(SEARCHED)}) VALUES (?{', ?' * len(SEARCHED)})",
            search_row(normalized, metadata),
        )
        connection.execute(
            "DELETE FROM classifiers WHERE normalized = ? AND version = ?", (normalized, metadata["version"])
        )
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

    @locked
    def mark_refresh(self, now: int) -> None:
        with self.transaction() as connection:
            self.set_meta(connection, "last_refresh", str(now))

    @locked
    def mark_index_serial(self, serial: int) -> None:
        """The Simple index's serial as of the copy the refresher last read for changes."""
        with self.transaction() as connection:
            self.set_meta(connection, "index_serial", str(serial))

    def save_cursor(self, cursor: str) -> None:
        with self.transaction() as connection:
            self.set_meta(connection, "crawl_cursor", cursor)

    def save_crawl(self, cursor: str, rate: float | None, read_at: int) -> None:
        """The crawler's cursor, with its rate lately and when it last read: `catalog status` and /healthz show them."""
        with self.transaction() as connection:
            self.set_meta(connection, "crawl_cursor", cursor)
            self.set_meta(connection, "crawl_rate", "" if rate is None else repr(rate))
            self.set_meta(connection, "crawl_read_at", str(read_at))
