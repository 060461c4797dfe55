"""A body's Content-Encoding undone a bounded amount at a time: for request bodies and upstream documents alike.

zlib's `decompress(data, max_length)` never expands more than asked from one call, so a small compressed bomb stops
at the cap instead of past it. One encoding at most (gzip or deflate); stacked or unknown ones are refused.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable

__all__ = ["ACCEPTED", "TooLarge", "Undecodable", "read_decoded"]

_WINDOWS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}
ACCEPTED = "gzip, deflate"  # what an Accept-Encoding may ask for: what this module undoes


class Undecodable(ValueError):
    """An encoding refused (stacked, unknown), or data that does not decode (bad, truncated)."""


class TooLarge(ValueError):
    """The decoded body would pass its limit."""


class _Decoder:
    def __init__(self, header: str) -> None:
        codings = [c.strip().lower() for c in header.split(",") if c.strip().lower() not in ("", "identity")]
        if len(codings) > 1:
            raise Undecodable(f"stacked content encodings: {header[:80]!r}")
        if codings and codings[0] not in _WINDOWS:
            raise Undecodable(f"a content encoding not asked for: {codings[0][:40]!r}")
        self.coding = codings[0] if codings else None
        self._zlib = zlib.decompressobj(_WINDOWS[self.coding]) if self.coding else None
        self._started = False

    def decode(self, data: bytes, limit: int) -> tuple[bytes, bytes]:
        """Up to `limit` (at least 1) bytes decoded from `data`, and what of `data` is left to decode."""
        if self._zlib is None:
            return data, b""
        first, self._started = not self._started, True
        try:
            return self._zlib.decompress(data, limit), self._zlib.unconsumed_tail
        except zlib.error as exc:
            if first and self.coding == "deflate":
                # "deflate" is meant zlib-wrapped; some send it raw, which httpx reads too.
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.decode(data, limit)
            raise Undecodable(f"undecodable {self.coding}: {exc}") from None

    def finish(self) -> None:
        if self._zlib is not None and not self._zlib.eof:
            raise Undecodable(f"truncated {self.coding}")


async def read_decoded(chunks: AsyncIterable[bytes], encoding: str, limit: int) -> bytes:
    """The whole body of `chunks` with `encoding` (a Content-Encoding header) undone; TooLarge as soon as it would
    pass `limit` decoded bytes, Undecodable for an encoding refused or data that does not decode."""
    decoder = _Decoder(encoding)
    parts: list[bytes] = []
    size = 0
    async for raw in chunks:
        while raw:
            # One byte past the limit is enough to know it is passed (and a max_length of 0 would mean none).
            chunk, raw = decoder.decode(raw, limit - size + 1)
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"a body over {limit} bytes")
            parts.append(chunk)
    decoder.finish()
    return b"".join(parts)
