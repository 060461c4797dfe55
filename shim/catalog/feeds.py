"""The upstream's RSS feeds, as the refresher reads them: when each release and project was created.

The site-wide feeds (the 100 newest releases, the 40 newest projects) are read once a pass; a project's
own feed only when the site feed does not tell. An upstream without feeds gives no times, never an error.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import feedparser

from shim.catalog.rows import StoredRelease
from shim.errors import UpstreamError
from shim.upstream.client import Upstream
from shim.upstream.names import path_segment

__all__ = ["SiteFeeds", "read_site_feeds", "release_times"]

logger = logging.getLogger("shim.catalog")


@dataclass(frozen=True)
class SiteFeeds:
    releases: dict[tuple[str, str | None], int] = field(default_factory=dict)  # (project, version) -> created
    created: dict[str, int] = field(default_factory=dict)  # project -> when it was created


async def read_site_feeds(upstream: Upstream) -> SiteFeeds:
    """The site-wide feeds: the newest releases and the newest projects."""
    base = upstream.base
    releases = {(project, version): when for project, version, when in await _feed(upstream, base + "rss/updates.xml")}
    created = {project: when for project, _, when in await _feed(upstream, base + "rss/packages.xml")}
    return SiteFeeds(releases, created)


async def _feed(upstream: Upstream, url: str) -> list[tuple[str, str | None, int]]:
    """(project, version or None, pubDate) of each item, from the item's link; [] if there is no feed."""
    try:
        fetched = await upstream.get(url)
    except UpstreamError as exc:
        logger.debug("no feed at %s: %s", url, exc)
        return []
    if fetched.status != 200:
        return []
    items = []
    for item in feedparser.parse(fetched.body).entries:
        parts = [p for p in urlsplit(str(item.get("link", ""))).path.split("/") if p]
        if "project" not in parts or not item.get("published_parsed"):
            continue
        tail = parts[parts.index("project") + 1 :]
        if tail:
            version = tail[1] if len(tail) > 1 else None
            items.append((tail[0], version, calendar.timegm(item["published_parsed"])))
    return items


async def release_times(
    upstream: Upstream,
    normalized: str,
    new: Mapping[str, StoredRelease],
    old: Mapping[str, StoredRelease] | None,
    feeds: SiteFeeds,
) -> dict[str, int]:
    """When the upstream created each new release: the site feed, else the project's own feed."""
    fresh = set(new) - set(old or {})
    known = {v: feeds.releases[(normalized, v)] for v in fresh if (normalized, v) in feeds.releases}
    if not fresh or set(known) == fresh:
        return known
    url = f"{upstream.base}rss/project/{path_segment(normalized)}/releases.xml"
    return {version: when for _, version, when in await _feed(upstream, url) if version is not None} | known
