"""One catalog per upstream: the default path is the upstream's own, the file records its upstream, and a service
for another upstream refuses it, naming both; a catalog at the former shared default path is adopted by the
service whose upstream it records (or by the first one, for a file written before catalogs recorded theirs)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from shim.app import create_app
from shim.catalog.schema import adopt
from shim.config.settings import Settings
from shim.upstream.urls import UpstreamURL
from testkit.fakeindex import FakeIndex
from testkit.fakeindex.state import IndexState

from .helpers import UPSTREAM, call, fault_of, in_app, make_settings, rpc_for

OTHER = "https://other.test/"


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state directory of this test's own: where the default catalog paths are."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state" / "pypi-xmlrpc-shim"


def small_index(base_url: str) -> FakeIndex:
    """Another upstream: one project, so its serials are far below the fixture index's."""
    fake = FakeIndex(IndexState(), base_url=base_url)
    fake.add_release("onlyhere", "1.0")
    return fake


def feed(settings: Settings, fake: FakeIndex) -> tuple[int, set[str]]:
    """The service's last serial and the projects its change feed names, once its first pass is made."""
    with TestClient(create_app(settings, transport=httpx.ASGITransport(app=fake))) as client:
        names = {row[0] for row in call(client, "changelog_since_serial", 0)}  # waits for the first pass
        return call(client, "changelog_last_serial"), names


def test_two_upstreams_started_by_one_user_keep_two_catalogs(state_home: Path) -> None:
    # As a new user runs them: no SHIM_CATALOG_PATH, one state directory.
    first, second = FakeIndex(), small_index(OTHER)
    ours = feed(Settings(upstream=UpstreamURL.parse(UPSTREAM)), first)
    assert ours == (first.state.serial, {p.name for p in first.state.projects.values()})
    # Sharing the first one's file, the second reported the first upstream's serial and projects as its own.
    assert feed(Settings(upstream=UpstreamURL.parse(OTHER)), second) == (1, {"onlyhere"})
    assert feed(Settings(upstream=UpstreamURL.parse(UPSTREAM)), first) == ours
    assert len(list(state_home.glob("*.sqlite3"))) == 2


def test_the_default_path_is_the_upstreams_own_and_never_holds_a_credential(state_home: Path) -> None:
    def default(url: str) -> Path:
        return Settings(upstream=UpstreamURL.parse(url)).catalog_path

    path = default(UPSTREAM)
    assert path.parent == state_home and path.name.startswith("catalog-upstream.test-") and path.suffix == ".sqlite3"
    assert default("https://upstream.test/simple") == path  # one upstream however it is spelt
    assert default("https://alice:s3cret@upstream.test/") == path  # the credentials are not the upstream
    assert "alice" not in str(path) and "s3cret" not in str(path)
    others = {default(OTHER), default("https://upstream.test:8443/"), default("https://upstream.test/mirror/")}
    assert len(others) == 3 and path not in others


def recorded_upstream(path: Path) -> str | None:
    connection = sqlite3.connect(path)
    try:
        row = connection.execute("SELECT value FROM meta WHERE key = 'upstream'").fetchone()
        return None if row is None else str(row[0])
    finally:
        connection.close()


def test_a_catalog_of_another_upstream_is_refused_naming_both_and_left_as_it_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "catalog.sqlite3"  # one file given to both, as SHIM_CATALOG_PATH
    first = FakeIndex()
    assert feed(make_settings(catalog_path=path), first)[0] == first.state.serial
    assert recorded_upstream(path) == UPSTREAM
    rows = sqlite3.connect(path).execute("SELECT COUNT(*) FROM projects").fetchone()
    settings = make_settings(catalog_path=path, upstream=UpstreamURL.parse("https://bob:s3cret@other.test/"))
    app = create_app(settings, transport=httpx.ASGITransport(app=small_index(OTHER)))
    with caplog.at_level("ERROR", logger="shim"), TestClient(app) as client:
        rpc = rpc_for(client)
        assert fault_of(rpc, "changelog_since_serial", 0) == (
            -32500,
            "RuntimeError: The catalog records another upstream; "
            "the service answers from it again once an operator fixes that.",
        )
        assert rpc("package_releases", "onlyhere") == ["1.0"]  # what needs no catalog still answers
        problem = client.get("/healthz").json()["catalog"]["problem"]
    assert problem == (
        f"the catalog {path} records another upstream (it is https://upstream.test/'s; this service's upstream is "
        "https://bob:***@other.test/): set SHIM_CATALOG_PATH to a catalog of this upstream, or leave it unset for "
        "this upstream's own default file"
    )
    assert problem in caplog.messages[0] and "s3cret" not in caplog.text
    assert recorded_upstream(path) == UPSTREAM
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM projects").fetchone() == rows


def shared_catalog(state_home: Path, fake: FakeIndex, *, records_upstream: bool = True) -> list[list[object]]:
    """A catalog at the default path every upstream shared before each had its own (`catalog.sqlite3`); without
    `records_upstream`, as the versions before this one wrote it. Returns its change rows."""
    path = state_home / "catalog.sqlite3"
    with TestClient(create_app(make_settings(catalog_path=path), transport=httpx.ASGITransport(app=fake))) as client:
        fake.add_release("roundup", "1.7.0")
        in_app(client, client.app.state.refresher.refresh)  # type: ignore[attr-defined]
        rows: list[list[object]] = call(client, "changelog_since_serial", 0)
    if not records_upstream:
        connection = sqlite3.connect(path)
        with connection:
            connection.execute("DELETE FROM meta WHERE key = 'upstream'")
        connection.close()
    return rows


def since(settings: Settings, fake: FakeIndex) -> list[list[object]]:
    with TestClient(create_app(settings, transport=httpx.ASGITransport(app=fake))) as client:
        rows: list[list[object]] = call(client, "changelog_since_serial", 0)
        return rows


def test_a_catalog_at_the_shared_default_path_is_adopted_by_the_upstream_it_records(state_home: Path) -> None:
    fake = FakeIndex()
    rows = shared_catalog(state_home, fake)
    shared = state_home / "catalog.sqlite3"
    other = Settings(upstream=UpstreamURL.parse(OTHER))
    assert since(other, small_index(OTHER))[0][0] == "onlyhere"  # not its catalog: left for its own upstream
    assert shared.exists() and recorded_upstream(other.catalog_path) == OTHER
    ours = Settings(upstream=UpstreamURL.parse(UPSTREAM))
    assert since(ours, fake) == rows  # moved to its upstream's own path, every row kept
    assert not shared.exists() and not list(state_home.glob("catalog.sqlite3-*"))
    assert recorded_upstream(ours.catalog_path) == UPSTREAM


def test_a_catalog_written_before_catalogs_recorded_their_upstream_is_adopted_and_then_records_it(
    state_home: Path,
) -> None:
    fake = FakeIndex()
    rows = shared_catalog(state_home, fake, records_upstream=False)
    ours = Settings(upstream=UpstreamURL.parse(UPSTREAM))
    assert since(ours, fake) == rows
    assert not (state_home / "catalog.sqlite3").exists()
    assert recorded_upstream(ours.catalog_path) == UPSTREAM  # from now on, another upstream's service refuses it
    other = Settings(upstream=UpstreamURL.parse(OTHER))
    assert since(other, small_index(OTHER))[0][0] == "onlyhere"  # and starts a catalog of its own


def test_a_worker_that_finds_the_catalog_adopted_under_it_by_another_starts_on_the_adopted_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    former, path = tmp_path / "catalog.sqlite3", tmp_path / "catalog-new.sqlite3"
    sqlite3.connect(former).close()
    Path(str(former) + "-wal").write_bytes(b"")
    rename = Path.rename

    def raced(self: Path, target: str | Path) -> Path:
        if str(self).endswith("-wal"):  # another worker moved the journal between our look and our move
            rename(self, target)
            raise FileNotFoundError(str(self))
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", raced)
    assert adopt(former, path) is True  # no crash: the journal is where it belongs, and the file is moved
    assert path.exists() and Path(str(path) + "-wal").exists() and not former.exists()
