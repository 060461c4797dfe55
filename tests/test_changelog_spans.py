"""changelog(since) and changelog_since_serial(serial) are two views of one feed: for the same span they give the
same rows, in the same order, the rows standing for what happened before the first look included."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from testkit.fakeindex import FakeIndex
from testkit.wheels import wheel_file

from .feed import Feed, started
from .helpers import make_settings


@pytest.fixture(scope="module")
def feed() -> Iterator[Feed]:
    """A first look (one row per project, as of then), then releases at times before and after it, and a change
    the documents do not show (an `update` row timed by when it was seen)."""
    fake = FakeIndex()
    running = Feed(fake, make_settings())
    with running.client:
        started(running)
        fake.add_release("roundup", "1.7.0", created="2026-01-02T03:04:05Z", files=[wheel_file("roundup", "1.7.0")])
        fake.add_release("httpx", "9.0", created="2020-06-01T00:00:00Z", files=[])
        fake.bump_serial("starlette")
        running.refresh()
        yield running


def all_rows(feed: Feed) -> list[list[Any]]:
    rows = feed.since(0)
    assert rows
    return rows


def spans(values: list[int]) -> list[int]:
    """0, a middle value and the newest (and the one before it), of the values the rows hold."""
    distinct = sorted(set(values))
    return [0, distinct[len(distinct) // 2], distinct[-1] - 1, distinct[-1]]


def test_the_first_looks_rows_are_in_both_views(feed: Feed) -> None:
    first_look = [row for row in all_rows(feed) if row[3] == "update" and row[1] is None]
    assert len(first_look) > 1
    changelog = feed.rpc("changelog", 0, True)
    assert all(row in changelog for row in first_look)


@pytest.mark.parametrize("with_ids", [True, False])
def test_changelog_is_the_serial_feed_newer_than_a_time(feed: Feed, with_ids: bool) -> None:
    rows = all_rows(feed)
    for since in spans([row[2] for row in rows]):
        expected = [row if with_ids else row[:4] for row in rows if row[2] > since]
        assert feed.rpc("changelog", since, with_ids) == expected, since


def test_the_serial_feed_is_changelog_above_a_serial(feed: Feed) -> None:
    everything = feed.rpc("changelog", 0, True)
    for serial in spans([row[4] for row in everything]):
        assert feed.since(serial) == [row for row in everything if row[4] > serial], serial
