"""Every bad snapshot is refused by `catalog import` with a message that names the file and the reason, and the
catalog it was to replace is left exactly as it was (nor is anything left beside it)."""

from __future__ import annotations

import json
import lzma
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shim.catalog.snapshot import MAGIC, export_from
from shim.upstream.urls import UpstreamURL
from testkit.fakeindex import FakeIndex
from testkit.fakeindex.state import IndexState

from .feed import Feed
from .helpers import UPSTREAM, make_settings
from .snapshots import command, reading_service, rows_of

OTHER = "https://other.test/"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A good snapshot of a catalog that has read every project (`first.sqlite3` beside it), and one of another
    upstream's catalog."""
    folder = tmp_path_factory.mktemp("snapshots")
    with reading_service(FakeIndex(), folder / "first.sqlite3"):
        export_from(folder / "first.sqlite3", UpstreamURL.parse(UPSTREAM), folder / "good.snapshot")
    other = FakeIndex(IndexState(), base_url=OTHER)
    other.add_release("onlyhere", "1.0")
    running = Feed(other, make_settings(catalog_path=folder / "other.sqlite3", upstream=UpstreamURL.parse(OTHER)))
    with running.client:
        running.rpc("changelog_since_serial", 0)
    export_from(folder / "other.sqlite3", UpstreamURL.parse(OTHER), folder / "other.snapshot")
    return folder / "good.snapshot", folder / "other.snapshot"


def parts(snapshot: Path) -> tuple[dict[str, Any], bytes]:
    data = snapshot.read_bytes()
    manifest, _, payload = data[len(MAGIC) :].partition(b"\n")
    return json.loads(manifest), payload


def with_manifest(snapshot: Path, **changes: Any) -> bytes:
    manifest, payload = parts(snapshot)
    return MAGIC + json.dumps({**manifest, **changes}).encode() + b"\n" + payload


def bomb(snapshot: Path) -> bytes:
    """A manifest that declares a small catalog, over an xz stream that expands to 64 MiB (from ~10 KiB)."""
    compressor = lzma.LZMACompressor(format=lzma.FORMAT_XZ, preset=1)
    zeros = bytes(1024 * 1024)
    payload = b"".join(compressor.compress(zeros) for _ in range(64)) + compressor.flush()
    manifest, _ = parts(snapshot)
    return MAGIC + json.dumps({**manifest, "size": 4096}).encode() + b"\n" + payload


def flipped(snapshot: Path) -> bytes:
    data = bytearray(snapshot.read_bytes())
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


NOT_ONE = f"it is not a catalog snapshot (it does not start with {MAGIC.decode()!r})"
# Each bad snapshot, made from a good one (`good`) and another upstream's (`other`), and the reason it is refused.
CASES: dict[str, tuple[Callable[[Path, Path], bytes], str]] = {
    "not a snapshot at all": (lambda good, other: b"<html>404 Not Found</html>\n", NOT_ONE),
    "an empty file": (lambda good, other: b"", NOT_ONE),
    "a catalog itself": (
        lambda good, other: good.with_name("first.sqlite3").read_bytes(),
        "it is not a catalog snapshot but an SQLite file (a catalog itself?): make a snapshot of a catalog with "
        "`pypi-xmlrpc-shim catalog export`",
    ),
    "truncated in its manifest": (
        lambda good, other: good.read_bytes()[: len(MAGIC) + 20],
        "it is truncated (it ends within its manifest)",
    ),
    "truncated": (
        lambda good, other: good.read_bytes()[: good.stat().st_size * 2 // 3],
        "it is truncated (its compressed catalog ends early)",
    ),
    "corrupt": (
        lambda good, other: flipped(good),
        "it is corrupt (its compressed catalog does not decompress: Corrupt input data)",
    ),
    "trailing bytes": (
        lambda good, other: good.read_bytes() + b"more",
        "it is corrupt (bytes follow its compressed catalog)",
    ),
    "a wrong checksum": (
        lambda good, other: with_manifest(good, sha256="0" * 64),
        "it is corrupt (its checksum does not match its manifest)",
    ),
    "a manifest that is not its catalog's": (
        lambda good, other: with_manifest(good, last_serial=1),
        "it does not match its manifest (its catalog records upstream https://upstream.test/, schema 1, last serial "
        f"{FakeIndex().state.serial + 1})",
    ),
    "a malformed manifest": (
        lambda good, other: with_manifest(good, size="big"),
        "its manifest has no valid 'size' (a damaged file)",
    ),
    "a newer schema": (
        lambda good, other: with_manifest(good, schema="2"),
        "its catalog has a newer schema (2; this version reads up to 1): import it with a newer pypi-xmlrpc-shim",
    ),
    "a newer format": (
        lambda good, other: with_manifest(good, format=2, layout="new"),
        "it is in a newer snapshot format (2; this version reads 1): import it with a newer pypi-xmlrpc-shim",
    ),
    "another upstream's": (
        lambda good, other: other.read_bytes(),
        "it is a catalog of another upstream (https://other.test/; this service's upstream is https://upstream.test/)",
    ),
    "a decompression bomb": (
        lambda good, other: bomb(good),
        "its catalog expands past the 4096 bytes its manifest declares (a damaged file, or a decompression bomb)",
    ),
    "a size over the limit": (
        lambda good, other: with_manifest(good, size=2**45),
        f"its catalog would be {2**45} bytes, over SHIM_SNAPSHOT_MAX_BYTES ({16 * 1024**3})",
    ),
}


def started_catalog(good: Path, folder: Path) -> Path:
    """A catalog that has started (a copy of the one the good snapshot was made of), in a folder of its own."""
    catalog = folder / "catalog" / "catalog.sqlite3"
    catalog.parent.mkdir()
    shutil.copyfile(good.with_name("first.sqlite3"), catalog)
    return catalog


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_snapshot_is_refused_naming_it_and_why_and_the_catalog_is_left_as_it_was(
    case: str, made: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, other = made
    make, reason = CASES[case]
    catalog = started_catalog(good, tmp_path)
    before = rows_of(catalog)
    bad = tmp_path / "bad.snapshot"
    bad.write_bytes(make(good, other))
    settings = make_settings(catalog_path=catalog)
    assert command(capsys, settings, "import", bad, replace=True) == (
        1,
        f"pypi-xmlrpc-shim: the snapshot {bad} is refused: {reason}; the catalog {catalog} is left as it is\n",
    )
    assert rows_of(catalog) == before
    assert [path.name for path in catalog.parent.iterdir()] == ["catalog.sqlite3"]  # no scratch file left


def test_a_missing_snapshot_is_named(
    made: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = started_catalog(made[0], tmp_path)
    missing = tmp_path / "missing.snapshot"
    assert command(capsys, make_settings(catalog_path=catalog), "import", missing, replace=True) == (
        1,
        f"pypi-xmlrpc-shim: the snapshot {missing} is refused: it cannot be read (No such file or directory); "
        f"the catalog {catalog} is left as it is\n",
    )


def test_the_good_snapshot_the_bad_ones_were_made_of_is_imported(
    made: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = tmp_path / "catalog.sqlite3"
    code, manifest = command(capsys, make_settings(catalog_path=catalog), "import", made[0])
    assert code == 0 and isinstance(manifest, dict)
    assert rows_of(catalog) == rows_of(made[0].with_name("first.sqlite3"))
