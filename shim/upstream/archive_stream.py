"""An sdist's top-level PKG-INFO found as the archive streams past, never holding more of it than one member.

`MemberFinder` is fed the archive's bytes as they come (`feed`), then does its work in bounded steps (`work`, at
most STEP bytes produced each, so that a caller on an event loop can yield between them); `member` is the text
once found. A tar (plain, gzip, bzip2, xz) is read by its 512-byte headers, pax and GNU long names included; a zip
by its local headers, a member with a data descriptor (length unknown until its end) skipped by inflating it to
the deflate stream's end. Decompressed bytes count against `Limits.expanded` (a bomb stops there), the member
against `Limits.member`. Pure: no I/O; anything unreadable is ArchiveError.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import tarfile
import zlib
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Protocol

from shim.upstream.archives import (
    CENTRAL_SIG,
    DEFLATED,
    EOCD_SIG,
    LOCAL_SIG,
    ArchiveError,
    inflate,
    is_top_pkg_info,
    zip64_sizes,
    zip_name,
)

__all__ = ["STEP", "Limits", "MemberFinder", "stream_kind"]

STEP = 64 * 1024  # bytes produced by one step of work
_BLOCK = 512
_LONG_HEADER = 64 * 1024  # a pax header or GNU long name larger than this is not an sdist's
_DESCRIPTOR_SIG = b"PK\x07\x08"
_KINDS = {".tar.gz": "gz", ".tgz": "gz", ".tar.bz2": "bz2", ".tbz2": "bz2", ".tar.xz": "xz", ".tar": "tar"}


def stream_kind(filename: str) -> str | None:
    """How an sdist named `filename` is read: "gz", "bz2", "xz", "tar" or "zip"; None for what is not read."""
    lowered = filename.lower()
    if lowered.endswith(".zip"):
        return "zip"
    return next((kind for suffix, kind in _KINDS.items() if lowered.endswith(suffix)), None)


@dataclass(frozen=True)
class Limits:
    member: int  # bytes of the member found (its text)
    expanded: int  # decompressed bytes in all


@dataclass
class _Read:
    size: int
    got: bytearray = field(default_factory=bytearray)


@dataclass
class _Skip:
    size: int


@dataclass
class _Inflate:
    """A deflate stream to its end; its bytes kept (the member) or dropped (a member passed)."""

    keep: bool
    inflater: zlib._Decompress = field(default_factory=lambda: zlib.decompressobj(-zlib.MAX_WBITS))
    got: bytearray = field(default_factory=bytearray)


_Step = _Read | _Skip | _Inflate
# A parser yields the steps it needs, is sent each one's bytes (b"" for a skip), and returns the member's text.
_Parser = Generator[_Step, bytes, bytes]


class _Source(Protocol):
    def push(self, data: bytes) -> None: ...

    def pull(self, size: int) -> bytes: ...  # at most `size` bytes; b"" when it needs more input


class _Plain:
    def __init__(self) -> None:
        self._pending = bytearray()

    def push(self, data: bytes) -> None:
        self._pending += data

    def pull(self, size: int) -> bytes:
        out = bytes(self._pending[:size])
        del self._pending[:size]
        return out


class _Gzip:
    def __init__(self) -> None:
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self._pending = b""

    def push(self, data: bytes) -> None:
        self._pending += data

    def pull(self, size: int) -> bytes:
        while self._pending and not self._inflater.eof:
            out = self._inflater.decompress(self._pending, size)
            self._pending = self._inflater.unconsumed_tail
            if out:
                return out
        return b""  # what follows the gzip stream's end is not read: the tar ended within it


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def needs_input(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class _Buffered:
    """bzip2 or xz: decompressors that keep the input they have not used yet."""

    def __init__(self, decompressor: _Decompressor) -> None:
        self._decompressor = decompressor
        self._pending = b""

    def push(self, data: bytes) -> None:
        self._pending += data

    def pull(self, size: int) -> bytes:
        while not self._decompressor.eof and (self._pending or not self._decompressor.needs_input):
            data = self._pending if self._decompressor.needs_input else b""
            self._pending = self._pending[len(data) :]
            out = self._decompressor.decompress(data, size)
            if out:
                return out
        return b""


_SOURCES: dict[str, Callable[[], _Source]] = {
    "gz": _Gzip,
    "bz2": lambda: _Buffered(bz2.BZ2Decompressor()),
    "xz": lambda: _Buffered(lzma.LZMADecompressor()),
    "tar": _Plain,
    "zip": _Plain,
}


def _pax_records(data: bytes) -> dict[str, str]:
    records, at = {}, 0
    while at < len(data) and data[at] != 0:
        space = data.find(b" ", at)
        if space < 0 or not data[at:space].isdigit():
            raise ArchiveError("a malformed pax header")
        end = at + int(data[at:space])
        key, equals, value = data[space + 1 : end].partition(b"=")
        if end > len(data) or end <= space or not equals or not value.endswith(b"\n"):
            raise ArchiveError("a malformed pax header")
        records[key.decode("utf-8", "replace")] = value[:-1].decode("utf-8", "surrogateescape")
        at = end
    return records


def _tar(limits: Limits) -> _Parser:
    name: str | None = None  # from a pax header or GNU long name, for the member that follows
    size_override: int | None = None
    while True:
        block = yield _Read(_BLOCK)
        if block == bytes(_BLOCK):
            raise ArchiveError("the tar ended without a top-level PKG-INFO")
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise ArchiveError(f"a bad tar header: {exc}") from None
        size = info.size if size_override is None else size_override
        if size < 0:
            raise ArchiveError("a tar member of negative size")
        padded = -(-size // _BLOCK) * _BLOCK
        if info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE, tarfile.XGLTYPE):
            if size > _LONG_HEADER:
                raise ArchiveError("a tar extended header too large for an sdist")
            data = (yield _Read(padded))[:size]
            if info.type == tarfile.GNUTYPE_LONGNAME:
                name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif info.type == tarfile.XHDTYPE:
                records = _pax_records(data)
                name = records.get("path", name)
                size_override = int(records["size"]) if records.get("size", "").isdigit() else None
            continue
        target = info.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
        target = target and is_top_pkg_info(name if name is not None else info.name)
        name = size_override = None
        if target:
            if size > limits.member:
                raise ArchiveError(f"a PKG-INFO of {size} bytes, over the limit of {limits.member}")
            return (yield _Read(size))
        yield _Skip(padded)


def _zip(limits: Limits) -> _Parser:
    while True:
        signature = yield _Read(4)
        if signature in (CENTRAL_SIG, EOCD_SIG):
            raise ArchiveError("the zip's members ended without a top-level PKG-INFO")
        if signature != LOCAL_SIG:
            raise ArchiveError("not a zip local header")
        _, flags, method, _, _, crc, compressed, size, name_length, extra_length = struct.unpack(
            "<HHHHHIIIHH", (yield _Read(26))
        )
        raw_name = yield _Read(name_length)
        extra = yield _Read(extra_length)
        zip64 = any(value == 0xFFFFFFFF for value in (compressed, size))
        size, compressed = zip64_sizes(extra, [size, compressed], (4, 4))
        target = is_top_pkg_info(zip_name(raw_name, flags))
        if flags & 1:
            raise ArchiveError("an encrypted zip member")
        if flags & 8:  # sizes and checksum follow the data: its end is the deflate stream's
            if method != DEFLATED:
                raise ArchiveError("a zip member of unknown length that is not deflated")
            data = yield _Inflate(keep=target)
            head = yield _Read(4)
            if head == _DESCRIPTOR_SIG:
                head = yield _Read(4)
            yield _Skip(16 if zip64 else 8)
            if target:
                if zlib.crc32(data) != struct.unpack("<I", head)[0]:
                    raise ArchiveError("a PKG-INFO whose checksum is not its descriptor's")
                return data
            continue
        if target:
            if compressed > limits.member:
                raise ArchiveError(f"a PKG-INFO of {compressed} bytes, over the limit of {limits.member}")
            return inflate((yield _Read(compressed)), method, size, crc, limits.member)
        yield _Skip(compressed)


class MemberFinder:
    """Finds an sdist's top-level PKG-INFO in its bytes as they are fed; see the module's doc."""

    def __init__(self, kind: str, limits: Limits) -> None:
        self.limits = limits
        self.member: bytes | None = None
        self.expanded = 0  # bytes the source and skipped members decompressed to
        self._source = _SOURCES[kind]()
        self._decompressing = kind not in ("tar", "zip")
        self._parser = _zip(limits) if kind == "zip" else _tar(limits)
        self._buffer = bytearray()  # produced by the source, not yet used by the step
        self._step = next(self._parser)

    def feed(self, data: bytes) -> None:
        self._source.push(data)

    def work(self) -> bool:
        """One bounded step on what was fed; False when it needs more input (or the member is found)."""
        if self.member is not None:
            return False
        try:
            if not self._buffer:
                piece = self._source.pull(STEP)
                if not piece:
                    return False
                self._count(len(piece) if self._decompressing else 0)
                self._buffer += piece
            if isinstance(self._step, _Inflate):
                self._inflate(self._step)
            else:
                self._take(self._step)
        except ArchiveError:
            raise
        except (ValueError, EOFError, OSError, lzma.LZMAError, tarfile.TarError, struct.error, zlib.error) as exc:
            raise ArchiveError(f"{type(exc).__name__}: {exc}") from None
        return self.member is None

    def close(self) -> None:
        """The archive has ended: ArchiveError unless the member was found."""
        if self.member is None:
            raise ArchiveError("the archive ended without a top-level PKG-INFO")

    def _count(self, produced: int) -> None:
        self.expanded += produced
        if self.expanded > self.limits.expanded:
            raise ArchiveError(f"more than {self.limits.expanded} bytes decompressed before a PKG-INFO")

    def _take(self, step: _Read | _Skip) -> None:
        if isinstance(step, _Read):
            used = min(step.size - len(step.got), len(self._buffer))
            step.got += self._buffer[:used]
            done = len(step.got) == step.size
        else:
            used = min(step.size, len(self._buffer))
            step.size -= used
            done = step.size == 0
        del self._buffer[:used]
        if done:
            self._advance(bytes(step.got) if isinstance(step, _Read) else b"")

    def _inflate(self, step: _Inflate) -> None:
        out = step.inflater.decompress(bytes(self._buffer), STEP)
        self._count(len(out))
        if step.keep:
            step.got += out
            if len(step.got) > self.limits.member:
                raise ArchiveError(f"a PKG-INFO over the limit of {self.limits.member} bytes")
        self._buffer = bytearray(step.inflater.unused_data if step.inflater.eof else step.inflater.unconsumed_tail)
        if step.inflater.eof:
            self._advance(bytes(step.got))

    def _advance(self, result: bytes) -> None:
        try:
            self._step = self._parser.send(result)
            while not isinstance(self._step, _Inflate) and self._step.size == 0:  # nothing to wait for
                self._step = self._parser.send(b"")
        except StopIteration as done:
            self.member = done.value
