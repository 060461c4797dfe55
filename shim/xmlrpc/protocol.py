"""XML-RPC bytes in and out: safe parsing of a call, and responses byte for byte as PyPI renders them.

Parsing feeds the standard library's unmarshaller through defusedxml's expat parser, so a DTD, an
entity or an external reference is refused instead of expanded or fetched. Any failure at all is a
`NotWellFormed`, which dispatch answers with -32700.

Rendering copies what Warehouse does, `xmlrpc.client.dumps((value,), methodresponse=True,
allow_none=True)`, through a marshaller that also strips code points XML forbids from every string
and refuses integers outside 32 bits (or writes `<i8>` when the operator allows it).
"""

from __future__ import annotations

import math
import xmlrpc.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from xml.sax.saxutils import escape

from defusedxml.xmlrpc import DefusedExpatParser

from shim.xmlrpc.fastcall import read_simple_call
from shim.xmlrpc.text import strip_illegal_xml

__all__ = [
    "RESPONSE_CLOSE",
    "RESPONSE_OPEN",
    "Call",
    "Lazy",
    "NotWellFormed",
    "Raw",
    "WireError",
    "dump_fault",
    "dump_response",
    "encode_value",
    "parse_call",
    "parse_with_expat",
    "response_parts",
]

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

_RESPONSE_HEAD = b"<?xml version='1.0'?>\n<methodResponse>\n"
# What a response holds around its one `<value>` element.
RESPONSE_OPEN = _RESPONSE_HEAD + b"<params>\n<param>\n"
RESPONSE_CLOSE = b"</param>\n</params>\n</methodResponse>\n"


class NotWellFormed(Exception):
    """The body is not an XML-RPC call we can read."""


class WireError(Exception):
    """A result that cannot be put on the wire (an int beyond range, an unknown type)."""


@dataclass(frozen=True)
class Call:
    method: str | None
    params: tuple[Any, ...]


class Lazy(Protocol):
    """A piece of an encoded value made only as it is sent: a whole-index answer's element, inflated."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[bytes]: ...


@dataclass(frozen=True, init=False)
class Raw:
    """A value already encoded as a `<value>` element (UTF-8), spliced in as it is: a whole-index answer, a
    multicall slot. Kept in the pieces it was encoded in, so that splicing it shares them: a response holding a
    Raw of megabytes copies it once, when the body is joined, never once per level of nesting."""

    parts: tuple[bytes | Lazy, ...]
    size: int

    def __init__(self, *pieces: str | bytes | Lazy) -> None:
        parts = tuple(piece.encode() if isinstance(piece, str) else piece for piece in pieces)
        object.__setattr__(self, "parts", parts)
        object.__setattr__(self, "size", sum(len(part) for part in parts))

    @property
    def xml(self) -> str:
        """The element as text: a copy, for tests and logs, never on an answer's way out."""
        return b"".join(self.chunks()).decode()

    def chunks(self) -> Iterator[bytes]:
        """The element's bytes, piece by piece, a lazy piece made as it comes."""
        for part in self.parts:
            if isinstance(part, bytes):
                yield part
            else:
                yield from part


def parse_call(body: bytes) -> Call:
    """Read a `<methodCall>`; raise NotWellFormed for anything else or anything unsafe."""
    simple = read_simple_call(body)
    if simple is not None:
        return Call(*simple)
    return parse_with_expat(body)


def parse_with_expat(body: bytes) -> Call:
    """`parse_call` by the parser alone, for any body (the common shape included)."""
    unmarshaller = xmlrpc.client.Unmarshaller(use_datetime=False, use_builtin_types=False)
    parser = DefusedExpatParser(unmarshaller, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        parser.feed(body)
        parser.close()
        params = unmarshaller.close()
        method = unmarshaller.getmethodname()
    except Exception as exc:  # expat, defusedxml, int() limits, stray end tags: all mean "not well formed"
        raise NotWellFormed(f"{type(exc).__name__}: {exc}") from None
    if method is not None and not isinstance(method, str):  # pragma: no cover - expat yields str
        raise NotWellFormed("method name is not text")
    return Call(method, tuple(params))


class _Pieces:
    """Where the marshaller writes: its strings gathered into UTF-8 chunks, a spliced Raw's pieces kept as they are."""

    CHUNK = 4096  # strings per chunk: a whole-index answer is never a million small strings at once

    def __init__(self) -> None:
        self.parts: list[bytes | Lazy] = []
        self.text: list[str] = []

    def write(self, text: str) -> None:
        self.text.append(text)
        if len(self.text) >= self.CHUNK:
            self.flush()

    def splice(self, raw: Raw) -> None:
        self.flush()
        self.parts.extend(raw.parts)

    def flush(self) -> None:
        if self.text:
            self.parts.append("".join(self.text).encode())
            self.text = []


class _Marshaller(xmlrpc.client.Marshaller):
    def __init__(self, allow_i8: bool, pieces: _Pieces) -> None:
        super().__init__(encoding="utf-8", allow_none=True)
        self.int_range = INT64 if allow_i8 else INT32
        self.pieces = pieces

    def dump_int(self, value: int, write: Callable[[str], Any]) -> None:
        low, high = self.int_range
        if not low <= value <= high:
            raise WireError(f"integer {value} is outside the range the client can read")
        tag = "int" if INT32[0] <= value <= INT32[1] else "i8"
        write(f"<value><{tag}>{value}</{tag}></value>\n")

    def dump_double(self, value: float, write: Callable[[str], Any]) -> None:
        if not math.isfinite(value):
            raise WireError(f"{value!r} is not an XML-RPC double")
        write("<value><double>" + repr(value) + "</double></value>\n")

    def dump_str(self, value: str, write: Callable[[str], Any]) -> None:
        write("<value><string>" + escape(strip_illegal_xml(value)) + "</string></value>\n")

    def dump_mapping(self, value: dict[Any, Any], write: Callable[[str], Any]) -> None:
        i = id(value)
        if i in self.memo:
            raise WireError("cannot marshal recursive dictionaries")
        self.memo[i] = None
        write("<value><struct>\n")
        for key, item in value.items():
            if not isinstance(key, str):
                raise WireError("struct keys must be strings")
            write("<member>\n<name>" + escape(strip_illegal_xml(key)) + "</name>\n")
            self._dump(item, write)
            write("</member>\n")
        write("</struct></value>\n")
        del self.memo[i]

    def _dump(self, value: Any, write: Callable[[str], Any]) -> None:
        kind = type(value)
        if kind is int:
            self.dump_int(value, write)
        elif kind is str:
            self.dump_str(value, write)
        elif kind is dict:
            self.dump_mapping(value, write)
        elif kind is float:
            self.dump_double(value, write)
        elif kind is Raw:
            self.pieces.splice(value)
        elif kind in _STDLIB_TYPES:
            xmlrpc.client.Marshaller.dispatch[kind](self, value, write)
        else:
            # The stdlib would marshal any other object's __dict__ as a struct: never leak that.
            raise WireError(f"cannot marshal {kind.__name__}")

    # The stdlib's array dumper calls the name-mangled __dump; route it to ours.
    _Marshaller__dump = _dump


# What the stdlib marshals as PyPI did; arrays come back through _dump for their items.
_STDLIB_TYPES = frozenset({bool, type(None), list, tuple, bytes, xmlrpc.client.DateTime, xmlrpc.client.Binary})


def encode_value(value: Any, *, allow_i8: bool = False) -> Raw:
    """Encode one value as a `<value>` element; raise WireError if it cannot go on the wire."""
    pieces = _Pieces()
    _Marshaller(allow_i8, pieces)._dump(value, pieces.write)
    pieces.flush()
    return Raw(*pieces.parts)


def _message(inner: bytes, value: Raw, outer: bytes) -> bytes:
    # One join: the only copy of an answer's pieces, however big they are.
    return b"".join((_RESPONSE_HEAD, inner, *value.chunks(), outer))


def dump_response(value: Any, *, allow_i8: bool = False) -> bytes:
    """A `<methodResponse>` carrying `value`, as Warehouse renders it."""
    body = value if type(value) is Raw else encode_value(value, allow_i8=allow_i8)  # an answer encoded once
    return _message(b"<params>\n<param>\n", body, b"</param>\n</params>\n</methodResponse>\n")


def response_parts(value: Any, *, allow_i8: bool = False) -> Raw:
    """dump_response's bytes left in their pieces, for a response sent as it is made (one holding a Lazy piece)."""
    return Raw(RESPONSE_OPEN, *encode_value(value, allow_i8=allow_i8).parts, RESPONSE_CLOSE)


def dump_fault(code: int, string: str) -> bytes:
    """A `<fault>` response: the struct holds faultCode, then faultString."""
    body = encode_value({"faultCode": code, "faultString": string})
    return _message(b"<fault>\n", body, b"</fault>\n</methodResponse>\n")
