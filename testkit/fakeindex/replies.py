"""The fake index's answers before they become responses, its failure rules, and the HTTP details it copies
from Warehouse (WebOb's ETags, byte ranges)."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import re
from dataclasses import dataclass, field

__all__ = ["ExceptionSpec", "PathPattern", "Reply", "Rule", "etag_matches", "md5_etag", "ranged"]

PathPattern = str | re.Pattern[str]
ExceptionSpec = type[BaseException] | BaseException


@dataclass
class Rule:
    pattern: PathPattern
    times: int | None
    status: int = 500
    exception: ExceptionSpec | None = None
    seconds: float = 0.0

    def matches(self, path: str) -> bool:
        if isinstance(self.pattern, re.Pattern):
            return self.pattern.search(path) is not None
        return fnmatch.fnmatchcase(path, self.pattern)

    def take(self) -> bool:
        """Use one of this rule's turns; False when it has none left."""
        if self.times is None:
            return True
        if self.times <= 0:
            return False
        self.times -= 1
        return True


def md5_etag(body: bytes) -> str:
    """WebOb's md5_etag: base64 of the MD5 digest without padding, quoted."""
    return '"' + base64.b64encode(hashlib.md5(body).digest()).decode().strip("=") + '"'


def etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


@dataclass
class Reply:
    body: bytes
    status: int = 200
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def ranged(body: bytes, range_header: str | None) -> Reply:
    headers = {"Accept-Ranges": "bytes"}
    media = "application/octet-stream"
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (range_header or "").strip())
    if not range_header or not match or match.groups() == ("", ""):
        return Reply(body, 200, media, headers)
    first, last = match.groups()
    size = len(body)
    if first:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    else:
        start, end = max(size - int(last), 0), size - 1
    if start >= size or start > end:
        return Reply(b"", 416, media, {**headers, "Content-Range": f"bytes */{size}"})
    return Reply(body[start : end + 1], 206, media, {**headers, "Content-Range": f"bytes {start}-{end}/{size}"})
