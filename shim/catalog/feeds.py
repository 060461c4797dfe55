"""The upstream's RSS feeds, as the refresher reads them: when each release and project was created.

The site-wide feeds (the 100 newest releases, the 40 newest projects) are read once a pass; a project's
own feed only when the site feed does not tell. An upstream without feeds gives no times, never an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shim.catalog.rows import StoredRelease
from shim.upstream.answers import origin_label
from shim.upstream.client import Upstream
from shim.upstream.parsers import FeedItem, parse_feed

__all__ = ["SiteFeeds", "read_site_feeds", "release_times"]


@dataclass(frozen=True)
class SiteFeeds:
    releases: dict[tuple[str, str | None], int] = field(default_factory=dict)  # (project, version) -> created
    created: dict[str, int] = field(default_factory=dict)  # project -> when it was created


async def read_site_feeds(upstream: Upstream) -> SiteFeeds:
    """The site-wide feeds: the newest releases and the newest projects."""
    releases = {(i.project, i.version): i.published for i in await _feed(upstream, upstream.site_feed_url("updates"))}
    created = {i.project: i.published for i in await _feed(upstream, upstream.site_feed_url("packages"))}
    return SiteFeeds(releases, created)


async def _feed(upstream: Upstream, url: str) -> list[FeedItem]:
    """The feed's items; [] if there is no feed, or none can be read now: an optional read (shim.upstream.optional),
    whose failure costs only the times it would have given, logged once, never a retry or an error."""
    fetched = await upstream.optional.read("RSS feeds", origin_label(url), lambda: upstream.get(url, optional=True))
    return parse_feed(fetched.body) if fetched is not None and fetched.status == 200 else []


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
    items = await _feed(upstream, upstream.project_feed_url(normalized))
    return {i.version: i.published for i in items if i.version is not None} | known
