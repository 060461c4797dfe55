"""A release's metadata read from one of its own files, for an upstream that offers neither per-release JSON nor
core metadata files (a mirror): a wheel's `.dist-info/METADATA` by range requests, an sdist's top-level PKG-INFO
streamed until it has passed. Never more than `ArchiveLimits.network` bytes of a file are read.

A wheel costs two range requests, three at most: the zip's last TAIL_BYTES (its end record, and the central
directory when it fits), the rest of the central directory if it did not, then the member (already read when it
lies in the tail, as in most wheels). An sdist is read from its start, and the stream closed as soon as PKG-INFO
has passed (setuptools puts it first, hatchling and flit last).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from shim.errors import UpstreamMalformed
from shim.upstream import archives
from shim.upstream.archive_stream import Limits, MemberFinder, stream_kind
from shim.upstream.client import Upstream
from shim.upstream.urls import redact_url

__all__ = ["EXPANSION", "ArchiveLimits", "RangesIgnored", "sdist_metadata", "wheel_metadata"]

# Decompressed bytes allowed per byte read (SHIM_MAX_ARCHIVE_BYTES): sources compress 3-10 times; a bomb, 1000.
EXPANSION = 16
# Room for a local header's extra field beyond the central directory's idea of it, read with the member.
_LOCAL_EXTRA = 1024


class RangesIgnored(Exception):
    """The files host answered a range request with the whole file (nothing of it was read)."""


@dataclass(frozen=True)
class ArchiveLimits:
    network: int  # bytes read of one file, at most (SHIM_MAX_ARCHIVE_BYTES)
    member: int  # bytes of the METADATA or PKG-INFO text (SHIM_MAX_DOCUMENT_BYTES)

    @property
    def expanded(self) -> int:
        return self.network * EXPANSION


class _Ranges:
    """Range reads of one file, within a budget of bytes, the file's size the same in each answer."""

    def __init__(self, upstream: Upstream, url: str, budget: int) -> None:
        self.upstream, self.url, self.budget = upstream, url, budget
        self.total: int | None = None

    def unreadable(self, reason: str) -> UpstreamMalformed:
        return UpstreamMalformed(redact_url(self.url), reason)

    async def get(self, start: int | None, end: int) -> tuple[int, bytes]:
        """(offset, bytes) of the range (see Upstream.get_range)."""
        wanted = end if start is None else end - start + 1
        if wanted > self.budget:
            raise self.unreadable("the wheel's metadata lies past SHIM_MAX_ARCHIVE_BYTES")
        answer = await self.upstream.get_range(self.url, start, end)
        if answer.status == 200:
            raise RangesIgnored
        if answer.status != 206:
            raise self.unreadable(f"HTTP {answer.status} to a range request")
        if self.total is not None and answer.total != self.total:
            raise self.unreadable("the file changed size between range requests")
        self.total = answer.total
        self.budget -= len(answer.body)
        return answer.start, answer.body


async def wheel_metadata(upstream: Upstream, url: str, filename: str, limits: ArchiveLimits) -> bytes:
    """The METADATA of the wheel at `url`, read by range requests. RangesIgnored when the host answers them with
    the whole file; UpstreamMalformed for a wheel that is not one, or whose metadata lies past the limits."""
    ranges = _Ranges(upstream, url, limits.network)
    tail_start, tail = await ranges.get(None, min(archives.TAIL_BYTES, limits.network))
    try:
        directory = archives.find_directory(tail, tail_start, ranges.total or 0)
        if directory.offset < tail_start:  # the central directory begins before the tail
            _, head = await ranges.get(directory.offset, tail_start - 1)
            tail_start, tail = directory.offset, head + tail
        at = directory.offset - tail_start
        members = archives.central_entries(tail[at : at + directory.size], directory.entries)
        member = archives.wheel_metadata_member(members, filename)
        if member.size > limits.member:
            raise archives.ArchiveError(f"a METADATA of {member.size} bytes, over SHIM_MAX_DOCUMENT_BYTES")
        span = archives.LOCAL_SIZE + len(member.raw_name) + _LOCAL_EXTRA + member.compressed
        end = min(member.offset + span, directory.offset)
        if member.offset >= tail_start:  # already read
            data = tail[member.offset - tail_start : end - tail_start]
        else:
            data = (await ranges.get(member.offset, end - 1))[1]
        begins = archives.data_offset(data, member)
        if len(data) < begins + member.compressed:
            raise archives.ArchiveError("a member's data is not within what its headers say")
        text = data[begins : begins + member.compressed]
        return archives.inflate(text, member.method, member.size, member.crc, limits.member)
    except archives.ArchiveError as exc:
        raise ranges.unreadable(str(exc)) from None


async def sdist_metadata(upstream: Upstream, url: str, filename: str, limits: ArchiveLimits) -> bytes:
    """The top-level PKG-INFO of the sdist at `url`, read as it streams; UpstreamMalformed for an archive that is
    not one, has none, or holds it past the limits."""
    kind = stream_kind(filename)
    if kind is None:
        raise UpstreamMalformed(redact_url(url), "an sdist of a kind that is not read")

    async def find(chunks: AsyncIterator[bytes]) -> bytes:
        finder = MemberFinder(kind, Limits(member=limits.member, expanded=limits.expanded))
        read = 0
        try:
            async for chunk in chunks:
                read += len(chunk)
                finder.feed(chunk)
                while finder.work():
                    await asyncio.sleep(0)  # a large archive is decompressed step by step, not in one go
                if finder.member is not None:
                    return finder.member
                if read >= limits.network:
                    raise archives.ArchiveError(f"no PKG-INFO in the first {limits.network} bytes")
            finder.close()
        except archives.ArchiveError as exc:
            raise UpstreamMalformed(redact_url(url), str(exc)) from None
        raise AssertionError("unreachable: close() raises unless the member was found")

    fetched = await upstream.get_streamed(url, find)
    if fetched.status != 200:
        raise UpstreamMalformed(redact_url(url), f"HTTP {fetched.status} for a file the release lists")
    return fetched.body
