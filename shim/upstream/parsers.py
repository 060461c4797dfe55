"""Upstream documents as typed values: the JSON API's project and release documents, core metadata files,
and the Simple index. Pure functions only: no I/O; anything that is not such a document is a ValueError.
"""

from __future__ import annotations

import calendar
import json
import re
from array import array
from dataclasses import dataclass, field
from html import unescape
from typing import Any, Required
from urllib.parse import urlsplit

import feedparser
from packaging.metadata import parse_email
from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic reads only this one on Python < 3.12

from shim.upstream.compact import NO_SERIAL, NameList
from shim.upstream.index_json import plain_projects

__all__ = [
    "CORE_LISTS",
    "CoreMetadata",
    "FeedItem",
    "IndexListing",
    "JSONObject",
    "ProjectDoc",
    "VersionDoc",
    "load_json",
    "parse_feed",
    "parse_simple_index",
    "serial_value",
]

JSONObject = dict[str, Any]
_ABSENT = object()

# The release_data fields the JSON API lacks; the release's core metadata file has them (PEP 658).
CORE_LISTS = ("requires", "provides", "obsoletes", "provides_dist", "obsoletes_dist", "requires_external")


def _object(value: Any, what: str) -> JSONObject:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")
    return value


def load_json(body: bytes, what: str) -> Any:
    """Upstream JSON, parsed; ValueError for a body that is not JSON, or nested too deep to parse."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{what} is not JSON: {exc}") from None


def _load(body: bytes, what: str) -> JSONObject:
    return _object(load_json(body, what), what)


# What the methods read of a document, with Warehouse's JSON types (null where Warehouse sends it), checked by
# pydantic in strict mode: a field of another type is malformed data, never a wrong answer or a crash. Other
# keys pass unchecked, and the document is kept as the upstream sent it.
_STRICT = ConfigDict(strict=True)


@with_config(_STRICT)
class _Info(TypedDict, total=False):
    name: Required[str]
    version: Required[str]
    summary: str | None
    description: str | None
    keywords: str | None
    license: str | None
    platform: str | None
    author: str | None
    author_email: str | None
    maintainer: str | None
    maintainer_email: str | None
    home_page: str | None
    download_url: str | None
    docs_url: str | None
    package_url: str | None
    release_url: str | None
    requires_python: str | None
    classifiers: list[str] | None
    requires_dist: list[str] | None
    project_urls: dict[str, str] | None
    yanked: bool | None


_File = TypedDict(  # functional form: two keys are not identifiers
    "_File",
    {
        "filename": Required[str],
        "url": str,
        "packagetype": str | None,
        "python_version": str | None,
        "size": int | None,
        "md5_digest": str | None,
        "digests": dict[str, str] | None,
        "has_sig": bool | None,
        "upload_time": str | None,
        "upload_time_iso_8601": str | None,
        "comment_text": str | None,
        "requires_python": str | None,
        "yanked": bool | None,
        "core-metadata": bool | dict[str, str] | None,
        "data-dist-info-metadata": bool | dict[str, str] | None,
    },
    total=False,
)
_File.__pydantic_config__ = _STRICT  # type: ignore[attr-defined]


@with_config(_STRICT)
class _Role(TypedDict):
    role: str
    user: str


@with_config(_STRICT)
class _Ownership(TypedDict, total=False):
    roles: list[_Role] | None


@with_config(_STRICT)
class _ProjectFields(TypedDict, total=False):
    info: Required[_Info]
    releases: dict[str, list[_File]] | None  # Warehouse calls the key deprecated; mirrors may drop it
    urls: list[_File]
    ownership: _Ownership | None


@with_config(_STRICT)
class _VersionFields(TypedDict, total=False):
    info: Required[_Info]
    urls: list[_File]


_PROJECT = TypeAdapter(_ProjectFields)
_VERSION = TypeAdapter(_VersionFields)


def _check(adapter: TypeAdapter[Any], document: JSONObject, what: str) -> None:
    try:
        adapter.validate_python(document)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"{what}: {where}: {first['msg']}") from None


@dataclass(frozen=True)
class ProjectDoc:
    """`/pypi/<name>/json`: the latest release's `info`, and every release's files."""

    url: str
    info: JSONObject
    releases: dict[str, list[JSONObject]] | None  # Warehouse calls the key deprecated; mirrors may drop it
    urls: list[JSONObject]
    ownership: JSONObject | None
    last_serial: int | None
    # Answers the methods built from this document, encoded (shim.methods.reading.encoded_once): kept while it is
    # the cache's copy, gone with it.
    answers: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: bytes, url: str) -> ProjectDoc:
        """Raise ValueError for anything that is not a project document."""
        document = _load(body, "the project document")
        _check(_PROJECT, document, "the project document")
        return cls(
            url=url,
            info=document["info"],
            releases=document.get("releases"),
            urls=document.get("urls", []),
            ownership=document.get("ownership"),
            last_serial=serial_value(document.get("last_serial")),
        )

    @property
    def name(self) -> str:
        name: str = self.info["name"]
        return name

    @property
    def version(self) -> str:
        version: str = self.info["version"]
        return version


@dataclass(frozen=True)
class VersionDoc:
    """`/pypi/<name>/<version>/json`: one release's `info` and files."""

    url: str
    info: JSONObject
    urls: list[JSONObject]

    @classmethod
    def from_json(cls, body: bytes, url: str) -> VersionDoc:
        document = _load(body, "the release document")
        _check(_VERSION, document, "the release document")
        return cls(url=url, info=document["info"], urls=document.get("urls", []))


@dataclass(frozen=True)
class CoreMetadata:
    """A release's core metadata file (`<file>.metadata`, PEP 658)."""

    lists: dict[str, list[str]]  # the six release_data lists the JSON API lacks
    info: JSONObject  # the rest, shaped as the JSON API's `info`, for upstreams without per-release JSON

    @classmethod
    def from_text(cls, text: str) -> CoreMetadata:
        raw: dict[str, Any] = dict(parse_email(text)[0])
        if not isinstance(raw.get("name"), str) or not isinstance(raw.get("version"), str):
            raise ValueError("the metadata file has no Name or Version")
        platforms = raw.get("platforms") or []
        info = {
            "name": raw["name"],
            "version": raw["version"],
            "summary": raw.get("summary"),
            "description": raw.get("description"),
            "home_page": raw.get("home_page"),
            "download_url": raw.get("download_url"),
            "author": raw.get("author"),
            "author_email": raw.get("author_email"),
            "maintainer": raw.get("maintainer"),
            "maintainer_email": raw.get("maintainer_email"),
            "license": raw.get("license"),
            "keywords": ",".join(raw["keywords"]) if raw.get("keywords") else None,
            "platform": platforms[0] if platforms else None,
            "classifiers": raw.get("classifiers") or [],
            "requires_dist": raw.get("requires_dist") or [],
            "requires_python": raw.get("requires_python"),
            "project_urls": raw.get("project_urls") or None,
        }
        return cls({key: list(raw.get(key) or []) for key in CORE_LISTS}, info)


@dataclass(frozen=True)
class IndexListing:
    """The Simple index: display names in the upstream's order, their serials where it publishes them.

    `serials` is None when the index publishes none; else it is aligned with `names`, and an entry is NO_SERIAL
    where that project's serial is malformed (`malformed` names those, with what the index gave). Both are compact
    (one string of names, an array of serials): no Python object per project.
    """

    names: NameList
    serials: array[int] | None
    last_serial: int | None
    malformed: dict[str, str] = field(default_factory=dict)


_ANCHOR = re.compile(r"<a\b[^>]*>([^<]*)</a>", re.IGNORECASE)
# A journal serial is what SQLite holds: a non-negative signed 64-bit integer.
MAX_SERIAL = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


def serial_value(value: Any) -> int | None:
    """A serial as the upstream gave it (a number; mirrors send strings), or None when it is not one."""
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SERIAL:
        return value
    return None


def parse_simple_index(body: bytes, content_type: str, header_serial: int | None) -> IndexListing:
    """PEP 691 JSON, or PEP 503 HTML (names only), into an IndexListing; ValueError when it is neither."""
    if "json" in content_type:
        plain = plain_projects(body)  # Warehouse's own shape, read without a dict per project
        if plain is not None:
            document, names, serials = plain
            projects: list[Any] = []
            published = True
        else:
            document = _load(body, "the Simple index")
            projects = document.get("projects")  # type: ignore[assignment]
            if not isinstance(projects, list):
                raise ValueError("the Simple index has no projects list")
            names, serials = [], array("q")
            published = False  # an index without serials gives none at all; one entry without is malformed
        malformed: dict[str, str] = {}
        for project in projects:
            if not isinstance(project, dict) or not isinstance(project.get("name"), str):
                raise ValueError("a Simple index entry has no name")
            names.append(project["name"])
            given = project.get("_last-serial", _ABSENT)
            published |= given is not _ABSENT
            serial = serial_value(given)
            serials.append(NO_SERIAL if serial is None else serial)
            if serial is None:
                malformed[project["name"]] = "absent" if given is _ABSENT else repr(given)[:40]
        meta = document.get("meta") if isinstance(document.get("meta"), dict) else {}
        last = serial_value(meta.get("_last-serial")) if meta else None
        last = last if last is not None else serial_value(header_serial)
        del document, projects  # a dict per project: gone before the compact copy is made
        if not published and names:
            return IndexListing(NameList.of(names), None, last)
        return IndexListing(NameList.of(names), serials, last, malformed)
    if "html" in content_type:
        text = body.decode("utf-8", "replace")
        names = [unescape(m.strip()) for m in _ANCHOR.findall(text)]
        return IndexListing(NameList.of(names), None, serial_value(header_serial))
    raise ValueError(f"the Simple index came as {content_type or 'no content type'}")


@dataclass(frozen=True)
class FeedItem:
    """One item of an RSS feed, read from its link: a project, the release it names (None: the project), when."""

    project: str
    version: str | None
    published: int  # POSIX time of the item's pubDate


def parse_feed(body: bytes) -> list[FeedItem]:
    """The items of an RSS 2.0 feed whose link names a project (`.../project/<name>[/<version>]/`) and a date."""
    items = []
    for item in feedparser.parse(body).entries:
        parts = [p for p in urlsplit(str(item.get("link", ""))).path.split("/") if p]
        if "project" not in parts or not item.get("published_parsed"):
            continue
        tail = parts[parts.index("project") + 1 :]
        if tail:
            version = tail[1] if len(tail) > 1 else None
            items.append(FeedItem(tail[0], version, calendar.timegm(item["published_parsed"])))
    return items
