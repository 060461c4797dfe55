"""The XML-RPC structs the methods answer, built from upstream documents as PyPI built them.

Pure functions only: no I/O. The key order of every struct is Warehouse's (e3bd3c38, the last version
that served them), so the bytes on the wire match too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

from shim.upstream.parsers import JSONObject
from shim.xmlrpc.text import clean_for_xml

__all__ = ["file_struct", "project_url_list", "release_data_struct", "roles_list"]


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
