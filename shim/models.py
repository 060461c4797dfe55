"""Upstream documents as typed values, and the XML-RPC structs built from them, as PyPI built them.

Pure functions only: no I/O. The key order of every struct is Warehouse's (e3bd3c38, the last version
that served them), so the bytes on the wire match too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import urljoin

from packaging.metadata import parse_email
from packaging_legacy.version import parse as legacy_parse

from shim.text import clean_for_xml

__all__ = [
    "CORE_LISTS",
    "CoreMetadata",
    "IndexListing",
    "ProjectDoc",
    "VersionDoc",
    "file_struct",
    "legacy_sorted",
    "parse_simple_index",
    "project_url_list",
    "release_data_struct",
    "roles_list",
]

JSONObject = dict[str, Any]

# The release_data fields the JSON API lacks; the release's core metadata file has them (PEP 658).
CORE_LISTS = ("requires", "provides", "obsoletes", "provides_dist", "obsoletes_dist", "requires_external")


def _object(value: Any, what: str) -> JSONObject:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")
    return value


def _load(body: bytes, what: str) -> JSONObject:
    try:
        return _object(json.loads(body), what)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{what} is not JSON: {exc}") from None


def _info(document: JSONObject) -> JSONObject:
    info = _object(document.get("info"), "info")
    if not isinstance(info.get("name"), str) or not isinstance(info.get("version"), str):
        raise ValueError("info has no name or version")
    return info


def _files(value: Any, what: str) -> list[JSONObject]:
    if not isinstance(value, list) or not all(
        isinstance(f, dict) and isinstance(f.get("filename"), str) for f in value
    ):
        raise ValueError(f"{what} is not a list of files")
    return value


@dataclass(frozen=True)
class ProjectDoc:
    """`/pypi/<name>/json`: the latest release's `info`, and every release's files."""

    url: str
    info: JSONObject
    releases: dict[str, list[JSONObject]] | None  # Warehouse calls the key deprecated; mirrors may drop it
    urls: list[JSONObject]
    ownership: JSONObject | None
    last_serial: int | None

    @classmethod
    def from_json(cls, body: bytes, url: str) -> ProjectDoc:
        """Raise ValueError for anything that is not a project document."""
        document = _load(body, "the project document")
        releases = document.get("releases")
        if releases is not None:
            releases = {str(v): _files(files, f"releases[{v!r}]") for v, files in _object(releases, "releases").items()}
        ownership = document.get("ownership")
        serial = document.get("last_serial")
        return cls(
            url=url,
            info=_info(document),
            releases=releases,
            urls=_files(document.get("urls", []), "urls"),
            ownership=ownership if isinstance(ownership, dict) else None,
            last_serial=serial if isinstance(serial, int) and not isinstance(serial, bool) else None,
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
        return cls(url=url, info=_info(document), urls=_files(document.get("urls", []), "urls"))


def legacy_sorted(versions: Iterable[str]) -> list[str]:
    """Versions in PyPI's `_pypi_ordering`, lowest first (packaging-legacy, as Warehouse sorted them).

    Equal versions (`1.0` and `1.0.0`) keep the order given: Warehouse broke such ties by row id.
    """
    return sorted(versions, key=legacy_parse)


def _path(file: Mapping[str, Any], url: str) -> str:
    # Warehouse stores files under <b[0:2]>/<b[2:4]>/<b[4:]>/<filename>, b the blake2b-256 hex digest.
    digests = file.get("digests") or {}
    blake = digests.get("blake2b_256") if isinstance(digests, dict) else None
    if isinstance(blake, str) and re.fullmatch(r"[0-9a-f]{64}", blake):
        return f"{blake[:2]}/{blake[2:4]}/{blake[4:]}/{file['filename']}"
    return url.partition("/packages/")[2]


def _upload_time(file: Mapping[str, Any]) -> str | None:
    iso = file.get("upload_time_iso_8601")
    if isinstance(iso, str):
        return iso
    plain = file.get("upload_time")  # `%Y-%m-%dT%H:%M:%S`: no fraction, no zone
    return plain + "Z" if isinstance(plain, str) else None


def file_struct(file: Mapping[str, Any], document_url: str) -> JSONObject:
    """One `release_urls` entry: Warehouse's 14 keys, raw values, the URL made absolute."""
    given = file.get("digests")
    digests: Mapping[str, Any] = given if isinstance(given, dict) else {}
    md5 = file.get("md5_digest") or digests.get("md5")
    sha256 = digests.get("sha256")
    url = urljoin(document_url, str(file.get("url", "")))
    upload_time = _upload_time(file)
    return {
        "filename": file["filename"],
        "packagetype": file.get("packagetype"),
        "python_version": file.get("python_version"),
        "size": file.get("size"),
        "md5_digest": md5,
        "sha256_digest": sha256,
        "digests": {"md5": md5, "sha256": sha256},
        "has_sig": bool(file.get("has_sig", False)),
        "upload_time": upload_time,
        "upload_time_iso_8601": upload_time,
        "comment_text": file.get("comment_text"),
        "downloads": -1,
        "path": _path(file, url),
        "url": url,
    }


def project_url_list(info: Mapping[str, Any]) -> list[str]:
    """`project_url` as `"<label>, <url>"` strings from the JSON `project_urls` dict.

    Approximate: the JSON adds `Homepage` and `Download` from home_page and download_url, which the
    Project-URL rows did not hold; they are dropped when they repeat those fields.
    """
    urls = info.get("project_urls")
    if not isinstance(urls, dict):
        return []
    rows = []
    for label, url in urls.items():
        if (label == "Homepage" and url == info.get("home_page")) or (
            label == "Download" and url == info.get("download_url")
        ):
            continue
        rows.append(f"{label}, {url}")
    return [clean_for_xml(row) or "" for row in sorted(rows)]


def release_data_struct(
    info: Mapping[str, Any], *, ordering: int, core: Mapping[str, list[str]] | None, base_url: str
) -> JSONObject:
    """`release_data`: Warehouse's 33 keys, cleaned where Warehouse cleaned them."""
    name, version = info["name"], info["version"]
    core = core or {}
    return {
        "name": name,
        "version": version,
        "stable_version": None,
        "bugtrack_url": None,
        "package_url": info.get("package_url") or f"{base_url}project/{name}/",
        "release_url": info.get("release_url") or f"{base_url}project/{name}/{version}/",
        "docs_url": clean_for_xml(info.get("docs_url")),
        "home_page": clean_for_xml(info.get("home_page")),
        "download_url": clean_for_xml(info.get("download_url")),
        "project_url": project_url_list(info),
        "author": clean_for_xml(info.get("author")),
        "author_email": clean_for_xml(info.get("author_email")),
        "maintainer": clean_for_xml(info.get("maintainer")),
        "maintainer_email": clean_for_xml(info.get("maintainer_email")),
        "summary": clean_for_xml(info.get("summary")),
        "description": clean_for_xml(info.get("description")),
        "license": clean_for_xml(info.get("license")),
        "keywords": clean_for_xml(info.get("keywords")),
        "platform": info.get("platform"),
        "classifiers": list(info.get("classifiers") or []),
        "requires": list(core.get("requires", [])),
        "requires_dist": list(info.get("requires_dist") or []),
        "provides": list(core.get("provides", [])),
        "provides_dist": list(core.get("provides_dist", [])),
        "obsoletes": list(core.get("obsoletes", [])),
        "obsoletes_dist": list(core.get("obsoletes_dist", [])),
        "requires_python": info.get("requires_python"),
        "requires_external": list(core.get("requires_external", [])),
        "_pypi_ordering": ordering,
        "downloads": {"last_day": -1, "last_week": -1, "last_month": -1},
        "cheesecake_code_kwalitee_id": None,
        "cheesecake_documentation_id": None,
        "cheesecake_installability_id": None,
    }


def roles_list(ownership: Mapping[str, Any]) -> list[list[str]]:
    """`package_roles`: Owners before Maintainers (role descending), users case-insensitively."""
    roles = ownership.get("roles")
    if not isinstance(roles, list):
        raise ValueError("ownership.roles is not a list")
    pairs = [(r["role"], r["user"]) for r in roles if isinstance(r, dict)]
    if not all(isinstance(role, str) and isinstance(user, str) for role, user in pairs):
        raise ValueError("a role is not a pair of strings")
    # Warehouse orders by role_name DESC, then the CITEXT username: descending role, then casefolded user.
    by_user = sorted(pairs, key=lambda pair: (pair[1].casefold(), pair[1]))
    return [[role, user] for role, user in sorted(by_user, key=lambda pair: pair[0], reverse=True)]


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
    """The Simple index: display names in the upstream's order, their serials where it publishes them."""

    names: list[str]
    serials: list[int] | None
    last_serial: int | None


_ANCHOR = re.compile(r"<a\b[^>]*>([^<]*)</a>", re.IGNORECASE)


def _int(value: Any) -> int | None:
    # Mirrors send serials as strings; Warehouse as numbers.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def parse_simple_index(body: bytes, content_type: str, header_serial: int | None) -> IndexListing:
    """PEP 691 JSON, or PEP 503 HTML (names only), into an IndexListing; ValueError when it is neither."""
    if "json" in content_type:
        document = _load(body, "the Simple index")
        projects = document.get("projects")
        if not isinstance(projects, list):
            raise ValueError("the Simple index has no projects list")
        names: list[str] = []
        serials: list[int] | None = []
        for project in projects:
            if not isinstance(project, dict) or not isinstance(project.get("name"), str):
                raise ValueError("a Simple index entry has no name")
            names.append(project["name"])
            serial = _int(project.get("_last-serial"))
            if serials is not None and serial is not None:
                serials.append(serial)
            else:
                serials = None
        meta = document.get("meta") if isinstance(document.get("meta"), dict) else {}
        last = _int(meta.get("_last-serial")) if meta else None
        return IndexListing(names, serials, last if last is not None else header_serial)
    if "html" in content_type:
        text = body.decode("utf-8", "replace")
        return IndexListing([unescape(m.strip()) for m in _ANCHOR.findall(text)], None, header_serial)
    raise ValueError(f"the Simple index came as {content_type or 'no content type'}")
