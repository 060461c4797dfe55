"""What can be wrong with the catalog's file, told apart by SQLite's own error codes (and the OS's errno).

Only a file SQLite calls corrupt is the catalog's to move aside and rebuild. A file the service cannot open
or write (permissions, a read-only or full disk) is an operator's error: it is left as it is, named with its
path and the setting that chose it, and reported on /healthz and in the change feed's faults.
"""

from __future__ import annotations

import errno
import sqlite3
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CatalogCorrupt",
    "CatalogState",
    "CatalogUnavailable",
    "is_corrupt",
    "os_problem",
    "other_upstream",
    "unavailable",
]

# SQLite's primary result codes (the low byte of an extended code) that mean the file is damaged.
_CORRUPT = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}

# ... and those that mean this process may not use it: the file is fine, its circumstances are not.
_SQLITE_REASONS = {
    sqlite3.SQLITE_READONLY: "is read-only to the service (the file, its directory or its file system)",
    sqlite3.SQLITE_CANTOPEN: "cannot be opened (a missing or unwritable directory, or no permission on the file)",
    sqlite3.SQLITE_PERM: "cannot be accessed: permission denied",
    sqlite3.SQLITE_AUTH: "cannot be accessed: permission denied",
    sqlite3.SQLITE_FULL: "cannot be written: the disk is full",
    sqlite3.SQLITE_IOERR: "cannot be read or written: a disk I/O error",
}
_OS_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "a read-only file system",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
}


class CatalogCorrupt(sqlite3.DatabaseError):
    """SQLite opened the file, but its own check of it failed."""


class CatalogUnavailable(sqlite3.OperationalError):
    """The catalog's file cannot be opened or written: never corruption, so it is left as it is.

    A DatabaseError, so that the reads that answer empty from a damaged file answer empty from this too."""

    def __init__(
        self,
        path: Path,
        reason: str,
        detail: str,
        fix: str = "fix that, or set SHIM_CATALOG_PATH to a file the service can write",
    ) -> None:
        self.path = path
        self.reason = reason  # the catalog {reason}: words a client may read (no path)
        super().__init__(f"the catalog {path} {reason} ({detail}): {fix}")


@dataclass
class CatalogState:
    """What this process has found of its catalog's file, shared by its reader and its writer: /healthz and
    the change feed's faults report it."""

    writable: bool | None = None  # None: no writer in this process has opened the file yet
    cannot_read: CatalogUnavailable | None = None
    cannot_write: CatalogUnavailable | None = None

    @property
    def problem(self) -> CatalogUnavailable | None:
        return self.cannot_read or self.cannot_write


def _code(exc: BaseException) -> int | None:
    # Set by SQLite on the errors it raises (Python 3.11+); absent on those raised in Python.
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def is_corrupt(exc: BaseException) -> bool:
    """SQLite says the file is not a database, or a malformed one, or its quick_check failed."""
    return isinstance(exc, CatalogCorrupt) or _code(exc) in _CORRUPT


def os_problem(exc: OSError, path: Path, doing: str = "") -> CatalogUnavailable:
    """The OS refused a step on the catalog's file (`doing` it, else opening or creating it)."""
    reason = _OS_REASONS.get(exc.errno or 0) or exc.strerror or type(exc).__name__
    if doing:
        return CatalogUnavailable(path, f"{doing}: {reason}", str(exc))
    if exc.errno == errno.EROFS:
        return CatalogUnavailable(path, "is on a read-only file system", str(exc))
    return CatalogUnavailable(path, f"cannot be opened or created: {reason}", str(exc))


def other_upstream(path: Path, recorded: str, ours: str) -> CatalogUnavailable:
    """The file records another upstream than `ours` (both as they may be shown): its serials and projects are
    that upstream's, so this service neither answers from it nor writes to it."""
    return CatalogUnavailable(
        path,
        "records another upstream",
        f"it is {recorded}'s; this service's upstream is {ours}",
        "set SHIM_CATALOG_PATH to a catalog of this upstream, or leave it unset for this upstream's own default file",
    )


def unavailable(exc: BaseException, path: Path) -> CatalogUnavailable | None:
    """The operator's error `exc` stands for, in words naming `path`; None when it is no such error."""
    if isinstance(exc, CatalogUnavailable):
        return exc
    if isinstance(exc, OSError):
        return os_problem(exc, path)
    code = _code(exc)
    if isinstance(exc, sqlite3.DatabaseError) and code in _SQLITE_REASONS:
        name = getattr(exc, "sqlite_errorname", None) or "SQLITE_ERROR"
        return CatalogUnavailable(path, _SQLITE_REASONS[code], f"{name}: {exc}")
    return None
