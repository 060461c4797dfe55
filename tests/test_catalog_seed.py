"""SHIM_CATALOG_SEED: a snapshot (a file, or an http(s) URL fetched by the upstream client) imported at first start
makes the catalog complete at once; a catalog that has started is never replaced by it; a seed that is refused or
not fetched is logged with its reason, and the catalog starts from the upstream as without one."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from shim.catalog.seed import Seed
from shim.catalog.snapshot import export_from
from shim.upstream.client import USER_AGENT
from shim.upstream.urls import UpstreamURL
from testkit.fakeindex import FakeIndex

from .feed import Feed
from .helpers import UPSTREAM, make_settings
from .snapshots import answers, json_requests, populated, reading_service, rows_of
from .transports import SeedHost

SEED_URL = "https://seeds.test/catalog.snapshot?token=t0ps3cret"
SHOWN_URL = "https://seeds.test/catalog.snapshot?token=***"
INSTEAD = "the catalog starts from the upstream instead"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    """A snapshot of a catalog that has read every project, and what that service answered."""
    folder = tmp_path_factory.mktemp("seed")
    with reading_service(populated(FakeIndex()), folder / "first.sqlite3") as first:
        expected = answers(first.rpc)
    export_from(folder / "first.sqlite3", UpstreamURL.parse(UPSTREAM), folder / "catalog.snapshot")
    return folder / "catalog.snapshot", expected


def upstream_now() -> FakeIndex:
    """The upstream as it was when the snapshot was made."""
    fake = populated(FakeIndex())
    fake.add_release("roundup", "1.7.0", files=[])
    return fake


def seeded(
    fake: FakeIndex, catalog: Path, seed: str, transport: httpx.AsyncBaseTransport | None = None, **settings: Any
) -> Feed:
    return Feed(fake, make_settings(catalog_path=catalog, catalog_seed=Seed(seed), **settings), transport)


def test_a_seed_file_makes_a_fresh_catalog_complete_at_first_start(
    made: tuple[Path, list[Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapshot, expected = made
    fake = upstream_now()
    running = seeded(fake, tmp_path / "catalog.sqlite3", str(snapshot))
    with caplog.at_level("INFO", logger="shim"), running.client:
        running.since(0)  # the seed imported, and the first pass made
        assert answers(running.rpc) == expected
    assert json_requests(fake) == 0  # all of it from the seed: not one project's JSON read
    projects = len(fake.state.projects)
    imported = (
        f"SHIM_CATALOG_SEED: imported {snapshot}: {projects} projects of {UPSTREAM}, up to serial {fake.state.serial}"
    )
    assert imported in caplog.messages


def test_a_seed_url_is_fetched_by_the_upstream_client_with_no_credential_of_the_index(
    made: tuple[Path, list[Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapshot, expected = made
    fake = upstream_now()
    seeds = SeedHost(fake, snapshot.read_bytes())
    upstream = UpstreamURL.parse("https://alice:s3cret@upstream.test/")
    running = seeded(fake, tmp_path / "catalog.sqlite3", SEED_URL, seeds, upstream=upstream)
    with caplog.at_level("INFO", logger="shim"), running.client:
        running.since(0)
        assert answers(running.rpc) == expected
    (request,) = seeds.asked
    assert str(request.url) == SEED_URL and request.headers["user-agent"] == USER_AGENT
    assert "authorization" not in request.headers  # the index's credentials go to the index's origin only
    assert fake.requests[0].headers["authorization"].startswith("Basic ")  # as they do there
    assert json_requests(fake) == 0
    assert f"SHIM_CATALOG_SEED: downloading {SHOWN_URL}" in caplog.messages
    assert "t0ps3cret" not in caplog.text and "s3cret" not in caplog.text
    # The download is gone: only the catalog and its writer's lock (shim.catalog.election) are left.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["catalog.sqlite3", "catalog.sqlite3.writer.lock"]


def test_a_catalog_that_has_started_is_never_replaced_by_its_seed(
    made: tuple[Path, list[Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    catalog, fake = tmp_path / "catalog.sqlite3", FakeIndex()
    first = Feed(fake, make_settings(catalog_path=catalog))
    with first.client:
        first.rpc("changelog_since_serial", 0)
    before = rows_of(catalog)
    seeds = SeedHost(fake, made[0].read_bytes())
    running = seeded(fake, catalog, SEED_URL, seeds)
    with caplog.at_level("INFO", logger="shim"), running.client:
        running.rpc("changelog_since_serial", 0)
    assert seeds.asked == []  # not even fetched
    # Every row as it was, but when its refresher last made a pass (this service made one: a second later, at times).
    assert _but_last_refresh(rows_of(catalog)) == _but_last_refresh(before)
    assert f"the catalog {catalog} has started: SHIM_CATALOG_SEED is not imported into it" in caplog.messages


def _but_last_refresh(rows: list[str]) -> list[str]:
    return [row for row in rows if "'last_refresh'" not in row]


BAD_SEEDS: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    # case: (SeedHost's answer, settings, what the log says after "SHIM_CATALOG_SEED: ")
    "truncated": (
        {"truncate": True},
        {},
        f"the snapshot {SHOWN_URL} is refused: it is truncated (its compressed catalog ends early); {INSTEAD}",
    ),
    "not found": ({"status": 404}, {}, f"{SHOWN_URL} could not be downloaded (HTTP 404); {INSTEAD}"),
    "a redirect, never followed": (
        {"status": 302, "headers": {"Location": "https://elsewhere.test/catalog.snapshot"}},
        {},
        f"{SHOWN_URL} could not be downloaded (HTTP 302); {INSTEAD}",
    ),
    "larger than the limit": (
        {},
        {"snapshot_max_bytes": 1000},
        f"{SHOWN_URL} could not be downloaded (over the limit of 1000 bytes); {INSTEAD}",
    ),
    "no answer in time": (
        {"hold": True},
        {"seed_timeout": 0.2},
        f"{SHOWN_URL} was not downloaded within SHIM_SEED_TIMEOUT (0.2 s); {INSTEAD}",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SEEDS))
def test_a_seed_refused_or_not_fetched_is_logged_and_the_catalog_starts_from_the_upstream(
    case: str, made: tuple[Path, list[Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    answer, settings, message = BAD_SEEDS[case]
    body = made[0].read_bytes()
    if answer.pop("truncate", False):
        body = body[: len(body) // 2]
    fake = FakeIndex()
    running = seeded(fake, tmp_path / "catalog.sqlite3", SEED_URL, SeedHost(fake, body, **answer), **settings)
    with caplog.at_level("INFO", logger="shim"), running.client:
        rows = running.since(0)  # the first pass made, from the upstream: one row per project
        assert len(rows) == len(fake.state.projects) and running.rpc("changelog_last_serial") == fake.state.serial
    assert f"SHIM_CATALOG_SEED: {message}" in caplog.messages
    assert sorted(path.name for path in tmp_path.iterdir()) == ["catalog.sqlite3", "catalog.sqlite3.writer.lock"]


def test_a_seed_file_that_is_missing_is_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "missing.snapshot"
    running = seeded(FakeIndex(), tmp_path / "catalog.sqlite3", str(missing))
    with caplog.at_level("ERROR", logger="shim"), running.client:
        assert running.since(0) != []
    refused = f"the snapshot {missing} is refused: it cannot be read (No such file or directory)"
    assert caplog.messages == [f"SHIM_CATALOG_SEED: {refused}; {INSTEAD}"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ftp://seeds.test/catalog.snapshot", "a URL's scheme must be http or https (else give a file path)"),
        ("https:///catalog.snapshot", "the URL has no host"),
        ("https://seeds.test:99999/catalog.snapshot", "not a valid URL"),
    ],
)
def test_a_seed_that_is_no_file_path_nor_http_url_stops_start_up(text: str, reason: str) -> None:
    from shim.config.settings import Settings, SettingsError

    with pytest.raises(SettingsError) as caught:
        Settings.load({"SHIM_UPSTREAM": UPSTREAM, "SHIM_CATALOG_SEED": text})
    assert str(caught.value) == f"SHIM_CATALOG_SEED has value {text!r}: {reason}."


def test_the_writer_run_beside_the_service_imports_the_seed_before_its_first_refresh(
    made: tuple[Path, list[Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from shim import cli, wiring

    fake = upstream_now()
    real_build = wiring.build_services
    monkeypatch.setattr(wiring, "build_services", lambda s: real_build(s, httpx.ASGITransport(app=fake)))
    settings = make_settings(catalog_path=tmp_path / "catalog.sqlite3", catalog_seed=Seed(str(made[0])))
    assert asyncio.run(cli._catalog(settings, "refresh", once=True, limit=None)) == 0
    assert json.loads(capsys.readouterr().out) == {"recorded": 0}  # the seed is as new as the upstream

    def kept(path: Path) -> list[str]:  # what the seed gave, but for the time of the refresh
        return [row for row in rows_of(path) if "'last_refresh'" not in row]

    assert kept(tmp_path / "catalog.sqlite3") == kept(made[0].with_name("first.sqlite3"))
    assert json_requests(fake) == 0
