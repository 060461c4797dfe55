"""Upstream documents by kind, through the cache: project JSON, release JSON, core metadata files.

Each loader validates what it fetched before it can be stored, so a malformed body is never cached.
What an upstream turns out not to offer (per-release JSON on many mirrors) is remembered and the
fallback used from then on; the method table's notes say what each fallback costs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shim.errors import UpstreamMalformed
from shim.upstream.cache import DocumentCache, Entry, footprint
from shim.upstream.client import Fetched, Upstream
from shim.upstream.file_metadata import ArchiveLimits, RangesIgnored, sdist_metadata, wheel_metadata
from shim.upstream.origins import FilesHost
from shim.upstream.parsers import CoreMetadata, ProjectDoc, VersionDoc
from shim.upstream.simple_index import SimpleIndex
from shim.upstream.urls import redact_url

__all__ = ["Capabilities", "DocumentStore"]

# Turns a fetched body (and its URL) into a document; raises ValueError for a malformed one.
Parse = Callable[[bytes, str], Any]

logger = logging.getLogger(__name__)

# A body this large is parsed (and measured) in a worker thread: a project of thousands of releases is megabytes of
# JSON, tens of milliseconds of parsing that would hold every other call on the event loop. A small one is parsed
# where it is, cheaper than the hand-over to a thread.
PARSE_INLINE_BYTES = 64 * 1024


def _parse_and_measure(parse: Parse, body: bytes, url: str) -> tuple[Any, int]:
    parsed = parse(body, url)
    return parsed, footprint(parsed)


async def parse_document(parse: Parse, body: bytes, url: str) -> tuple[Any, int]:
    """The document `parse` makes of `body`, and its footprint in memory; ValueError for a malformed one."""
    if len(body) < PARSE_INLINE_BYTES:
        return _parse_and_measure(parse, body, url)
    return await asyncio.to_thread(_parse_and_measure, parse, body, url)


@dataclass
class Capabilities:
    """What the upstream offers, learnt as it answers (None: not known yet)."""

    per_version_json: bool | None = None
    ranges: bool | None = None  # whether the files host honours Range (a wheel's metadata is read by ranges)


class DocumentStore:
    def __init__(
        self, upstream: Upstream, cache: DocumentCache, index: SimpleIndex, *, files_base: str | None = None
    ) -> None:
        self.upstream = upstream
        self.cache = cache
        self.index = index
        # The upstream's files host (SHIM_FILES_UPSTREAM, else learnt): file URLs in documents are fetched only there.
        self.files = FilesHost(upstream.base, files_base)
        self._refused: set[str] = set()  # where documents pointed that was refused, logged once each
        self.capabilities = Capabilities()
        # How much of a release's file may be read for its metadata (shim.wiring sets it); None: nothing.
        self.archives: ArchiveLimits | None = None
        # The serial another source reports for a project (the catalog, written by a refresher that
        # may run in another process and be ahead of this process's copy of the Simple index).
        self.reported_serial: Callable[[str], Awaitable[int | None]] | None = None

    async def entry(
        self,
        key: str,
        url: str,
        project: str | None,
        *,
        parse: Parse | None = None,
        accept: str | None = None,
        stale_ok: bool = True,
    ) -> Entry:
        """The cached entry for `url` (a 404 included), fetched or revalidated as the cache's policy says.

        With `project`, the entry follows that project's changes in the Simple index, and is never older
        than the serial the index shows for it (fetched again once when it is).
        """

        async def load(previous: Entry | None) -> Entry:
            fetched = await self.upstream.get(url, accept=accept, etag=previous.etag if previous else None)
            if fetched.status == 304 and previous is not None:
                return previous
            return await self._entry(fetched, parse)

        changed_at = floor = None
        if project is not None:
            changed_at = self.index.changed_at(project)
            snapshot = self.index.snapshot
            floors = [snapshot.serial_of(project) if snapshot is not None else None]
            if self.reported_serial is not None:
                floors.append(await self.reported_serial(project))
            floor = max((f for f in floors if f is not None), default=None)
        return await self.cache.get(key, load, changed_at=changed_at, floor=floor, stale_ok=stale_ok)

    async def _document(self, key: str, url: str, parse: Parse, project: str, *, stale_ok: bool = True) -> Any:
        """The parsed document at `url`, or None for a genuine not-found."""
        entry = await self.entry(key, url, project, parse=parse, stale_ok=stale_ok)
        if entry.status == 404:
            return None
        if entry.parsed is None:  # read back from a store that keeps only bytes
            entry.parsed, entry.parsed_bytes = await parse_document(parse, entry.body, entry.url)
        return entry.parsed

    async def _entry(self, fetched: Fetched, parse: Parse | None) -> Entry:
        now = self.cache.clock()
        if fetched.status == 404:
            return Entry(status=404, body=b"", url=fetched.url, fetched_at=now)
        if fetched.status != 200:
            raise UpstreamMalformed(fetched.url, f"HTTP {fetched.status} without a request for it")
        parsed, parsed_bytes = None, 0
        if parse is not None:
            try:
                parsed, parsed_bytes = await parse_document(parse, fetched.body, fetched.url)
            except ValueError as exc:
                raise UpstreamMalformed(fetched.url, str(exc)) from None
        return Entry(
            status=200,
            body=fetched.body,
            url=fetched.url,
            fetched_at=now,
            etag=fetched.etag,
            serial=fetched.serial,
            content_type=fetched.content_type,
            headers=fetched.headers,
            parsed=parsed,
            parsed_bytes=parsed_bytes,
        )

    async def project(self, normalized: str, *, stale_ok: bool = True) -> ProjectDoc | None:
        """`/pypi/<name>/json`, or None when the project has no release (or does not exist).

        The change feed's writer passes `stale_ok=False`: a change derived from an old copy would be lost."""
        doc: ProjectDoc | None = await self._document(
            f"project:{normalized}",
            self.upstream.project_url(normalized),
            ProjectDoc.from_json,
            normalized,
            stale_ok=stale_ok,
        )
        return doc

    async def release(self, normalized: str, version: str) -> VersionDoc | None:
        """`/pypi/<name>/<version>/json` for a version the project document lists; None if not offered."""
        if self.capabilities.per_version_json is False:
            return None
        doc: VersionDoc | None = await self._document(
            f"release:{normalized}:{version}",
            self.upstream.version_url(normalized, version),
            VersionDoc.from_json,
            normalized,
        )
        if doc is None:
            # The project document lists this version, so a 404 here means the route is missing.
            if self.capabilities.per_version_json is None:
                logger.warning("the upstream has no per-release JSON; release_data falls back to core metadata")
            self.capabilities.per_version_json = False
        else:
            self.capabilities.per_version_json = True
        return doc

    async def core_metadata(self, normalized: str, file_url: str) -> CoreMetadata | None:
        """A file's PEP 658 metadata, or None if the upstream has none for it, or if `file_url` (absolute, as a
        document names it) is not a file of the upstream's (see shim.upstream.origins): then nothing is asked."""
        self.files.learn(file_url)
        if not self.files.allows(file_url):
            shown = redact_url(file_url)[:200]
            if shown not in self._refused and len(self._refused) < 1000:
                self._refused.add(shown)
                logger.warning(
                    "not fetching core metadata for %s: %s is not a file of the upstream's", normalized, shown
                )
            return None
        parsed: CoreMetadata | None = await self._document(
            f"metadata:{file_url}",
            file_url + ".metadata",
            lambda body, url: CoreMetadata.from_text(body.decode("utf-8", "replace")),
            normalized,
        )
        return parsed

    async def archive_metadata(self, normalized: str, file_url: str, filename: str) -> CoreMetadata | None:
        """A release's metadata read from one of its files (`file_url`, absolute; see shim.upstream.file_metadata):
        a wheel's METADATA by range requests, an sdist's PKG-INFO streamed. Cached as a file's core metadata is;
        None when the file gives none (remembered as a not-found), or is not a file of the upstream's."""
        wheel = filename.lower().endswith(".whl")
        limits = self.archives
        if limits is None or (wheel and self.capabilities.ranges is False) or not self._fetchable(normalized, file_url):
            return None

        async def load(previous: Entry | None) -> Entry:
            if previous is not None:
                return previous  # a file's bytes do not change under its URL: nothing to ask again
            now = self.cache.clock()
            try:
                if wheel:
                    text = await wheel_metadata(self.upstream, file_url, filename, limits)
                    self.capabilities.ranges = True
                else:
                    text = await sdist_metadata(self.upstream, file_url, filename, limits)
                parsed, parsed_bytes = await parse_document(_metadata_text, text, file_url)
            except RangesIgnored:
                if self.capabilities.ranges is None:
                    logger.warning("the files host ignores Range; release_data reads sdists, not wheels, for metadata")
                self.capabilities.ranges = False
                return Entry(status=404, body=b"", url=file_url, fetched_at=now)
            except (UpstreamMalformed, ValueError) as exc:
                reason = exc.reason if isinstance(exc, UpstreamMalformed) else str(exc)
                logger.info("no metadata read from %s: %s", redact_url(file_url)[:200], reason)
                return Entry(status=404, body=b"", url=file_url, fetched_at=now)
            return Entry(status=200, body=text, url=file_url, fetched_at=now, parsed=parsed, parsed_bytes=parsed_bytes)

        entry = await self.cache.get(f"archive-metadata:{file_url}", load)
        if entry.status == 404:
            return None
        if entry.parsed is None:  # read back from a store that keeps only bytes
            entry.parsed, entry.parsed_bytes = await parse_document(_metadata_text, entry.body, entry.url)
        found: CoreMetadata = entry.parsed
        return found

    def _fetchable(self, normalized: str, file_url: str) -> bool:
        """Whether `file_url` is a file of the upstream's; a refused one is logged once."""
        self.files.learn(file_url)
        if self.files.allows(file_url):
            return True
        shown = redact_url(file_url)[:200]
        if shown not in self._refused and len(self._refused) < 1000:
            self._refused.add(shown)
            logger.warning("not reading %s's metadata from %s: not a file of the upstream's", normalized, shown)
        return False


def _metadata_text(body: bytes, url: str) -> CoreMetadata:
    return CoreMetadata.from_text(body.decode("utf-8", "replace"))
