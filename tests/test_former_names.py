"""The catalog was called the metadata index: its former settings, its former default file and the former `index`
verbs keep working, each with a warning that names what replaced it, and nothing is left behind."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from shim import cli
from shim.app import create_app
from shim.config.settings import Settings
from shim.upstream.urls import UpstreamURL
from testkit.fakeindex import FakeIndex

from .helpers import UPSTREAM, call, run_shim_json, shim_environ

BASE_ENV = {"SHIM_UPSTREAM": UPSTREAM}


def loaded(environ: dict[str, str], options: dict[str, str | None] | None = None) -> tuple[Settings, list[str]]:
    warnings: list[str] = []
    return Settings.load(environ, options, warn=warnings.append), warnings


@pytest.mark.parametrize(
    ("former", "value", "name", "expected"),
    [
        ("SHIM_INDEX_PATH", "/srv/shim/metadata.sqlite3", "catalog_path", Path("/srv/shim/metadata.sqlite3")),
        ("SHIM_INDEX_WRITER", "false", "catalog_writer", False),
    ],
)
def test_a_former_variable_is_read_with_a_warning_naming_the_new_one(
    former: str, value: str, name: str, expected: object
) -> None:
    settings, warnings = loaded({**BASE_ENV, former: value})
    assert getattr(settings, name) == expected
    new = "SHIM_" + name.upper()
    assert warnings == [f"{former} is a former name: use {new}"]


def test_the_new_variable_wins_over_the_former_one_without_a_warning() -> None:
    settings, warnings = loaded({**BASE_ENV, "SHIM_CATALOG_PATH": "/new.sqlite3", "SHIM_INDEX_PATH": "/old.sqlite3"})
    assert settings.catalog_path == Path("/new.sqlite3")
    assert warnings == []


def test_a_former_option_is_read_with_a_warning_and_hidden_from_help(capsys: pytest.CaptureFixture[str]) -> None:
    settings = cli.load(["--index-path", "/srv/old.sqlite3", "--index-writer", "no"], environ=BASE_ENV)
    assert settings.catalog_path == Path("/srv/old.sqlite3") and settings.catalog_writer is False
    err = capsys.readouterr().err
    assert "warning: --index-path is a former name: use --catalog-path" in err
    assert "warning: --index-writer is a former name: use --catalog-writer" in err
    help_text = cli.build_parser().format_help()
    assert "--catalog-path" in help_text and "--index-path" not in help_text


def test_a_bad_value_under_a_former_name_is_reported_by_that_name() -> None:
    with pytest.raises(ValueError, match=r"SHIM_INDEX_WRITER has value 'sometimes': must be true or false"):
        loaded({**BASE_ENV, "SHIM_INDEX_WRITER": "sometimes"})


def _make_catalog(path: Path) -> None:
    """A catalog file as an earlier version left it: its last writes still in the write-ahead log beside it, not
    yet checkpointed into the file (as a crash, or a copy taken while it ran, leaves it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name("scratch.sqlite3")
    connection = sqlite3.connect(scratch)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")  # every write stays in the log
    connection.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    connection.execute("INSERT INTO meta VALUES ('marker', 'from the former default path')")
    connection.commit()
    for suffix in ("", "-wal"):  # the file and its log, copied while the writer holds them open
        Path(str(path) + suffix).write_bytes(Path(str(scratch) + suffix).read_bytes())
    connection.close()
    for leftover in scratch.parent.glob("scratch.sqlite3*"):
        leftover.unlink()


@pytest.fixture
def former(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A catalog file at the former default path, under a state directory of this test's own."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = tmp_path / "state" / "pypi-xmlrpc-shim" / "index.sqlite3"
    _make_catalog(path)
    return path


def test_a_catalog_at_the_former_default_path_is_adopted_at_start(former: Path) -> None:
    settings = Settings(upstream=UpstreamURL.parse(UPSTREAM))  # the default path, as a new user runs it
    # The default path in use is now the upstream's own (tests/test_catalog_upstreams.py): adopted there.
    assert settings.catalog_path.parent == former.parent
    assert settings.catalog_path.name.startswith("catalog-upstream.test-")
    fake = FakeIndex()
    with TestClient(create_app(settings, transport=httpx.ASGITransport(app=fake))) as client:
        assert call(client, "changelog_last_serial") == fake.state.serial
    assert not former.exists() and not Path(str(former) + "-wal").exists()
    kept = sqlite3.connect(settings.catalog_path).execute("SELECT value FROM meta WHERE key = 'marker'").fetchone()
    assert kept == ("from the former default path",)


def test_a_catalog_path_given_explicitly_leaves_the_former_default_file_alone(tmp_path: Path, former: Path) -> None:
    settings = Settings(upstream=UpstreamURL.parse(UPSTREAM), catalog_path=tmp_path / "elsewhere.sqlite3")
    with TestClient(create_app(settings, transport=httpx.ASGITransport(app=FakeIndex()))):
        pass
    assert former.exists() and not former.with_name("catalog.sqlite3").exists()


@pytest.mark.e2e
def test_the_index_verbs_are_aliases_of_the_catalog_verbs(tmp_path: Path) -> None:
    environ = shim_environ(UPSTREAM, tmp_path / "catalog.sqlite3", tmp_path)

    def status(verb: str) -> dict[str, object]:
        return run_shim_json(verb, "status", env=environ)

    assert status("index") == status("catalog")
    assert status("catalog")["path"] == str(tmp_path / "catalog.sqlite3")


def test_an_option_under_its_former_name_beats_the_new_variable(capsys: pytest.CaptureFixture[str]) -> None:
    settings = cli.load(["--index-path", "/from/the/option.sqlite3"], environ={**BASE_ENV, "SHIM_CATALOG_PATH": "/env"})
    assert settings.catalog_path == Path("/from/the/option.sqlite3")  # the option wins, as --help says
    assert "--index-path is a former name: use --catalog-path" in capsys.readouterr().err
