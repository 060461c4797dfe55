"""The fake index's "database": projects, releases and files, loaded from fixture state files.

Only what Warehouse stores is kept here. Everything Warehouse computes when it renders (URLs, `md5_digest`,
`downloads`, the release-level `yanked` flag copied onto files, ...) is computed by the renderers.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import InvalidVersion, Version

JSONDict = dict[str, Any]

# The 21 keys of the JSON API's `info` that come from the release's stored metadata. The other nine
# (name, version, package_url, project_url, release_url, downloads, bugtrack_url, yanked, yanked_reason)
# are computed by the renderer, as Warehouse does.
STORED_INFO_KEYS = (
    "author",
    "author_email",
    "classifiers",
    "description",
    "description_content_type",
    "docs_url",
    "download_url",
    "dynamic",
    "home_page",
    "keywords",
    "license",
    "license_expression",
    "license_files",
    "maintainer",
    "maintainer_email",
    "platform",
    "project_urls",
    "provides_extra",
    "requires_dist",
    "requires_python",
    "summary",
)


# --- versions -----------------------------------------------------------------------------------------

_LEGACY_COMPONENT = re.compile(r"(\d+ | [a-z]+ | \.| -)", re.VERBOSE)
_LEGACY_REPLACE = {"pre": "c", "preview": "c", "-": "final-", "rc": "c", "dev": "@"}


def _legacy_parts(version: str) -> tuple[str, ...]:
    """packaging_legacy's LegacyVersion key (setuptools' old parse_version)."""
    raw: list[str] = []
    for piece in _LEGACY_COMPONENT.split(version.lower()):
        part = _LEGACY_REPLACE.get(piece, piece)
        if not part or part == ".":
            continue
        raw.append(part.zfill(8) if part[:1] in "0123456789" else "*" + part)
    raw.append("*final")
    parts: list[str] = []
    for part in raw:
        if part.startswith("*"):
            if part < "*final":
                while parts and parts[-1] == "*final-":
                    parts.pop()
            while parts and parts[-1] == "00000000":
                parts.pop()
        parts.append(part)
    return tuple(parts)


@functools.total_ordering
class VersionKey:
    """Sort key equal to `packaging_legacy.version.parse`: every legacy version sorts before every valid one."""

    def __init__(self, version: str) -> None:
        try:
            self.parsed: Version | None = Version(version)
            self.legacy: tuple[str, ...] = ()
        except InvalidVersion:
            self.parsed = None
            self.legacy = _legacy_parts(version)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VersionKey):
            return NotImplemented
        return (self.parsed, self.legacy) == (other.parsed, other.legacy)

    def __hash__(self) -> int:
        return hash((self.parsed, self.legacy))

    def __lt__(self, other: VersionKey) -> bool:
        if self.parsed is not None and other.parsed is not None:
            return self.parsed < other.parsed
        if self.parsed is None and other.parsed is None:
            return self.legacy < other.legacy
        return self.parsed is None


def version_key(version: str) -> VersionKey:
    return VersionKey(version)


def is_prerelease(version: str) -> bool:
    key = version_key(version)
    return key.parsed is not None and key.parsed.is_prerelease


# --- time -----------------------------------------------------------------------------------------------


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 time, `Z` or offset or naive (taken as UTC), as a naive UTC datetime (Warehouse's kind)."""
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def iso_z(value: dt.datetime) -> str:
    """Warehouse's `isoformat() + "Z"`: microseconds only when non-zero."""
    return value.isoformat() + "Z"


# --- records --------------------------------------------------------------------------------------------


@dataclass
class FileRecord:
    filename: str
    packagetype: str
    python_version: str
    size: int
    digests: dict[str, str]  # blake2b_256, md5, sha256
    upload_time: dt.datetime
    comment_text: str | None = None
    core_metadata_sha256: str | None = None
    path: str | None = None  # under <files_url>packages/ ; or
    url: str | None = None  # an explicit URL, possibly relative (some mirrors serve those)
    metadata: str | None = None  # PEP 658 text served at <url>.metadata
    content: bytes | None = None  # real bytes; else deterministic bytes of `size`

    def body(self) -> bytes:
        if self.content is not None:
            return self.content
        seed = hashlib.sha256(self.filename.encode()).digest()
        return (seed * (self.size // len(seed) + 1))[: self.size]

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> FileRecord:
        known = {
            "filename",
            "packagetype",
            "python_version",
            "size",
            "digests",
            "upload_time",
            "comment_text",
            "core_metadata_sha256",
            "path",
            "url",
            "metadata",
            "content_b64",
        }
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown file keys {sorted(unknown)} in {data.get('filename')!r}.")
        content = data.get("content_b64")
        return cls(
            filename=data["filename"],
            packagetype=data["packagetype"],
            python_version=data["python_version"],
            size=data["size"],
            digests=dict(data["digests"]),
            upload_time=parse_time(data["upload_time"]),
            comment_text=data.get("comment_text"),
            core_metadata_sha256=data.get("core_metadata_sha256"),
            path=data.get("path"),
            url=data.get("url"),
            metadata=data.get("metadata"),
            content=base64.b64decode(content) if content is not None else None,
        )


@dataclass
class Release:
    version: str
    created: dt.datetime
    info: JSONDict  # the 21 STORED_INFO_KEYS
    files: list[FileRecord] = field(default_factory=list)
    yanked: bool = False
    yanked_reason: str | None = None
    vulnerabilities: list[JSONDict] = field(default_factory=list)

    @property
    def canonical_version(self) -> str:
        return canonicalize_version(self.version)

    @property
    def key(self) -> VersionKey:
        return version_key(self.version)

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> Release:
        return cls(
            version=data["version"],
            created=parse_time(data["created"]),
            info=full_info(data.get("info", {})),
            files=[FileRecord.from_state(f) for f in data.get("files", [])],
            yanked=data.get("yanked", False),
            yanked_reason=data.get("yanked_reason"),
            vulnerabilities=list(data.get("vulnerabilities", [])),
        )


def full_info(info: Mapping[str, Any]) -> JSONDict:
    unknown = set(info) - set(STORED_INFO_KEYS)
    if unknown:
        raise ValueError(f"info keys {sorted(unknown)} are computed or unknown; store only {STORED_INFO_KEYS}.")
    out: JSONDict = {key: info.get(key) for key in STORED_INFO_KEYS}
    if out["classifiers"] is None:
        out["classifiers"] = []
    return out


@dataclass
class Project:
    name: str  # display name
    last_serial: int
    created: dt.datetime | None
    releases: list[Release] = field(default_factory=list)
    roles: list[JSONDict] = field(default_factory=list)  # [{"role", "user"}]
    organization: str | None = None
    status: str = "active"  # active | archived | quarantined

    @property
    def normalized(self) -> str:
        return canonicalize_name(self.name)

    @property
    def quarantined(self) -> bool:
        return self.status == "quarantined"

    def release(self, version: str) -> Release | None:
        return next((r for r in self.releases if r.version == version), None)

    def by_ordering(self) -> list[Release]:
        """Releases ascending by `_pypi_ordering` (packaging_legacy order)."""
        return sorted(self.releases, key=lambda r: r.key)

    def latest(self) -> Release | None:
        """The JSON API's choice: yanked ascending, prereleases after finals, then `_pypi_ordering` descending."""
        if not self.releases:
            return None
        return max(self.releases, key=lambda r: (not r.yanked, not is_prerelease(r.version), r.key))

    def find_version(self, version: str) -> Release | None:
        """The version route's lookup: canonical version, the exact string breaking ties, else nothing."""
        canonical = canonicalize_version(version)
        matches = [r for r in self.releases if r.canonical_version == canonical]
        if len(matches) == 1:
            return matches[0]
        return next((r for r in matches if r.version == version), None)

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> Project:
        releases = [Release.from_state(r) for r in data.get("releases", [])]
        created = data.get("created")
        ownership = data.get("ownership", {})
        return cls(
            name=data["name"],
            last_serial=data["last_serial"],
            created=parse_time(created) if created else min((r.created for r in releases), default=None),
            releases=releases,
            roles=list(ownership.get("roles", [])),
            organization=ownership.get("organization"),
            status=data.get("status", "active"),
        )


class IndexState:
    """All projects, keyed by normalised name, and the journal's highest serial."""

    def __init__(self, projects: Iterable[Project] = ()) -> None:
        self.projects: dict[str, Project] = {}
        self.serial = 0
        for project in projects:
            self.put(project)

    def put(self, project: Project) -> None:
        self.projects[project.normalized] = project
        self.serial = max(self.serial, project.last_serial)

    def get(self, name: str) -> Project | None:
        return self.projects.get(canonicalize_name(name))

    def all_releases(self) -> list[tuple[Project, Release]]:
        return [(p, r) for p in self.projects.values() for r in p.releases]

    @classmethod
    def load(cls, directory: Path) -> IndexState:
        """Every `*.json` state file directly in `directory` (sub-directories hold other material)."""
        return cls(load_project(path) for path in sorted(directory.glob("*.json")))


def load_project(path: Path) -> Project:
    return Project.from_state(json.loads(path.read_text(encoding="utf-8")))
