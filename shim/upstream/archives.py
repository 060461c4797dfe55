"""A release's archives read for one member each, never held whole: pure parsing, no I/O.

A zip is read here from its end, as a wheel is over range requests: the end-of-central-directory record (zip64
too), the central directory's entries, then one member's local header and data, inflated within a cap.
shim.upstream.archive_stream reads an archive as it streams (an sdist), with the zip structures defined here.
Anything that is not such an archive, or passes a bound, is ArchiveError, never another exception.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "LOCAL_SIZE",
    "TAIL_BYTES",
    "ArchiveError",
    "Directory",
    "Member",
    "central_entries",
    "data_offset",
    "find_directory",
    "inflate",
    "is_top_pkg_info",
    "wheel_metadata_member",
    "zip64_sizes",
    "zip_name",
]

EOCD_SIG = b"PK\x05\x06"
EOCD_SIZE = 22
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
ZIP64_LOCATOR_SIZE = 20
ZIP64_EOCD_SIG = b"PK\x06\x06"
ZIP64_EOCD_SIZE = 56
CENTRAL_SIG = b"PK\x01\x02"
CENTRAL_SIZE = 46
LOCAL_SIG = b"PK\x03\x04"
LOCAL_SIZE = 30
# The end of a zip that holds its end record whatever its comment (at most 65 535 bytes), zip64 records included.
TAIL_BYTES = 66 * 1024
_FULL32, _FULL16 = 0xFFFFFFFF, 0xFFFF
STORED, DEFLATED = 0, 8


class ArchiveError(ValueError):
    """Not an archive this module reads, or one past a bound: the file gives no metadata."""


@dataclass(frozen=True)
class Directory:
    """Where a zip's central directory lies (absolute offsets), and how many entries it holds."""

    offset: int
    size: int
    entries: int


@dataclass(frozen=True)
class Member:
    """One central directory entry: what it takes to read that member."""

    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    offset: int  # of its local header


def _zip64_locator(tail: bytes, eocd_at: int, tail_start: int) -> tuple[int, int, int, int]:
    """(entries, size, offset, end) of the central directory, from the zip64 end record the locator points to."""
    at = eocd_at - ZIP64_LOCATOR_SIZE
    if at < 0 or tail[at : at + 4] != ZIP64_LOCATOR_SIG:
        raise ArchiveError("a zip64 end record without its locator")
    _, disk, record, disks = struct.unpack_from("<4sIQI", tail, at)
    where = record - tail_start
    if disk != 0 or disks > 1 or where < 0 or where + ZIP64_EOCD_SIZE > at or tail[where : where + 4] != ZIP64_EOCD_SIG:
        raise ArchiveError("the zip64 end record is not where its locator says")
    fields = struct.unpack_from("<4sQHHIIQQQQ", tail, where)
    this_disk, cd_disk, entries, size, offset = fields[4], fields[5], fields[7], fields[8], fields[9]
    if this_disk != 0 or cd_disk != 0:
        raise ArchiveError("a zip on several disks")
    return entries, size, offset, record


def find_directory(tail: bytes, tail_start: int, file_size: int) -> Directory:
    """The central directory of the zip whose last bytes are `tail` (from offset `tail_start` to `file_size`)."""
    if tail_start + len(tail) != file_size:
        raise ArchiveError("the tail does not end the file")
    at = tail.rfind(EOCD_SIG, 0, max(len(tail) - EOCD_SIZE + len(EOCD_SIG), 0))
    while at >= 0:  # the last record whose comment reaches exactly to the end (a comment may hold the signature)
        if at + EOCD_SIZE + struct.unpack_from("<H", tail, at + 20)[0] == len(tail):
            break
        at = tail.rfind(EOCD_SIG, 0, at)
    if at < 0:
        raise ArchiveError("no zip end-of-central-directory record")
    _, disk, cd_disk, _, entries, size, offset, _ = struct.unpack_from("<4sHHHHIIH", tail, at)
    end = tail_start + at
    locator = at >= ZIP64_LOCATOR_SIZE and tail[at - ZIP64_LOCATOR_SIZE : at - 16] == ZIP64_LOCATOR_SIG
    if locator or _FULL16 in (disk, cd_disk, entries) or _FULL32 in (size, offset):
        entries, size, offset, end = _zip64_locator(tail, at, tail_start)
    elif disk != 0 or cd_disk != 0:
        raise ArchiveError("a zip on several disks")
    if offset + size != end or entries * CENTRAL_SIZE > size:
        raise ArchiveError("the central directory is not where the end record says")
    return Directory(offset, size, entries)


def _extra_blocks(extra: bytes) -> Iterator[tuple[int, bytes]]:
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, at)
        yield kind, extra[at + 4 : at + 4 + length]
        at += 4 + length


def zip64_sizes(extra: bytes, values: list[int], widths: tuple[int, ...]) -> list[int]:
    """`values` (sizes and offset, in the zip64 block's order) with each one that is full, of `widths` bytes,
    read from the zip64 extra block instead."""
    block = next((body for kind, body in _extra_blocks(extra) if kind == 1), None)
    out, at = [], 0
    for value, width in zip(values, widths, strict=True):
        if value == (1 << (8 * width)) - 1:
            if block is None or at + 8 > len(block):
                raise ArchiveError("a zip64 size without its extra field")
            value = struct.unpack_from("<Q", block, at)[0]
            at += 8
        out.append(value)
    return out


def zip_name(raw: bytes, flags: int) -> str:
    """A member's name: UTF-8 when its flag says so, else code page 437 (which decodes any byte)."""
    return raw.decode("utf-8", "replace") if flags & 0x800 else raw.decode("cp437")


def central_entries(data: bytes, count: int) -> list[Member]:
    """The `count` entries of the central directory `data`."""
    members, at = [], 0
    for _ in range(count):
        if data[at : at + 4] != CENTRAL_SIG or at + CENTRAL_SIZE > len(data):
            raise ArchiveError("a central directory entry is not one")
        fields = struct.unpack_from("<4sHHHHHHIIIHHHHHII", data, at)
        flags, method, crc, compressed, size = fields[3], fields[4], fields[7], fields[8], fields[9]
        name_length, extra_length, comment_length, offset = fields[10], fields[11], fields[12], fields[16]
        name_end = at + CENTRAL_SIZE + name_length
        end = name_end + extra_length + comment_length
        if end > len(data):
            raise ArchiveError("a central directory entry runs past the directory")
        raw = data[at + CENTRAL_SIZE : name_end]
        size, compressed, offset = zip64_sizes(
            data[name_end : name_end + extra_length], [size, compressed, offset], (4, 4, 4)
        )
        members.append(Member(zip_name(raw, flags), raw, flags, method, crc, compressed, size, offset))
        at = end
    return members


def wheel_metadata_member(members: list[Member], filename: str) -> Member:
    """The wheel's `<name>-<version>.dist-info/METADATA`: the only one, else the one the file's name names."""
    found = [m for m in members if len(parts := m.name.split("/")) == 2 and parts[0].endswith(".dist-info")]
    found = [m for m in found if m.name.endswith("/METADATA")]
    if len(found) > 1:
        wanted = "-".join(filename.split("-")[:2]).lower() + ".dist-info/metadata"
        found = [m for m in found if m.name.lower() == wanted]
    if len(found) != 1:
        raise ArchiveError("no single .dist-info/METADATA in the wheel")
    return found[0]


def data_offset(header: bytes, member: Member) -> int:
    """Where `member`'s data starts, from the start of its local header (`header`, its first bytes)."""
    if len(header) < LOCAL_SIZE or header[:4] != LOCAL_SIG:
        raise ArchiveError("no local header where the central directory says")
    name_length: int
    extra_length: int
    name_length, extra_length = struct.unpack_from("<HH", header, 26)
    if header[LOCAL_SIZE : LOCAL_SIZE + name_length] != member.raw_name:
        raise ArchiveError("the local header names another member")
    return LOCAL_SIZE + name_length + extra_length


def inflate(data: bytes, method: int, size: int, crc: int, limit: int) -> bytes:
    """A member's bytes from its data (`method` stored or deflated), `size` long with checksum `crc`, at most
    `limit` bytes however it is made (one byte past is enough to know: a bomb stops there)."""
    if size > limit:
        raise ArchiveError(f"a member of {size} bytes, over the limit of {limit}")
    if method == STORED:
        out = data
    elif method == DEFLATED:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            out = inflater.decompress(data, limit + 1)
        except zlib.error as exc:
            raise ArchiveError(f"undecodable deflate data: {exc}") from None
        if len(out) > limit or not inflater.eof:
            raise ArchiveError("deflate data past the limit, or truncated")
    else:
        raise ArchiveError(f"a member compressed by method {method}")
    if len(out) != size or zlib.crc32(out) != crc:
        raise ArchiveError("a member whose size or checksum is not the central directory's")
    return out


def is_top_pkg_info(name: str) -> bool:
    """Whether `name` is an sdist's own `<dir>/PKG-INFO` (not an egg-info's, nor one deeper)."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    return len(parts) == 2 and parts[1] == "PKG-INFO" and parts[0] != ".." and not parts[0].endswith(".egg-info")
