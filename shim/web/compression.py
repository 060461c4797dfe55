"""Answers compressed on the wire as the client's Accept-Encoding allows: gzip, or deflate when it prefers that.

Negotiation follows RFC 9110 §12.5.3: q-values (q=0 refuses a coding), `*` for any coding not named, `x-gzip` as
`gzip`, gzip preferred at equal q; no header, or nothing acceptable (even with `identity;q=0`), gets identity, the
one body every client reads. HTTP's "deflate" is the zlib format (§8.4.1.2), which is what is sent for it. Answers
under SHIM_COMPRESS_MIN_BYTES go as they are. Starlette's GZipMiddleware is not used: it reads no q-values (a
`gzip;q=0` gets gzip), writes no deflate, and could not send a response kept compressed (`Deflated`) as it is.

A `Deflated` answer (a whole-index one) is never compressed here: its stored stream is framed per coding, or
inflated as it is sent for an identity client. Pass-through documents are not compressed: they are passed on with
the upstream's own validators and Vary (tests/test_passthrough.py pins them), which another content coding would
have to change (RFC 9110 §8.8.3), and the Simple index page would be compressed again on every GET.
"""

from __future__ import annotations

import asyncio
import io
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping

from starlette.responses import Response, StreamingResponse

from shim.xmlrpc.compressed import Deflated
from shim.xmlrpc.protocol import Raw

__all__ = ["LEVEL", "compress", "encoded", "negotiate", "vary", "worth_compressing"]

# Per call, measured on this service's answers: release_data (4 kB) goes to 516 bytes at level 1 in 13 µs, 476 at
# level 6 in 22 µs; a search's 100 hits (36 kB) to 1509 in 32 µs, 1328 in 103 µs. Level 6's few bytes more saved
# take a 1 Gb/s link less time than its extra zlib time.
LEVEL = 1
# Bodies at least this large are compressed in a worker thread (zlib lets go of the GIL), not on the event loop.
OFF_LOOP_BYTES = 1024 * 1024
_WRAPPING = {"gzip": 16, "deflate": 0}  # what zlib adds to wbits for each framing


def negotiate(accept_encoding: str | None) -> str | None:
    """The coding to send for this Accept-Encoding: "gzip", "deflate", or None for identity."""
    if accept_encoding is None:
        return None
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0  # an unreadable weight is no consent
        weights["gzip" if name == "x-gzip" else name] = q if 0.0 <= q <= 1.0 else 0.0
    best, best_q = None, 0.0
    for coding in _WRAPPING:  # gzip first: it wins at equal q
        q = weights.get(coding, weights.get("*", 0.0))
        if q > best_q:
            best, best_q = coding, q
    if best is not None and weights.get("identity", 0.0) > best_q:
        return None  # identity asked for above every coding
    return best


def compress(body: bytes, coding: str) -> bytes:
    """`body` as a gzip member or a zlib stream, at LEVEL, with a window no larger than the body.

    zlib's state for a 32 KiB window is about 256 KiB; where the allocator maps it afresh for each call, setting
    it up cost about 30 µs here, most of compressing a 4 kB answer. Sized to the body (same output), a few µs.
    """
    window = min(max(len(body) - 1, 1).bit_length(), zlib.MAX_WBITS)
    window = max(window, 10)
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, window + _WRAPPING[coding], max(window - 8, 1))
    return compressor.compress(body) + compressor.flush()


async def _compressed(body: bytes, coding: str) -> bytes:
    if len(body) >= OFF_LOOP_BYTES:
        return await asyncio.to_thread(compress, body, coding)
    return compress(body, coding)


def worth_compressing(size: int, min_bytes: int | None) -> bool:
    """Whether an answer of `size` bytes is compressed for a client that accepts it (`min_bytes` None: off)."""
    return min_bytes is not None and size >= min_bytes


def vary(min_bytes: int | None) -> list[tuple[bytes, bytes]]:
    """The Vary header every XML-RPC answer carries while compression is on, compressed or not."""
    return [] if min_bytes is None else [(b"vary", b"Accept-Encoding")]


async def encoded(
    accept_encoding: str | None, body: bytes | Deflated | Raw, headers: Mapping[str, str], min_bytes: int | None
) -> Response:
    """The response for `body` (and `headers`), encoded as `accept_encoding` allows; `min_bytes` None is off.

    A response in pieces (a multicall holding a whole-index answer) is sent as it is, never compressed: that
    would be compressing the whole index again on each such request, the cost keeping it deflated saves."""
    size = len(body) if isinstance(body, bytes) else body.size
    sent = dict(headers)
    coding = None
    if min_bytes is not None:
        sent["vary"] = "Accept-Encoding"
        coding = negotiate(accept_encoding) if worth_compressing(size, min_bytes) else None
    if isinstance(body, Deflated):
        return _deflated(body, coding, sent)
    if isinstance(body, Raw):
        whole = await asyncio.to_thread(_joined, body) if size >= OFF_LOOP_BYTES else _joined(body)
        return Response(whole, headers=sent)
    if coding is None:
        return Response(body, headers=sent)
    sent["content-encoding"] = coding
    return Response(await _compressed(body, coding), headers=sent)


def _joined(body: Raw) -> bytes:
    # One buffer, written as the pieces inflate, handed on without a copy: the answer is held once (b"".join
    # would hold every inflated piece beside it).
    buffer = io.BytesIO()
    for chunk in body.chunks():
        buffer.write(chunk)
    return buffer.getvalue()


def _deflated(body: Deflated, coding: str | None, headers: dict[str, str]) -> Response:
    if coding is None:
        length, pieces = body.size, body.inflated()
    else:
        length, pieces = body.as_gzip() if coding == "gzip" else body.as_zlib()
        headers["content-encoding"] = coding
    headers["content-length"] = str(length)
    return StreamingResponse(_each(pieces), headers=headers)


async def _each(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    # An async iterator: Starlette would step a plain one in a worker thread, a thread hop per piece.
    for piece in pieces:
        yield piece
