"""What changed in a project between two looks, as PyPI's journal would have written it. Pure functions.

Warehouse's action words: `create`, `new release`, `add <python_version> file <filename>`,
`remove file <filename>`, `remove release`, `remove project`, `yank release`, `unyank release`.
Timestamps: the RSS `pubDate` of a release, else its files' upload time, else when the change was seen.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from shim.catalog.rows import Event, StoredFile, StoredRelease
from shim.catalog.schema import DEFAULT_ACTION
from shim.catalog.search_table import SEARCHED
from shim.upstream.parsers import ProjectDoc
from shim.versions import legacy_sorted

__all__ = ["derive_events", "project_metadata", "releases_of"]


def _posix(text: Any) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


def releases_of(doc: ProjectDoc) -> dict[str, StoredRelease]:
    """The releases and files a project document shows (yanked: the release's flag on its files)."""
    releases = doc.releases if doc.releases is not None else {doc.version: doc.urls}
    result = {}
    for version, files in releases.items():
        stored = tuple(
            StoredFile(
                str(f["filename"]),
                str(f.get("python_version") or "source"),
                _posix(f.get("upload_time_iso_8601") or f.get("upload_time")),
            )
            for f in files
        )
        yanked = any(bool(f.get("yanked")) for f in files)
        if version == doc.version and doc.info.get("yanked"):
            yanked = True
        result[version] = StoredRelease(version, yanked, stored)
    return result


def project_metadata(doc: ProjectDoc) -> dict[str, Any]:
    """What search, browse and user_packages read later: the latest release's fields, and the roles."""
    info = doc.info
    fields = SEARCHED
    metadata: dict[str, Any] = {key: info.get(key) for key in fields}
    metadata["version"] = doc.version
    metadata["classifiers"] = list(info.get("classifiers") or [])
    roles = (doc.ownership or {}).get("roles")
    metadata["roles"] = [[r.get("role"), r.get("user")] for r in roles if isinstance(r, dict)] if roles else None
    metadata["versions"] = legacy_sorted(doc.releases) if doc.releases is not None else [doc.version]
    return metadata


def _release_time(release: StoredRelease, pubdates: Mapping[str, int], seen: int) -> int:
    if release.version in pubdates:
        return pubdates[release.version]
    times = [f.upload_time for f in release.files if f.upload_time is not None]
    return min(times) if times else seen


def _added(release: StoredRelease, files: tuple[StoredFile, ...], seen: int) -> list[Event]:
    return [
        Event(
            release.version,
            f.upload_time if f.upload_time is not None else seen,
            f"add {f.python_version} file {f.filename}",
        )
        for f in sorted(files, key=lambda f: (f.upload_time or seen, f.filename))
    ]


def derive_events(
    old: Mapping[str, StoredRelease] | None,
    new: Mapping[str, StoredRelease] | None,
    *,
    created: bool,
    removed: bool,
    pubdates: Mapping[str, int],
    seen: int,
    known_since: int | None = None,
    created_at: int | None = None,
) -> list[Event]:
    """The rows for one serial change of one project.

    `old` is what the catalog held (None: never read), `new` what the JSON shows now (None: no JSON, i.e. no
    releases). `created`: the project just appeared in the Simple index (at `created_at`, from the newest
    packages feed, when it says); `removed`: it left it. Where `old`
    is unknown, releases created (`pubdates`) or uploaded since `known_since` (when the previous serial was seen),
    and files uploaded since, are taken as new. With nothing to tell, one row with the default action stands for
    the change.
    """
    if removed:
        return [Event(None, seen, "remove project")]
    events: list[Event] = []
    new = new or {}
    if created:
        first = min((_release_time(r, pubdates, seen) for r in new.values()), default=seen)
        events.append(Event(None, created_at if created_at is not None else first, "create"))
        old = {}
    if old is None:
        since = known_since if known_since is not None else seen
        for release in new.values():
            # New: created since (the feeds say when; then every file of it is new), or every file uploaded since.
            created_since = release.version in pubdates and pubdates[release.version] > since
            fresh_files = (
                release.files
                if created_since
                else tuple(f for f in release.files if f.upload_time is not None and f.upload_time >= since)
            )
            if created_since or (fresh_files and len(fresh_files) == len(release.files)):
                events.append(Event(release.version, _release_time(release, pubdates, seen), "new release"))
            events += _added(release, fresh_files, seen)
    else:
        for version in legacy_sorted(set(new) - set(old)):
            release = new[version]
            events.append(Event(version, _release_time(release, pubdates, seen), "new release"))
            events += _added(release, release.files, seen)
        for version in legacy_sorted(set(new) & set(old)):
            before, after = old[version], new[version]
            known = {f.filename for f in before.files}
            events += _added(after, tuple(f for f in after.files if f.filename not in known), seen)
            now = {f.filename for f in after.files}
            events += [Event(version, seen, f"remove file {f.filename}") for f in before.files if f.filename not in now]
            if after.yanked != before.yanked:
                events.append(Event(version, seen, "yank release" if after.yanked else "unyank release"))
        events += [Event(version, seen, "remove release") for version in legacy_sorted(set(old) - set(new))]
    if not events:
        events.append(Event(None, seen, DEFAULT_ACTION))
    return events
