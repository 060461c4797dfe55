"""Reads of the catalog: what every process may ask of it. Only the writer (shim.catalog.writes) changes it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from shim.catalog.rows import (
    ChangeRow,
    Coverage,
    CrawlProgress,
    ProjectRecord,
    ReleaseRef,
    Role,
    StoredFile,
    StoredMetadata,
    StoredRelease,
)
from shim.catalog.schema import DEFAULT_ACTION, MAX_ROWS, CatalogFile, clamp_int64, locked
from shim.catalog.search_table import SEARCHED

__all__ = ["CatalogReader"]


T = TypeVar("T")


class CatalogReader(CatalogFile):
    """The catalog, read-only: a missing schema or a damaged file answers empty, never raises, where noted."""

    @locked
    def serials(self) -> dict[str, int]:
        """Every project still listed, normalised name -> serial."""
        rows = self.connect().execute("SELECT normalized, serial FROM projects WHERE present = 1")
        return {str(name): int(serial) for name, serial in rows}

    @locked
    def listed_serials(self, read: Callable[[Iterator[tuple[str, int]]], T]) -> T:
        """`read` of what `serials()` gives, one row at a time (no dict of them all), in the order the projects
        were first listed (the Simple index's, mostly)."""
        rows = self.connect().execute("SELECT normalized, serial FROM projects WHERE present = 1 ORDER BY rowid")
        return read((str(name), int(serial)) for name, serial in rows)

    @locked
    def project(self, normalized: str) -> ProjectRecord | None:
        """What the catalog holds of a project it has seen."""
        row = (
            self.connect()
            .execute("SELECT name, serial, seen_at, known FROM projects WHERE normalized = ?", (normalized,))
            .fetchone()
        )
        return None if row is None else ProjectRecord(str(row[0]), int(row[1]), int(row[2]), bool(row[3]))

    @locked
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

    @locked
    def serial_of(self, normalized: str) -> int | None:
        """The serial the change feed reports for a project (None: not seen, or no catalog yet)."""
        try:
            row = self.connect().execute("SELECT serial FROM projects WHERE normalized = ?", (normalized,)).fetchone()
        except sqlite3.DatabaseError:  # no schema yet, or a damaged file its writer will rebuild
            return None
        return None if row is None else int(row[0])

    @locked
    def last_serial(self) -> int | None:
        """The highest serial the catalog holds: a project's, a change row's, or the one it started at (None: no
        catalog yet, or a file its writer will rebuild). Each is one the Simple index gave."""
        try:
            (serial,) = (
                self.connect()
                .execute(
                    "SELECT MAX(serial) FROM (SELECT MAX(serial) AS serial FROM projects "
                    "UNION ALL SELECT MAX(serial) FROM events "
                    "UNION ALL SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'oldest_serial')"
                )
                .fetchone()
            )
        except sqlite3.DatabaseError:
            return None
        return None if serial is None else int(serial)

    @locked
    def index_serial(self) -> int | None:
        """The Simple index's serial as of the copy the refresher last read for changes (the feed poller records
        changes above it); a catalog from before it was kept, written by the refresher alone, has its highest."""
        value = self.get_meta("index_serial")
        return int(value) if value is not None else self.last_serial()

    @locked
    def rows_since(self, serial: int, limit: int = MAX_ROWS) -> list[ChangeRow]:
        """The rows above `serial`, by serial; and, first, those recorded late (below a serial already given, at
        or above `serial`) at or below it: a caller that synced to `serial` before they were recorded lacks them."""
        serial = clamp_int64(serial)
        try:
            late = self.connect().execute(
                "SELECT e.name, e.version, e.timestamp, e.action, e.serial FROM late l JOIN events e "
                "ON e.serial = l.serial AND e.name = l.name WHERE l.serial <= ? AND l.behind >= ? "
                "ORDER BY e.serial, e.name, e.seq LIMIT ?",
                (serial, serial, limit),
            )
            given = [ChangeRow(str(n), v, int(t), str(a), int(s)) for n, v, t, a, s in late]
        except sqlite3.OperationalError:  # a catalog from before late rows were kept, not yet opened by its writer
            given = []
        return (given + self._rows(serial, None, limit))[:limit]

    @locked
    def rows_after_time(self, since: int, limit: int = MAX_ROWS) -> list[ChangeRow]:
        """The rows newer than a POSIX time, by serial (PyPI's `changelog`): the same rows as `rows_since` gives
        for the same span, those standing for the time before the first look included."""
        return self._rows(-(2**63), clamp_int64(since), limit)

    def _rows(self, serial: int, since: int | None, limit: int) -> list[ChangeRow]:
        """The rows above `serial` (and newer than `since`), by serial. Below the oldest change seen, a row per
        project whose serial is above `serial` stands for what happened there (the catalog cannot know more),
        timed when the catalog saw it."""
        connection = self.connect()
        oldest = self.oldest_serial
        if oldest is None:
            return []
        newer, after = ("", ()) if since is None else (" AND {} > ?", (since,))
        rows: list[tuple[Any, ...]] = []
        if serial < oldest:
            rows += connection.execute(
                "SELECT name, NULL, seen_at, ?, serial, -1 FROM projects "
                f"WHERE serial > ? AND serial <= ?{newer.format('seen_at')} ORDER BY serial LIMIT ?",
                (DEFAULT_ACTION, serial, oldest, *after, limit),
            ).fetchall()
        rows += connection.execute(
            "SELECT name, version, timestamp, action, serial, seq FROM events "
            f"WHERE serial > ?{newer.format('timestamp')} ORDER BY serial, name, seq LIMIT ?",
            (max(serial, oldest), *after, limit),
        ).fetchall()
        rows.sort(key=lambda row: (row[4], row[0], row[5]))
        return [ChangeRow(str(n), v, int(t), str(a), int(s)) for n, v, t, a, s, _ in rows[:limit]]

    @locked
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

    @locked
    def crawl_progress(self, coverage: Coverage) -> CrawlProgress:
        """The crawler's share of `coverage` (as `coverage()` gave it: its counts are not made twice) and, at the
        rate it last read at, the time it needs for the projects left."""
        try:
            rate_text, read_at, cursor = (self.get_meta(key) for key in ("crawl_rate", "crawl_read_at", "crawl_cursor"))
        except sqlite3.DatabaseError:
            rate_text = read_at = cursor = None
        rate = round(float(rate_text), 3) if rate_text else None  # reads a second, to the thousandth
        left = coverage.projects - coverage.with_metadata
        eta = 0 if coverage.projects and not left else (round(left / rate) if rate else None)
        return CrawlProgress(
            coverage.projects,
            coverage.with_metadata,
            coverage.with_metadata / coverage.projects if coverage.projects else None,
            rate,
            eta,
            int(read_at) if read_at else None,
            cursor,
        )

    @locked
    def unknown_projects(self, after: str, limit: int) -> list[str]:
        """Projects whose JSON was never read, in name order after `after` (the crawler's cursor)."""
        rows = self.connect().execute(
            "SELECT normalized FROM projects WHERE present = 1 AND known = 0 AND normalized > ? "
            "ORDER BY normalized LIMIT ?",
            (after, limit),
        )
        return [str(name) for (name,) in rows]

    @locked
    def term_postings(self, field: str, terms: list[str]) -> dict[str, dict[str, int]]:
        """For each of `terms` (shim.catalog.terms), the listed projects whose `field` holds it, and how often.

        The full-text engine (or a scan, without FTS5) finds the candidates; the counting is the same for both."""
        if field not in SEARCHED or not terms:
            return {}
        try:
            connection = self.connect()
            base = (
                f"SELECT s.normalized, s.{field} FROM search s JOIN projects p USING (normalized) WHERE p.present = 1"
            )
            if self.get_meta("fts") == "1":
                # Each term quoted: FTS5 reads a bare word such as `and` as its own syntax. Terms hold no quote.
                phrases = " OR ".join(f'"{term}"' for term in terms)
                rows = connection.execute(f"{base} AND s.search MATCH ?", (f"{field} : ({phrases})",)).fetchall()
            else:
                clauses = " OR ".join(f"(' ' || s.{field} || ' ') LIKE ?" for _ in terms)
                rows = connection.execute(f"{base} AND ({clauses})", [f"% {term} %" for term in terms]).fetchall()
        except sqlite3.DatabaseError:
            return {}
        wanted = set(terms)
        postings: dict[str, dict[str, int]] = {term: {} for term in terms}
        for normalized, text in rows:
            for term in str(text).split():
                if term in wanted:
                    holders = postings[term]
                    holders[normalized] = holders.get(normalized, 0) + 1
        return postings

    @locked
    def with_version(self, version: str) -> set[str]:
        """Projects with a release of exactly that version string."""
        try:
            rows = self.connect().execute("SELECT normalized FROM releases WHERE version = ?", (version,))
            return {str(name) for (name,) in rows}
        except sqlite3.DatabaseError:
            return set()

    @locked
    def projects_metadata(self, names: list[str]) -> dict[str, StoredMetadata]:
        """The stored metadata of each of `names` whose JSON the catalog read, in one query."""
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
        return {str(normalized): StoredMetadata(str(name), json.loads(metadata)) for normalized, name, metadata in rows}

    @locked
    def with_classifiers(self, classifiers: list[str]) -> list[ReleaseRef]:
        """The releases carrying every one of `classifiers`, by project display name then version."""
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
        return [ReleaseRef(name, version) for name, version in sorted((str(n), str(v)) for n, v in rows)]

    @locked
    def roles_of(self, user: str) -> list[Role]:
        """Every role `user` holds, case-insensitively."""
        rows = self.connect().execute(
            "SELECT r.role, p.name FROM roles r JOIN projects p USING (normalized) "
            "WHERE r.user_folded = ? AND p.present = 1",
            (user.casefold(),),
        )
        return [Role(str(role), str(name)) for role, name in rows]
