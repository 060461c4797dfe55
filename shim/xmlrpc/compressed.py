"""A whole response kept deflated only: compressed once, then framed per call as each client asks.

A whole-index answer (75 MB at the real index's size) is the same bytes for every caller until the index changes,
so it is deflated once, as it is encoded (chunk by chunk: the whole uncompressed answer never sits in memory), and
only the raw deflate stream is kept, with its CRC-32, Adler-32 and length. A gzip client gets that stream inside a
gzip header and trailer, a deflate client inside a zlib one (RFC 1950/1952: the framings are a few bytes around the
same stream), an identity client the stream inflated as it is sent, a chunk at a time.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator

from shim.xmlrpc.protocol import RESPONSE_CLOSE, RESPONSE_OPEN

__all__ = ["CHUNK", "LEVEL", "Deflated", "Element"]

# Once per snapshot, so zlib's own default rather than per-call speed: measured on a listing with serials of 100,000
# realistic names (8.1 MB), level 6 is 7.7x smaller in 94 ms, level 1 6.8x in 39 ms, level 9 8.2x in 316 ms
# (at the real index's 75 MB, level 6 takes about 0.9 s, once per change of the index).
LEVEL = 6
CHUNK = 64 * 1024  # what the stored stream is cut into, and the most one inflated piece holds

_GZIP_HEAD = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no flags, no mtime, no extra flags, OS unknown
_ZLIB_HEAD = bytes((0x78, 0x9C))  # a 32 KiB window, level 6's FLEVEL (2), and the check bits


class Deflated:
    """A `<methodResponse>`'s bytes as one raw deflate stream (wbits -15), with what the framings need."""

    __slots__ = ("adler32", "crc32", "parts", "size", "span")

    def __init__(self, parts: tuple[bytes, ...], size: int, crc32: int, adler32: int, span: tuple[int, int]) -> None:
        self.parts = parts  # the deflate stream, in pieces of about CHUNK bytes
        self.size = size  # the response's length, uncompressed
        self.crc32 = crc32  # gzip's check value
        self.adler32 = adler32  # zlib's
        self.span = span  # where the `<value>` element is in the response (a multicall splices it)

    @classmethod
    def response(cls, value: Iterable[bytes]) -> Deflated:
        """The `<methodResponse>` around the `<value>` element that `value`'s chunks make, deflated as they come."""
        compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        parts: list[bytes] = []
        pending = bytearray()
        size, crc, adler = 0, 0, 1
        start = len(RESPONSE_OPEN)
        for chunk in _framed(value):
            size += len(chunk)
            crc, adler = zlib.crc32(chunk, crc), zlib.adler32(chunk, adler)
            pending += compressor.compress(chunk)
            if len(pending) >= CHUNK:
                parts.append(bytes(pending))
                pending.clear()
        pending += compressor.flush()
        if pending:
            parts.append(bytes(pending))
        return cls(tuple(parts), size, crc, adler, (start, size - len(RESPONSE_CLOSE)))

    @property
    def compressed_size(self) -> int:
        return sum(len(part) for part in self.parts)

    def as_gzip(self) -> tuple[int, Iterator[bytes]]:
        """The gzip member (RFC 1952) holding the stream: its length, and its bytes in pieces."""
        tail = struct.pack("<II", self.crc32, self.size & 0xFFFFFFFF)
        return len(_GZIP_HEAD) + self.compressed_size + len(tail), iter((_GZIP_HEAD, *self.parts, tail))

    def as_zlib(self) -> tuple[int, Iterator[bytes]]:
        """The zlib stream (RFC 1950, HTTP's "deflate") holding it: its length, and its bytes in pieces."""
        tail = struct.pack(">I", self.adler32)
        return len(_ZLIB_HEAD) + self.compressed_size + len(tail), iter((_ZLIB_HEAD, *self.parts, tail))

    def inflated(self) -> Iterator[bytes]:
        """The response itself, inflated a piece of at most CHUNK bytes at a time."""
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        for part in self.parts:
            while part:
                piece = inflater.decompress(part, CHUNK)
                part = inflater.unconsumed_tail
                if piece:
                    yield piece
        rest = inflater.flush()
        if rest:  # pragma: no cover - decompress(max_length) leaves nothing once its input is consumed
            yield rest

    def element(self) -> Element:
        """The `<value>` element alone, inflated as it is sent: the slot of a system.multicall."""
        return Element(self)


class Element:
    """A Deflated response's `<value>` element: its length, and its bytes inflated piece by piece (a Lazy)."""

    __slots__ = ("answer",)

    def __init__(self, answer: Deflated) -> None:
        self.answer = answer

    def __len__(self) -> int:
        start, end = self.answer.span
        return end - start

    def __iter__(self) -> Iterator[bytes]:
        start, end = self.answer.span
        at = 0
        for piece in self.answer.inflated():
            low, high = max(start - at, 0), min(end - at, len(piece))
            if low < high:
                yield piece if (low, high) == (0, len(piece)) else piece[low:high]
            at += len(piece)


def _framed(value: Iterable[bytes]) -> Iterator[bytes]:
    yield RESPONSE_OPEN
    yield from value
    yield RESPONSE_CLOSE
