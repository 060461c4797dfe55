"""The catalog's search table: which fields it holds, and each project's row of analysed terms (shim.catalog.terms),
which the full-text engine indexes and shim.catalog.ranking counts."""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any

from shim.catalog.terms import analyze

__all__ = ["SEARCHED", "SEARCH_FORM", "rewrite_search", "search_row"]

logger = logging.getLogger(__name__)

# The text fields search reads from the catalog (name and version are matched elsewhere).
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

# What the search table holds: "2", each field's terms (shim.catalog.terms), space-separated and repeated as often
# as they occur, which the full-text engine indexes and the ranking counts. Before it, the text as it was.
SEARCH_FORM = "2"

_INSERT_SEARCH = f"INSERT INTO search (normalized, {', '.join(SEARCHED)}) VALUES (?{', ?' * len(SEARCHED)})"


def search_row(normalized: str, metadata: dict[str, Any]) -> tuple[str, ...]:
    """A project's row of the search table: its name, then each searched field's terms."""
    return (normalized, *(" ".join(analyze(field, str(metadata.get(field) or ""))) for field in SEARCHED))


def rewrite_search(connection: sqlite3.Connection) -> None:
    """A catalog whose search table holds an older form is given this one, from the metadata it keeps (once)."""
    (form,) = connection.execute("SELECT value FROM meta WHERE key = 'search_form'").fetchone() or (None,)
    if form == SEARCH_FORM:
        return
    rows = connection.execute("SELECT normalized, metadata FROM projects WHERE metadata IS NOT NULL")
    connection.execute("DELETE FROM search")
    written = 0
    for normalized, metadata in rows.fetchall():
        fields = json.loads(metadata)
        if isinstance(fields, dict):
            connection.execute(_INSERT_SEARCH, search_row(str(normalized), fields))
            written += 1
    if written:
        logger.warning("the catalog's search terms were rewritten for %d projects (once, for this version)", written)
    connection.execute("INSERT OR REPLACE INTO meta VALUES ('search_form', ?)", (SEARCH_FORM,))
