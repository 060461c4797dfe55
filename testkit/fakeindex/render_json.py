"""The JSON API's documents (`/pypi/<name>/json`, `/pypi/<name>/<version>/json`), as Warehouse renders them."""

from __future__ import annotations

import json
from typing import Any

from .state import JSONDict, Project, Release, iso_z
from .urls import Urls


def encode(document: Any) -> bytes:
    """Warehouse's JSON renderer: sorted keys, compact separators, UTF-8, no NaN, a trailing newline."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def file_json(urls: Urls, project: Project, release: Release, index: int) -> JSONDict:
    file = release.files[index]
    return {
        "comment_text": file.comment_text,
        "core-metadata": {"sha256": file.core_metadata_sha256} if file.core_metadata_sha256 else False,
        "digests": dict(file.digests),
        "downloads": -1,
        "filename": file.filename,
        "has_sig": False,
        "md5_digest": file.digests["md5"],
        "packagetype": file.packagetype,
        "python_version": file.python_version,
        "requires_python": release.info["requires_python"] or None,
        "size": file.size,
        "upload_time": file.upload_time.strftime("%Y-%m-%dT%H:%M:%S"),
        "upload_time_iso_8601": iso_z(file.upload_time),
        "url": urls.file_url(file),
        "yanked": release.yanked,
        "yanked_reason": release.yanked_reason or None,
    }


def files_json(urls: Urls, project: Project, release: Release) -> list[JSONDict]:
    order = sorted(range(len(release.files)), key=lambda i: release.files[i].filename)
    return [file_json(urls, project, release, i) for i in order]


def info_json(urls: Urls, project: Project, release: Release) -> JSONDict:
    info = dict(release.info)
    info.update(
        {
            "bugtrack_url": None,
            "downloads": {"last_day": -1, "last_month": -1, "last_week": -1},
            "name": project.name,
            "package_url": urls.index(f"project/{project.name}/"),
            "project_url": urls.index(f"project/{project.name}/"),
            "release_url": urls.index(f"project/{project.name}/{release.version}/"),
            "requires_dist": list(info["requires_dist"]) if info["requires_dist"] else None,
            "project_urls": dict(info["project_urls"]) if info["project_urls"] else None,
            "version": release.version,
            "yanked": release.yanked,
            "yanked_reason": release.yanked_reason or None,
        }
    )
    return info


def ownership_json(project: Project) -> JSONDict:
    roles = sorted(project.roles, key=lambda r: (r["role"] != "Owner", r["user"]))
    return {"organization": project.organization, "roles": [{"role": r["role"], "user": r["user"]} for r in roles]}


def release_document(
    urls: Urls,
    project: Project,
    release: Release,
    *,
    with_releases: bool,
    serials: bool = True,
    ownership: bool = True,
) -> JSONDict:
    document: JSONDict = {
        "info": info_json(urls, project, release),
        "urls": files_json(urls, project, release),
        "vulnerabilities": list(release.vulnerabilities),
    }
    if serials:
        document["last_serial"] = project.last_serial
    if ownership:
        document["ownership"] = ownership_json(project)
    if with_releases:
        document["releases"] = {r.version: files_json(urls, project, r) for r in project.releases}
    return document
