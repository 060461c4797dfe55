"""The Simple API: PEP 691 JSON and PEP 503 HTML pages, and Warehouse's content negotiation."""

from __future__ import annotations

from html import escape

from .state import FileRecord, IndexState, JSONDict, Project, Release, iso_z
from .urls import Urls

API_VERSION = "1.4"
HTML = "text/html"
V1_HTML = "application/vnd.pypi.simple.v1+html"
V1_JSON = "application/vnd.pypi.simple.v1+json"
OFFERS = (HTML, V1_HTML, V1_JSON)


def _ranges(accept: str) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        out.append((media.lower(), q))
    return out


def _quality(offer: str, ranges: list[tuple[str, float]]) -> float | None:
    """The q of the most specific range matching `offer` (WebOb's acceptable_offers)."""
    best: tuple[int, float] | None = None
    kind = offer.split("/")[0]
    for media, q in ranges:
        if media == offer:
            specificity = 3
        elif media == f"{kind}/*":
            specificity = 2
        elif media == "*/*":
            specificity = 1
        else:
            continue
        if best is None or specificity > best[0]:
            best = (specificity, q)
    return None if best is None else best[1]


def negotiate(accept: str | None) -> str:
    """Highest q wins, ties go to the earlier offer; nothing acceptable (or no header) gives text/html."""
    if not accept:
        return HTML
    ranges = _ranges(accept)
    scored = [(q, -i, offer) for i, offer in enumerate(OFFERS) if (q := _quality(offer, ranges)) and q > 0]
    return max(scored)[2] if scored else HTML


def listed(state: IndexState) -> list[Project]:
    return sorted((p for p in state.projects.values() if not p.quarantined), key=lambda p: p.normalized)


def _meta(serial: int, serials: bool) -> JSONDict:
    return {"_last-serial": serial, "api-version": API_VERSION} if serials else {"api-version": API_VERSION}


def index_json(state: IndexState, *, serials: bool = True) -> JSONDict:
    return {
        "meta": _meta(state.serial, serials),
        "projects": [
            {"_last-serial": p.last_serial, "name": p.name} if serials else {"name": p.name} for p in listed(state)
        ],
    }


def index_html(state: IndexState, urls: Urls, *, serials: bool = True) -> str:
    links = "\n".join(
        f'    <a href="{escape(urls.index(f"simple/{p.normalized}/"))}">{escape(p.name)}</a>' for p in listed(state)
    )
    tail = f"\n<!--SERIAL {state.serial}-->" if serials else ""
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        "    <title>Simple index</title>\n  </head>\n  <body>\n"
        f"{links}\n  </body>\n</html>{tail}\n"
    )


def _files(project: Project) -> list[tuple[Release, FileRecord]]:
    if project.quarantined:
        return []
    pairs = [(r, f) for r in project.releases for f in r.files]
    return sorted(pairs, key=lambda rf: (rf[0].key, rf[1].filename))


def _versions(project: Project) -> list[str]:
    if project.quarantined:
        return []
    return [r.version for r in project.by_ordering() if r.files]


def _yanked(release: Release) -> str | bool:
    return (release.yanked_reason or True) if release.yanked else False


def project_json(project: Project, urls: Urls, *, serials: bool = True) -> JSONDict:
    files: list[JSONDict] = []
    for release, file in _files(project):
        metadata: JSONDict | bool = {"sha256": file.core_metadata_sha256} if file.core_metadata_sha256 else False
        files.append(
            {
                "core-metadata": metadata,
                "data-dist-info-metadata": metadata,
                "filename": file.filename,
                "hashes": {"sha256": file.digests["sha256"]},
                "provenance": None,
                "requires-python": release.info["requires_python"] or None,
                "size": file.size,
                "upload-time": iso_z(file.upload_time),
                "url": urls.file_url(file),
                "yanked": _yanked(release),
            }
        )
    return {
        "files": files,
        "meta": _meta(project.last_serial, serials),
        "name": project.normalized,
        "project-status": {"status": project.status},
        "versions": _versions(project),
    }


def project_html(project: Project, urls: Urls, *, serials: bool = True) -> str:
    anchors: list[str] = []
    for release, file in _files(project):
        attrs = [f'href="{escape(urls.file_url(file))}#sha256={file.digests["sha256"]}"']
        if release.info["requires_python"]:
            attrs.append(f'data-requires-python="{escape(release.info["requires_python"])}"')
        if release.yanked:
            attrs.append(f'data-yanked="{escape(release.yanked_reason or "")}"')
        if file.core_metadata_sha256:
            attrs.append(f'data-dist-info-metadata="sha256={file.core_metadata_sha256}"')
            attrs.append(f'data-core-metadata="sha256={file.core_metadata_sha256}"')
        anchors.append(f"    <a {' '.join(attrs)}>{escape(file.filename)}</a><br />")
    tail = f"\n<!--SERIAL {project.last_serial}-->" if serials else ""
    body = "\n".join(anchors)
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f'    <meta name="pypi:project-status" content="{project.status}">\n'
        f"    <title>Links for {escape(project.normalized)}</title>\n  </head>\n  <body>\n"
        f"    <h1>Links for {escape(project.normalized)}</h1>\n{body}\n  </body>\n</html>{tail}\n"
    )
