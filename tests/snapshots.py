"""The snapshot tests' harness: a service whose catalog has read every project, the answers compared across
services, the `catalog export` and `catalog import` commands run in this process, and snapshots made bad."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shim import cli
from shim.config.settings import Settings
from testkit.fakeindex import FakeIndex

from .feed import Feed, crawl_all
from .helpers import Rpc, make_settings

E = "Environment :: Other Environment"
D = "Development Status :: 5 - Production/Stable"
P = "Programming Language :: Python"

# What a catalog answers (search, browse, user_packages, the change feed): the same from a snapshot's catalog.
QUERIES: list[tuple[str, tuple[Any, ...]]] = [
    ("search", ({"summary": "issue track"},)),
    ("search", ({"name": "tracker", "summary": "bug"}, "or")),
    ("search", ({"keywords": "bugs"},)),
    ("search", ({"name": "roundup"},)),
    ("browse", ([D, P],)),
    ("browse", ([E],)),
    ("user_packages", ("Zed",)),
    ("changelog_since_serial", (0,)),
]


def answers(rpc: Rpc) -> list[Any]:
    return [rpc(method, *params) for method, params in QUERIES]


def json_requests(fake: FakeIndex) -> int:
    """The JSON documents the upstream was asked for (a project's, a release's)."""
    return fake.count("/pypi/*")


def populated(fake: FakeIndex) -> FakeIndex:
    """The fake index with projects whose summaries, keywords, classifiers and owners the queries find."""
    projects: list[tuple[str, str, dict[str, Any]]] = [
        ("tracker", "2.0", {"summary": "A bug tracker", "classifiers": [E]}),
        ("issue-tracker-lite", "0.3", {"summary": "Lite issue tracking", "keywords": "bugs,tracker"}),
        ("bugzilla-bridge", "1.0", {"summary": "Talk to a tracker", "classifiers": [E, D, P]}),
        ("dev-status", "3.1", {"summary": "Status", "classifiers": [D, P]}),
    ]
    for name, version, info in projects:
        fake.add_release(name, version, info=info, files=[])
    fake.project("tracker").roles = [{"role": "Owner", "user": "zed"}]
    return fake


@contextlib.contextmanager
def reading_service(fake: FakeIndex, path: Path) -> Iterator[Feed]:
    """A running service whose catalog (at `path`) has read every project and recorded a change."""
    running = Feed(fake, make_settings(catalog_path=path))
    with running.client:
        running.rpc("changelog_since_serial", 0)  # the first pass: the starting point
        crawl_all(running)
        fake.add_release("roundup", "1.7.0", files=[])
        assert running.refresh() == 1
        yield running


def command(
    capsys: pytest.CaptureFixture[str], settings: Settings, action: str, snapshot: Path, *, replace: bool = False
) -> tuple[int, dict[str, Any] | str]:
    """`pypi-xmlrpc-shim catalog export|import FILE`: its exit code, and what it printed (JSON, or its error)."""
    code = cli._snapshot(settings, action, snapshot, replace=replace)
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else err


def exported(capsys: pytest.CaptureFixture[str], catalog: Path, snapshot: Path) -> dict[str, Any]:
    code, manifest = command(capsys, make_settings(catalog_path=catalog), "export", snapshot)
    assert code == 0 and isinstance(manifest, dict), manifest
    return manifest


def rows_of(path: Path) -> list[str]:
    """Everything the catalog at `path` holds, as SQL statements in order: to show it untouched."""
    connection = sqlite3.connect(path)
    try:
        return sorted(connection.iterdump())
    finally:
        connection.close()
