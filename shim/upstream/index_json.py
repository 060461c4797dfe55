"""The PEP 691 project list read without a dict per project, where it comes in the plain shape Warehouse writes:
`"projects": [{"_last-serial": N, "name": "..."}, ...]` (its keys sorted; `name` first is read too). json.loads of
the real index makes close to a million dicts for a moment (over 300 MB), and the heap they leave behind is not all
given back; this reads the names and serials straight from the body. Any other shape (another key, a
serial that is not a plain non-negative integer, a name that is not a plain JSON string) answers None, and
json.loads reads the body as before: the two give the same listing wherever this one answers
(tests/test_index_compact.py pins it). Warehouse's compact form (no white space) is matched in one C pass, checked
to cover the list with nothing between its matches; any other layout is read entry by entry.
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


# A JSON string's body: no quote, backslash or control character but in an escape (unrolled: no alternation per
# character, twice as fast).
_STRING = rb'[^"\\\x00-\x1f]*(?:\\.[^"\\\x00-\x1f]*)*'
_DIGITS = rb"0|[1-9][0-9]{0,18}"


def _name(group: bytes) -> bytes:
    return _WS + rb'"name"' + _WS + rb":" + _WS + rb'"(?P<' + group + rb">" + _STRING + rb')"' + _WS


def _serial(group: bytes) -> bytes:
    return _WS + rb'"_last-serial"' + _WS + rb":" + _WS + rb"(?P<" + group + rb">" + _DIGITS + rb")" + _WS


# Either order: Warehouse writes its keys sorted (`_last-serial` first); other indexes write `name` first.
_ENTRY = re.compile(
    rb"\{(?:" + _serial(b"s1") + rb"," + _name(b"n1") + rb"|" + _name(b"n2") + rb"," + _serial(b"s2") + rb")\}"
    + _WS + rb"(?:,|(?P<closing>\]))" + _WS
)  # fmt: skip
# One entry of the compact form, ended by a comma or by the list's end, in either key order (the name's group first
# or not): re.split over the body gives (gap, group, group) per entry, and the list is read only where every gap
# inside it is empty.
_END = rb"(?:,|(?=\]))"
_SERIAL_FIRST = re.compile(rb'\{"_last-serial":(' + _DIGITS + rb'),"name":"(' + _STRING + rb')"\}' + _END)
_NAME_FIRST = re.compile(rb'\{"name":"(' + _STRING + rb')","_last-serial":(' + _DIGITS + rb")\}" + _END)
_COMPACT = ((b'{"_last-serial":', _SERIAL_FIRST, False), (b'{"name":', _NAME_FIRST, True))
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
    at = found.end()
    close = _EMPTY.match(body, at)
    read = ([], [], close.end()) if close is not None else _compact(body, at) or _one_by_one(body, at)
    if read is None:
        return None
    raw_names, raw_serials, end = read
    del read  # each list freed as soon as it is read
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


def _compact(body: bytes, at: int) -> tuple[list[bytes], list[bytes], int] | None:
    """(names, serials, one past the list's `]`) of a list in the compact form starting at `at`; None: another."""
    chosen = next(
        ((pattern, name_first) for start, pattern, name_first in _COMPACT if body.startswith(start, at)), None
    )
    if chosen is None:
        return None
    pattern, name_first = chosen
    parts = pattern.split(body)
    # Every entry's match right after the one before (the gaps between them empty), the first one at `at`, the
    # last one ended by the `]` that follows it rather than by a comma.
    if len(parts) < 4 or len(parts[0]) != at or any(parts[3:-1:3]):
        return None
    end = len(body) - len(parts[-1])
    if body[end - 1 : end + 1] != b"}]":
        return None
    names, serials = (parts[1::3], parts[2::3]) if name_first else (parts[2::3], parts[1::3])
    return names, serials, end + 1


def _one_by_one(body: bytes, at: int) -> tuple[list[bytes], list[bytes], int] | None:
    """The same, in any layout: one match per entry, each where the one before ended."""
    raw_names: list[bytes] = []
    raw_serials: list[bytes] = []
    for entry in _ENTRY.finditer(body, at):
        if entry.start() != at:
            return None
        first = entry["n1"] is not None
        raw_names.append(entry["n1"] if first else entry["n2"])
        raw_serials.append(entry["s1"] if first else entry["s2"])
        at = entry.end()
        if entry["closing"] is not None:
            return raw_names, raw_serials, entry.end("closing")
    return None
