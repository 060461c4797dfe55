"""The RSS 2.0 feeds: latest updates, newest packages, and one project's releases."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime, getaddresses
from xml.sax.saxutils import escape

from .state import IndexState, Project, Release
from .urls import Urls

UPDATES_LIMIT = 100
PACKAGES_LIMIT = 40
PROJECT_LIMIT = 40


def clean_description(summary: str | None) -> str:
    """The summary with every character below U+0020 removed (TAB, LF and CR too)."""
    return "".join(ch for ch in summary or "" if ord(ch) >= 0x20)


def format_author(author_email: str | None) -> str | None:
    emails: list[str] = []
    for _, address in getaddresses([author_email or ""]):
        if "@" not in address:
            return None
        emails.append(address)
    return ", ".join(emails) or None


def rfc822(value: dt.datetime) -> str:
    return format_datetime(value.replace(tzinfo=dt.UTC, microsecond=0), usegmt=True)


def _item(title: str, link: str, release: Release, created: dt.datetime | None, guid: bool = False) -> str:
    lines = [
        "    <item>",
        f"      <title>{escape(title)}</title>",
        f"      <link>{escape(link)}</link>",
    ]
    if guid:
        lines.append(f"      <guid>{escape(link)}</guid>")
    lines.append(f"      <description>{escape(clean_description(release.info['summary']))}</description>")
    author = format_author(release.info["author_email"])
    if author:
        lines.append(f"      <author>{escape(author)}</author>")
    if created is not None:
        lines.append(f"      <pubDate>{rfc822(created)}</pubDate>")
    lines.append("    </item>")
    return "\n".join(lines)


def _channel(title: str, link: str, description: str, items: list[str]) -> bytes:
    body = "\n".join(items)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0">\n  <channel>\n'
        f"    <title>{escape(title)}</title>\n    <link>{escape(link)}</link>\n"
        f"    <description>{escape(description)}</description>\n    <language>en</language>\n"
        f"{body}\n  </channel>\n</rss>\n"
    ).encode()


def _release_link(urls: Urls, project: Project, release: Release) -> str:
    return urls.index(f"project/{project.normalized}/{release.version}/")


def updates(state: IndexState, urls: Urls) -> bytes:
    pairs = sorted(state.all_releases(), key=lambda pr: pr[1].created, reverse=True)[:UPDATES_LIMIT]
    items = [_item(f"{p.name} {r.version}", _release_link(urls, p, r), r, r.created) for p, r in pairs]
    return _channel("PyPI recent updates", urls.index(), "Recent updates to the Python Package Index", items)


def packages(state: IndexState, urls: Urls) -> bytes:
    everything = list(state.projects.values())
    dated = sorted((p for p in everything if p.created), key=lambda p: p.created or dt.datetime.min, reverse=True)
    projects = (dated + [p for p in everything if p.created is None])[:PACKAGES_LIMIT]
    items: list[str] = []
    for project in projects:
        if not project.releases:
            continue
        highest = project.by_ordering()[-1]
        link = urls.index(f"project/{project.normalized}/")
        items.append(_item(f"{project.name} added to PyPI", link, highest, project.created, guid=True))
    return _channel(
        "PyPI newest packages", urls.index(), "Newest packages registered at the Python Package Index", items
    )


def project_releases(project: Project, urls: Urls) -> bytes:
    releases = sorted(project.releases, key=lambda r: r.created, reverse=True)[:PROJECT_LIMIT]
    items = [_item(r.version, _release_link(urls, project, r), r, r.created) for r in releases]
    return _channel(
        f"PyPI recent updates for {project.name}",
        urls.index(f"project/{project.normalized}/"),
        f"Recent updates to the Python Package Index for {project.name}",
        items,
    )
