"""Text made safe for XML: Warehouse's `_clean_for_xml`, and the strip every string gets on the wire."""

from __future__ import annotations

import re

__all__ = ["clean_for_xml", "strip_illegal_xml"]

# Code points XML 1.0 forbids (or discourages, as Warehouse's list does): C0 controls but TAB, LF and CR,
# DEL and the C1 controls but NEL, the non-characters, and lone surrogates (which cannot be encoded).
_ILLEGAL_XML = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufdd0-\ufddf\ufffe\uffff"
    + "".join(f"\\U{plane:04x}fffe-\\U{plane:04x}ffff" for plane in range(1, 17))
    + "]"
)


# The same, for ASCII text: a class of astral ranges costs twenty times as much per character scanned.
_ILLEGAL_ASCII = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def strip_illegal_xml(text: str) -> str:
    """Remove every code point that must not appear in an XML document."""
    return (_ILLEGAL_ASCII if text.isascii() else _ILLEGAL_XML).sub("", text)


def clean_for_xml(text: str | None) -> str | None:
    """Warehouse's cleaner: non-ASCII becomes literal `&#N;` text, then illegal code points go.

    `None` and `""` pass unchanged. The result is ASCII, so the client reads `Hello&#8230;`, not
    `Hello…`, exactly as PyPI sent it.
    """
    if not text:
        return text
    return strip_illegal_xml(text.encode("ascii", "xmlcharrefreplace").decode("ascii"))
