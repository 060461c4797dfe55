"""The PEP 691 project list read without a dict per project, where it comes in the plain shape Warehouse writes:
`"projects": [{"_last-serial": N, "name": "..."}, ...]` (its keys sorted; `name` first is read too). json.loads of
the real index makes close to a million dicts for a moment (over 300 MB), and the heap they leave behind is not all
given back; this reads the names and serials straight from the body. Any other shape (another key, a
serial that is not a plain non-negative integer, a name that is not a plain JSON string) answers None, and
json.loads reads the body as before: the two give the same listing wherever this one answers
(tests/test_index_compact.py pins it).
"""

from __future__ import annotations

import json
import re
from array import array
from typing import Any

__all__ = ["plain_projects"]

_WS = rb"[ \t\n\r]*"
_KEY = re.compile(rb'"projects"' + _WS + rb":" + _WS + rb"\[" + _WS)
_EMPTY = re.compile(rb"\]")


def _name(group: bytes) -> bytes:
    return _WS + rb'"name"' + _WS + rb":" + _WS + rb'"(?P<' + group + rb'>(?:[^"\\\x00-\x1f]|\\.)*)"' + _WS


def _serial(group: bytes) -> bytes:
    return _WS + rb'"_last-serial"' + _WS + rb":" + _WS + rb"(?P<" + group + rb">0|[1-9][0-9]{0,18})" + _WS


# Either order: Warehouse writes its keys sorted (`_last-serial` first); other indexes write `name` first.
_ENTRY = re.compile(
    rb"\{(?:" + _serial(b"s1") + rb"," + _name(b"n1") + rb"|" + _name(b"n2") + rb"," + _serial(b"s2") + rb")\}"
    + _WS + rb"(?:,|(?P<closing>\]))" + _WS
)  # fmt: skip
# What stands for the list in the rest of the body, checked to be the top level's one "projects" value.
_SENTINEL = b"-0.0e-31415"


class _Raw(str):
    """A JSON number's text, as it was written."""


def plain_projects(body: bytes) -> tuple[Any, list[str], array[int]] | None:
    """(the document with its "projects" value replaced, the names, their serials), or None: not the plain shape."""
    if not body.lstrip(b" \t\n\r").startswith(b"{") or _SENTINEL in body:
        return None
    found = _KEY.search(body)
    if found is None:
        return None
    raw_names: list[bytes] = []
    raw_serials: list[bytes] = []
    at = found.end()
    close = _EMPTY.match(body, at)
    if close is not None:
        end = close.end()
    else:
        end = -1
        for entry in _ENTRY.finditer(body, at):
            if entry.start() != at:
                return None
            first = entry["n1"] is not None
            raw_names.append(entry["n1"] if first else entry["n2"])
            raw_serials.append(entry["s1"] if first else entry["s2"])
            at = entry.end()
            if entry["closing"] is not None:
                end = entry.end("closing")
                break
        if end == -1:
            return None
    try:
        serials = array("q", map(int, raw_serials))  # past 2**63 - 1: OverflowError, not a serial
        del raw_serials
        joined = b"\n".join(raw_names)  # no raw control character in a JSON string: \n parts them
        if b"\\" in joined:
            names = [
                json.loads(b'"' + n + b'"') if b"\\" in n else n.decode("utf-8", "surrogatepass") for n in raw_names
            ]
        else:
            names = joined.decode("utf-8", "surrogatepass").split("\n") if raw_names else []
    except (OverflowError, ValueError):
        return None
    del raw_names, joined
    rest = body[: found.start()] + b'"projects":' + _SENTINEL + body[end:]
    try:
        pairs = json.loads(rest, object_pairs_hook=list, parse_float=_Raw)
        document = json.loads(rest)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    given = [value for key, value in pairs if key == "projects"] if isinstance(pairs, list) else []
    if given != [_SENTINEL.decode()] or not isinstance(given[0], _Raw):
        return None  # the list found is not the one json.loads would read
    return document, names, serials
