"""Upstream documents by kind, through the cache: project JSON, release JSON, core metadata files.

Each loader validates what it fetched before it can be stored, so a malformed body is never cached.
What an upstream turns out not to offer (per-release JSON on many mirrors) is remembered and the
fallback used from then on; the method table's notes say what each fallback costs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from cachetools import LRUCache

from shim.errors import UpstreamError, UpstreamMalformed
from shim.upstream.answers import Fetched, origin_label
from shim.upstream.cache import Adopt, DocumentCache, Entry, footprint
from shim.upstream.capabilities import Capabilities
from shim.upstream.client import Upstream
from shim.upstream.file_metadata import ArchiveLimits, RangesIgnored, sdist_metadata, wheel_metadata
from shim.upstream.origins import FilesHost
from shim.upstream.parsers import CoreMetadata, ProjectDoc, VersionDoc
from shim.upstream.simple_index import SimpleIndex
from shim.upstream.urls import redact_url

__all__ = ["DocumentStore"]

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


class DocumentStore:
    # Told the name of every project a read is for, before it is read (the crawler reads first those the catalog
    # lacks); set by shim.wiring.
    asked: Callable[[str], None] | None = None

    def __init__(
        self,
        upstream: Upstream,
        cache: DocumentCache,
        index: SimpleIndex,
        *,
        recheck: float,
        files_base: str | None = None,
    ) -> None:
        self.upstream = upstream
        self.cache = cache
        self.index = index
        # The upstream's files host (SHIM_FILES_UPSTREAM, else learnt): file URLs in documents are fetched only there.
        self.files = FilesHost(upstream.base, files_base)
        self._refused: set[str] = set()  # where documents pointed that was refused, logged once each
        # Learnt as the upstream answers, on the guard's clock; rechecked `recheck` seconds after one is found off.
        self.capabilities = Capabilities(lambda: upstream.guard.clock(), recheck=recheck)
        # How much of a release's file may be read for its metadata (shim.wiring sets it); None: nothing.
        self.archives: ArchiveLimits | None = None
        self._unreadable: LRUCache[str, bool] = LRUCache(maxsize=10_000)  # files that gave no metadata, once read
        # The serial another source reports for a project (the catalog, written by a refresher that
        # may run in another process and be ahead of this process's copy of the Simple index).
        self.reported_serial: Callable[[str], Awaitable[int | None]] | None = None
        # Told of every project document fetched for a call or a pass-through (the catalog keeps what it shows; set
        # by shim.wiring, as this layer cannot know the catalog). It must return at once and never raise.
        self.on_project: Callable[[str, ProjectDoc], None] | None = None

    async def entry(
        self,
        key: str,
        url: str,
        project: str | None,
        *,
        parse: Parse | None = None,
        accept: str | None = None,
        stale_ok: bool = True,
        optional: bool = False,
        by_catalog: bool = False,
    ) -> Entry:
        """The cached entry for `url` (a 404 included), fetched or revalidated as the cache's policy says.

        With `project`, the entry follows that project's changes in the Simple index, and is never older
        than the serial the index shows for it (fetched again once when it is). `by_catalog`: read by the catalog's
        own writers (the refresher, the crawler), which record what they read: neither told (`on_project`) nor
        counted as asked for (`asked`).
        """

        async def load(previous: Entry | None) -> Entry:
            etag = previous.etag if previous else None
            fetched = await self.upstream.get(url, accept=accept, etag=etag, optional=optional)
            if fetched.status == 304 and previous is not None:
                return previous
            loaded = await self._entry(fetched, parse)
            self._tell(loaded, project, by_catalog)
            return loaded

        adopt: Adopt | None = None
        if self.cache.adopts:  # a cache hit in process builds no more than it needs

            async def adopted(shared: Entry) -> None:
                """An entry another replica fetched (read from the shared cache): parsed here, once, and told as one
                fetched here is. ValueError: malformed (not used)."""
                if parse is not None:
                    shared.parsed, shared.parsed_bytes = await parse_document(parse, shared.body, shared.url)
                self._tell(shared, project, by_catalog)

            adopt = adopted

        changed_at = floor = None
        if project is not None:
            if self.asked is not None and not by_catalog:
                self.asked(project)
            changed_at = self.index.changed_at(project)
            snapshot = self.index.snapshot
            floors = [snapshot.serial_of(project) if snapshot is not None else None]
            if self.reported_serial is not None:
                floors.append(await self.reported_serial(project))
            floor = max((f for f in floors if f is not None), default=None)
        return await self.cache.get(key, load, changed_at=changed_at, floor=floor, stale_ok=stale_ok, adopt=adopt)

    def _tell(self, loaded: Entry, project: str | None, by_catalog: bool) -> None:
        """A project document fetched (or adopted) for a call reaches the catalog (`on_project`)."""
        if (
            self.on_project is not None
            and project is not None
            and not by_catalog
            and isinstance(loaded.parsed, ProjectDoc)
        ):
            self._observed(self.on_project, project, loaded.parsed)

    @staticmethod
    def _observed(hook: Callable[[str, ProjectDoc], None], project: str, doc: ProjectDoc) -> None:
        try:
            hook(project, doc)
        except Exception:  # what the catalog keeps is never worth the call's answer
            logger.exception("the catalog was not told of %s", project)

    async def _document(
        self,
        key: str,
        url: str,
        parse: Parse,
        project: str,
        *,
        stale_ok: bool = True,
        optional: bool = False,
        by_catalog: bool = False,
    ) -> Any:
        """The parsed document at `url`, or None for a genuine not-found."""
        entry = await self.entry(
            key, url, project, parse=parse, stale_ok=stale_ok, optional=optional, by_catalog=by_catalog
        )
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

    async def project(self, normalized: str, *, stale_ok: bool = True, by_catalog: bool = False) -> ProjectDoc | None:
        """`/pypi/<name>/json`, or None when the project has no release (or does not exist).

        The change feed's writer passes `stale_ok=False`: a change derived from an old copy would be lost; it and
        the crawler pass `by_catalog` (see `entry`)."""
        doc: ProjectDoc | None = await self._document(
            f"project:{normalized}",
            self.upstream.project_url(normalized),
            ProjectDoc.from_json,
            normalized,
            stale_ok=stale_ok,
            by_catalog=by_catalog,
        )
        if doc is not None:
            self.capabilities.ownership.observed(doc.ownership is not None)
        return doc

    async def release(self, normalized: str, version: str, *, optional: bool = False) -> VersionDoc | None:
        """`/pypi/<name>/<version>/json` for a version the project document lists; None if not offered.

        `optional`: the caller has another source for it, so a failure to read it is None too (see
        shim.upstream.optional), never a miss."""
        capability = self.capabilities.per_version_json
        if not capability.usable:
            return None
        url = self.upstream.version_url(normalized, version)

        async def fetch() -> VersionDoc | None:
            found: VersionDoc | None = await self._document(
                f"release:{normalized}:{version}", url, VersionDoc.from_json, normalized, optional=optional
            )
            return found

        if optional:
            doc = await self.upstream.optional.read("per-release JSON", origin_label(url), fetch)
        else:
            doc = await fetch()
        if doc is not None:
            capability.answered()
        elif not (optional and self._release_unreadable(url)) and capability.missed(f"{normalized} {version}"):
            # The project document lists this version, so the route is missing, or only this one document is:
            # the project's latest release, which the route must have if it exists at all, tells which.
            await self._probe_per_version_json(normalized, version)
        return doc

    async def _probe_per_version_json(self, normalized: str, missed: str) -> None:
        project = await self.project(normalized)
        if project is None:
            return
        if project.version == missed:
            self.capabilities.per_version_json.probed(False)
            return
        url = self.upstream.version_url(normalized, project.version)
        try:
            latest = await self._document(
                f"release:{normalized}:{project.version}", url, VersionDoc.from_json, normalized
            )
        except UpstreamError as exc:
            logger.info("per-release JSON: the probe of %s cannot be read now: %s", url, exc)
            return  # no word either way: the next miss probes again
        self.capabilities.per_version_json.probed(latest is not None)

    def _release_unreadable(self, url: str) -> bool:
        """Whether per-release JSON failed to be read (rather than was not there) the last time it was asked."""
        return self.upstream.optional.failing("per-release JSON", origin_label(url))

    async def core_metadata(self, normalized: str, file_url: str, *, declared: bool = True) -> CoreMetadata | None:
        """A file's PEP 658 metadata, or None if the upstream has none for it, if it cannot be read now (an optional
        read), or if `file_url` (absolute, as a document names it) is not a file of the upstream's (see
        shim.upstream.origins): then nothing is asked. A file that does not `declared` one is asked only while
        the upstream is not known to serve none."""
        if not self._fetchable(normalized, file_url):
            return None
        capability = self.capabilities.core_metadata
        if not declared and not capability.usable:
            return None

        async def fetch() -> CoreMetadata | None:
            found: CoreMetadata | None = await self._document(
                f"metadata:{file_url}",
                file_url + ".metadata",
                _metadata_text,
                normalized,
                optional=True,
            )
            if found is not None:
                capability.answered()
            else:
                capability.missed(file_url)
            return found

        return await self.upstream.optional.read("core metadata", origin_label(file_url), fetch)

    async def archive_metadata(self, normalized: str, file_url: str, filename: str) -> CoreMetadata | None:
        """A release's metadata read from one of its files (`file_url`, absolute; see shim.upstream.file_metadata):
        a wheel's METADATA by range requests, an sdist's PKG-INFO streamed. Cached as a file's core metadata is;
        None when the file gives none (remembered as a not-found), or is not a file of the upstream's."""
        wheel = filename.lower().endswith(".whl")
        limits = self.archives
        ranges = self.capabilities.ranges
        if limits is None or (wheel and not ranges.usable) or file_url in self._unreadable:
            return None
        if not self._fetchable(normalized, file_url):
            return None

        async def load(previous: Entry | None) -> Entry:
            if previous is not None:
                return previous  # a file's bytes do not change under its URL: nothing to ask again
            now = self.cache.clock()
            try:
                if wheel:
                    text = await wheel_metadata(self.upstream, file_url, filename, limits)
                    ranges.answered()
                else:
                    text = await sdist_metadata(self.upstream, file_url, filename, limits)
                parsed, parsed_bytes = await parse_document(_metadata_text, text, file_url)
            except RangesIgnored:
                ranges.probed(False)  # a 200 to a range request: the files host does not honour Range
                return Entry(status=404, body=b"", url=file_url, fetched_at=now)
            except (UpstreamMalformed, ValueError) as exc:
                reason = exc.reason if isinstance(exc, UpstreamMalformed) else str(exc)
                logger.info("no metadata read from %s: %s", redact_url(file_url)[:200], reason)
                # A file's bytes do not change under its URL: one that gives none never will (not read again).
                self._unreadable[file_url] = True
                return Entry(status=404, body=b"", url=file_url, fetched_at=now)
            return Entry(status=200, body=text, url=file_url, fetched_at=now, parsed=parsed, parsed_bytes=parsed_bytes)

        # Optional: a files host that cannot be reached (or redirects elsewhere) costs the answer only this source,
        # logged once and left alone for a while; the next file (an sdist after a wheel) may still answer.
        entry = await self.upstream.optional.read(
            "release files",
            origin_label(file_url),
            lambda: self.cache.get(f"archive-metadata:{file_url}", load, adopt=_parsed_metadata),
        )
        if entry is None or entry.status == 404:
            return None
        if entry.parsed is None:  # read back from a store that keeps only bytes
            entry.parsed, entry.parsed_bytes = await parse_document(_metadata_text, entry.body, entry.url)
        found: CoreMetadata = entry.parsed
        return found

    def files_unreadable(self, file_urls: list[str]) -> bool:
        """Whether the files host of any of `file_urls` failed to be reached the last time a file was read there."""
        return any(self.upstream.optional.failing("release files", origin_label(url)) for url in file_urls)

    def _fetchable(self, normalized: str, file_url: str) -> bool:
        """Whether `file_url` is a file of the upstream's; a refused one is logged once."""
        self.files.learn(file_url)
        if self.files.allows(file_url):
            return True
        shown = redact_url(file_url)[:200]
        if shown not in self._refused and len(self._refused) < 1000:
            self._refused.add(shown)
            logger.warning("not reading %s's metadata from %s: it is not a file of the upstream's", normalized, shown)
        return False


async def _parsed_metadata(shared: Entry) -> None:
    """A release's metadata another replica read from its files (from the shared cache), parsed here."""
    shared.parsed, shared.parsed_bytes = await parse_document(_metadata_text, shared.body, shared.url)


def _metadata_text(body: bytes, url: str) -> CoreMetadata:
    """A release's metadata text (a core metadata file, or METADATA/PKG-INFO read from its files), parsed."""
    return CoreMetadata.from_text(body.decode("utf-8", "replace"))
