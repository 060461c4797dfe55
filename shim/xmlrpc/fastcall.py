"""The common shape of a call read without building an XML parser: a method name and scalar parameters.

Building an expat parser and feeding it is most of what reading a call costs (a cache-hit answer takes less).
Nearly every call a legacy client sends is `xmlrpc.client.dumps` of a few strings, integers or booleans; this
reads exactly that shape with one regular expression and gives what the parser would, or None for anything else
(a declaration other than UTF-8's, a character reference or an entity but XML's five, a CR, markup, an array or
struct, a value out of the usual forms), which the parser then reads as ever. Whatever it reads, the parser reads
alike: a property test holds the two side by side over generated and mutated bodies.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["read_simple_call"]

_S = rb"[ \t\n]*"  # XML's white space, without CR (which the parser would normalise)
# Text the parser reports as it is but for the five predefined entities: no markup, no other reference, no CR,
# no character XML forbids.
_TEXT = rb"(?:[^<&\]\r\x00-\x08\x0b\x0c\x0e-\x1f]|&(?:amp|lt|gt|quot|apos);)*"
_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'"}
_ENTITY = re.compile("&(?:amp|lt|gt|quot|apos);")
_VALUE = (
    rb"<value>(?:"
    rb"<string>(?P<string>" + _TEXT + rb")</string>"
    rb"|<(?P<int_tag>int|i4)>(?P<int>-?[0-9]{1,18})</(?P=int_tag)>"
    rb"|<boolean>(?P<boolean>[01])</boolean>"
    rb"|(?P<untyped>" + _TEXT + rb")"
    rb")</value>"
)
_PARAM = re.compile(rb"<param>" + _S + _VALUE + _S + rb"</param>" + _S)
_CALL = re.compile(
    rb"(?:<\?xml version=(?P<q>['\"])1\.0(?P=q)(?: encoding=(?P<e>['\"])(?:utf|UTF)-8(?P=e))?"
    + _S
    + rb"\?>)?"
    + _S
    + rb"<methodCall>"
    + _S
    + rb"<methodName>(?P<method>[A-Za-z0-9_.]{1,100})</methodName>"
    + _S
    + rb"(?:<params>"
    + _S
    + rb"(?P<params>(?:<param>.*?</param>"
    + _S
    + rb")*)</params>"
    + _S
    + rb")?</methodCall>"
    + _S,
    re.DOTALL,
)
# Code points that are valid UTF-8 but not XML characters: the parser refuses them.
_NOT_XML = re.compile("[\ufffe\uffff]")


def _text(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if _NOT_XML.search(text):
        return None
    return _ENTITY.sub(lambda entity: _ENTITIES[entity[0]], text) if "&" in text else text


def read_simple_call(body: bytes) -> tuple[str, tuple[Any, ...]] | None:
    """The method name and parameters of a call in the common shape, or None: let the parser read it."""
    call = _CALL.fullmatch(body)
    if call is None:
        return None
    params: list[Any] = []
    raw_params = call["params"] or b""
    position = 0
    while position < len(raw_params):
        param = _PARAM.match(raw_params, position)
        if param is None:
            return None
        position = param.end()
        if param["int"] is not None:
            params.append(int(param["int"]))
        elif param["boolean"] is not None:
            params.append(param["boolean"] == b"1")
        else:
            text = _text(param["string"] if param["string"] is not None else param["untyped"])
            if text is None:
                return None
            params.append(text)
    return call["method"].decode("ascii"), tuple(params)
