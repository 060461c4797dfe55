"""The catalog's rows, typed: what its reads give back and its writes take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ChangeRow",
    "Coverage",
    "CrawlProgress",
    "Event",
    "ListedProject",
    "ProjectRecord",
    "ReleaseRef",
    "Role",
    "StoredFile",
    "StoredMetadata",
    "StoredRelease",
]


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


@dataclass(frozen=True)
class CrawlProgress:
    """How far the crawler has come: projects read of those listed, its rate lately, and when it should finish."""

    projects: int  # listed by the Simple index
    read: int  # whose JSON the catalog has read
    coverage: float | None  # read / projects (None before the first look)
    rate: float | None  # reads a second over the crawler's latest reads (None before it has read two)
    eta_seconds: int | None  # the projects left at that rate (0: every one read; None: no rate to tell)
    last_read_at: int | None  # POSIX time of the crawler's latest read
    cursor: str | None  # the name it resumes after


@dataclass(frozen=True)
class Event:
    """One change row of one project, before it is given the serial it is recorded under."""

    version: str | None
    timestamp: int
    action: str


@dataclass(frozen=True)
class ListedProject:
    """A project as the Simple index lists it."""

    normalized: str
    name: str
    serial: int


@dataclass(frozen=True)
class ProjectRecord:
    """What the catalog holds of a project it has seen."""

    name: str
    serial: int
    seen_at: int  # when this serial was first seen
    known: bool  # its releases and files were read from its JSON


@dataclass(frozen=True)
class StoredMetadata:
    """A project's display name and what its JSON showed of its latest release (search reads it)."""

    name: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class ReleaseRef:
    """A release, by project display name and version."""

    name: str
    version: str


@dataclass(frozen=True)
class Role:
    """A role held on a project, by project display name."""

    role: str
    project: str
