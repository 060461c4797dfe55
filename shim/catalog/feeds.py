"""The upstream's RSS feeds: what the feed poller reads for news, and when each release and project was created.

The site-wide feeds (the 100 newest releases, the 40 newest projects) are read conditionally (an unchanged feed
is a 304 of a few hundred bytes) by one reader, which the feed poller and the refresher share; a project's own feed
only when the site feed does not tell. An upstream without feeds gives no items, never an error.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from packaging.utils import canonicalize_name

from shim.catalog.rows import StoredRelease
from shim.upstream.answers import origin_label
from shim.upstream.client import SITE_FEEDS, Upstream
from shim.upstream.parsers import FeedItem, parse_feed

__all__ = ["FeedRead", "Freshness", "SiteFeedReader", "SiteFeeds", "release_times", "times"]


@dataclass(frozen=True)
class SiteFeeds:
    releases: dict[tuple[str, str | None], int] = field(default_factory=dict)  # (project, version) -> created
    created: dict[str, int] = field(default_factory=dict)  # project -> when it was created


class Freshness(enum.Enum):
    READ = "read"  # as the upstream has it now (a 304: as last read)
    ABSENT = "absent"  # the upstream has no such feed (404)
    FAILED = "failed"  # it cannot be read now (logged once by the optional reads): as last read


@dataclass(frozen=True)
class FeedRead:
    """One site feed: its items (normalised names), newest first."""

    freshness: Freshness
    items: tuple[FeedItem, ...]


class SiteFeedReader:
    """The site feeds, each read with the ETag of its last answer: an unchanged feed costs a 304."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self._held: dict[str, tuple[str | None, tuple[FeedItem, ...]]] = {}  # feed -> its ETag and items

    async def read(self, feed: str) -> FeedRead:
        """`feed` (`updates` or `packages`), read conditionally; an optional read (shim.upstream.optional), whose
        failure costs only what the feed would have told, logged once, never a retry or an error."""
        url = self.upstream.site_feed_url(feed)
        etag, items = self._held.get(feed, (None, ()))
        fetched = await self.upstream.optional.read(
            "RSS feeds", origin_label(url), lambda: self.upstream.get(url, etag=etag, optional=True)
        )
        if fetched is None:
            return FeedRead(Freshness.FAILED, items)
        if fetched.status == 304 and feed in self._held:
            return FeedRead(Freshness.READ, items)
        if fetched.status != 200:
            self._held.pop(feed, None)
            return FeedRead(Freshness.ABSENT, ())
        parsed = tuple(FeedItem(canonicalize_name(i.project), i.version, i.published) for i in parse_feed(fetched.body))
        self._held[feed] = (fetched.etag, parsed)
        return FeedRead(Freshness.READ, parsed)

    async def site(self) -> SiteFeeds:
        """Both site feeds, as times: when each of the newest releases and projects was created."""
        updates, packages = [await self.read(feed) for feed in SITE_FEEDS]
        return times(updates.items, packages.items)


def times(updates: tuple[FeedItem, ...], packages: tuple[FeedItem, ...]) -> SiteFeeds:
    """What the newest releases' and projects' items say of when each was created."""
    return SiteFeeds({(i.project, i.version): i.published for i in updates}, {i.project: i.published for i in packages})


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
