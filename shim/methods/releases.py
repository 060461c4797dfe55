"""Package querying: a project's releases, a release's files and its metadata, from the JSON API (and core
metadata where the JSON lacks a field or a release)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from pydantic import StrictBool, StrictStr

from shim.errors import Refused, UpstreamUnavailable
from shim.methods.reading import encoded_once, project
from shim.methods.structs import file_struct, release_data_struct
from shim.upstream.archive_stream import stream_kind
from shim.upstream.parsers import CoreMetadata, ProjectDoc
from shim.versions import legacy_sorted
from shim.xmlrpc.context import CallContext
from shim.xmlrpc.protocol import Raw

__all__ = ["package_releases", "release_data", "release_urls"]


async def package_releases(
    context: CallContext, package_name: StrictStr, show_hidden: StrictBool = False
) -> list[str] | Raw:
    """The latest release, or every release highest first, from the JSON API."""
    found = await project(context, package_name)
    if found is None:
        return []
    _, doc = found
    return encoded_once(context, doc, ("package_releases", show_hidden), lambda: _releases(doc, show_hidden))


def _releases(doc: ProjectDoc, show_hidden: bool) -> list[str]:
    if show_hidden:
        versions = doc.releases.keys() if doc.releases is not None else [doc.version]
        return legacy_sorted(versions)[::-1]
    # The JSON API picks a yanked release only when every release is yanked; PyPI answered [] then.
    return [] if doc.info.get("yanked") is True else [doc.version]


def _release_files(doc: ProjectDoc, version: str) -> list[dict[str, Any]] | None:
    """The files of exactly `version` (no PEP 440 matching: `3.0` is not `3.0.0`), or None."""
    if doc.releases is not None:
        return doc.releases.get(version)
    return doc.urls if doc.version == version else None


async def release_urls(context: CallContext, package_name: StrictStr, version: StrictStr) -> list[Any] | Raw:
    """A release's files, from the project document's `releases`."""
    found = await project(context, package_name)
    if found is None:
        return []
    normalized, doc = found
    files = _release_files(doc, version)
    if files is None and doc.releases is None:
        release = await context.services.store.release(normalized, version)
        if release is not None and release.info["version"] == version:
            return [file_struct(f, release.url) for f in release.urls]
    return encoded_once(context, doc, ("release_urls", version), lambda: [file_struct(f, doc.url) for f in files or []])


def _declares_metadata(file: dict[str, Any]) -> bool | None:
    """Whether a file says it has a core metadata file (`core-metadata`, or its older name); None: it says nothing."""
    flag = file.get("core-metadata", file.get("data-dist-info-metadata"))
    return None if flag is None else bool(flag)


def _metadata_file(files: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The file whose metadata PyPI's release fields came from: the first upload that has a metadata file.

    A file says so with `core-metadata` (or its older name); a mirror that says nothing may still serve
    one for a wheel, so a wheel without the keys is tried too.
    """

    def offers(file: dict[str, Any]) -> bool:
        if not isinstance(file.get("url"), str):
            return False  # nowhere to fetch it from
        declared = _declares_metadata(file)
        return declared if declared is not None else str(file["filename"]).endswith(".whl")

    candidates = [f for f in files if offers(f)]
    return min(candidates, key=lambda f: str(f.get("upload_time_iso_8601") or ""), default=None)


def _archive_files(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The files a release's metadata may be read from, when the upstream has no other source of it: its first
    wheel (by range requests), then its first sdist of a kind that streams (see shim.upstream.file_metadata)."""
    readable = [f for f in files if isinstance(f.get("url"), str) and isinstance(f.get("filename"), str)]
    readable.sort(key=lambda f: str(f.get("upload_time_iso_8601") or f.get("upload_time") or ""))
    wheel = next((f for f in readable if f["filename"].lower().endswith(".whl")), None)
    sdist = next((f for f in readable if stream_kind(f["filename"]) is not None), None)
    return [f for f in (wheel, sdist) if f is not None]


async def _metadata_from_files(
    context: CallContext, normalized: str, doc: ProjectDoc, version: str
) -> CoreMetadata | None:
    """The release's metadata, read from its wheel, else from its sdist; None when neither gives it."""
    for file in _archive_files(_release_files(doc, version) or []):
        found = await context.services.store.archive_metadata(
            normalized, urljoin(doc.url, file["url"]), file["filename"]
        )
        if found is not None and found.info["version"] == version:
            return found
    return None


async def release_data(context: CallContext, package_name: StrictStr, version: StrictStr) -> dict[str, Any]:
    """A release's metadata: the JSON API's `info` for exactly that version, plus its core metadata file."""
    found = await project(context, package_name)
    if found is None:
        return {}
    normalized, doc = found
    files = _release_files(doc, version)
    if files is None and doc.releases is not None:
        return {}  # a version the project does not have: answered without asking the upstream
    store = context.services.store
    chosen = _metadata_file(files or [])
    core = None
    if chosen is not None:
        declared = _declares_metadata(chosen) is True
        core = await store.core_metadata(normalized, urljoin(doc.url, chosen["url"]), declared=declared)
    if doc.version == version:
        info = doc.info
    else:
        # Optional once core metadata has answered for this release: then a failure costs only what it adds.
        answered = core is not None and core.info["version"] == version
        release = await store.release(normalized, version, optional=answered)
        if release is not None:
            if release.info["version"] != version:
                return {}
            info = release.info
        elif core is not None and answered:
            info = {**core.info, "name": doc.name}
        elif (read := await _metadata_from_files(context, normalized, doc, version)) is not None:
            info, core = {**read.info, "name": doc.name}, read
        elif store.files_unreadable(urls := [urljoin(doc.url, f["url"]) for f in _archive_files(files or [])]):
            raise UpstreamUnavailable(
                urls[0], "the release's files cannot be read now, and nothing else has its metadata"
            )
        else:
            raise Refused(
                RuntimeError(
                    f"The upstream offers no metadata for {doc.name} {version}: "
                    "no per-release JSON and no core metadata file."
                )
            )
    ordering = legacy_sorted(doc.releases).index(version) if doc.releases is not None else 0
    return release_data_struct(
        info, ordering=ordering, core=core.lists if core else None, base_url=context.services.base_url
    )
