"""Catalog snapshots: one file that makes a new deployment's catalog complete at once.

`export` copies the catalog with SQLite's online backup API, in one step (one read transaction: consistent while
the service writes, and never in its way), then compresses the copy (xz) behind a manifest: its upstream, last
serial, schema version, size and checksum.

`install` checks all of that before the catalog is touched: the manifest first; then it expands the catalog into a
temporary file beside the catalog, never past the size the manifest declares (nor the operator's limit), and checks
its checksum and the SQLite file itself; only then is the copy written into the catalog, with the backup API in
one step. That is one write transaction: every reader, in any process, sees the old catalog or the new one, and a
failure rolls back to the old one. (Renaming the copy over the catalog would leave other processes reading the
replaced file, and a WAL journal beside a file it does not belong to.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import lzma
import os
import re
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from shim.catalog.reads import CatalogReader
from shim.catalog.schema import SCHEMA_VERSION, CatalogFile
from shim.catalog.writes import CatalogWriter
from shim.upstream.urls import UpstreamURL, redact_url

__all__ = [
    "MAGIC",
    "CatalogNotEmpty",
    "Manifest",
    "SnapshotRefused",
    "export",
    "export_from",
    "import_into",
    "install",
    "is_empty",
    "read_manifest",
    "scratch",
]

MAGIC = b"pypi-xmlrpc-shim catalog snapshot\n"
FORMAT = 1
_SQLITE = b"SQLite format 3\x00"
_MANIFEST_MAX = 64 * 1024
_CHUNK = 1024 * 1024
# xz's fastest preset: a catalog of the whole public index (GBs) exports in minutes, still smaller than gzip's best.
_PRESET = 1
# What the decoder may allocate: preset 1 needs a few MiB; a crafted header asking for more is refused.
_MEMLIMIT = 256 * 1024 * 1024
_FIELDS: dict[str, tuple[type, ...]] = {
    "format": (int,),
    "upstream": (str,),
    "last_serial": (int, type(None)),
    "schema": (str,),
    "size": (int,),
    "sha256": (str,),
    "projects": (int,),
    "created": (int,),
    "compression": (str,),
}


class SnapshotRefused(Exception):
    """A snapshot that is not imported (or cannot be written): the message names the file and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"the snapshot {path} is refused: {reason}")


class CatalogNotEmpty(Exception):
    """The catalog already holds projects, and replacing it was not asked for."""

    def __init__(self, path: Path, projects: int) -> None:
        super().__init__(
            f"the catalog {path} already holds {projects} projects: pass --replace to replace it with the snapshot "
            "(stop the services that write it first)"
        )


@dataclass(frozen=True)
class Manifest:
    """What a snapshot says of the catalog it holds; checked against that catalog when it is imported."""

    upstream: str  # the base URL: a catalog never records credentials
    last_serial: int | None
    schema: str
    size: int  # of the catalog, decompressed
    sha256: str  # of the catalog, decompressed
    projects: int
    created: int
    format: int = FORMAT
    compression: str = "xz"

    def line(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True).encode() + b"\n"

    @classmethod
    def parse(cls, path: Path | str, line: bytes) -> Manifest:
        try:
            data = json.loads(line)
        except ValueError:
            raise SnapshotRefused(path, "its manifest is not JSON (a damaged file)") from None
        if not isinstance(data, dict):
            raise SnapshotRefused(path, "its manifest is not a JSON object (a damaged file)")
        version = data.get("format")
        if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT:
            raise SnapshotRefused(
                path,
                f"it is in a newer snapshot format ({version}; this version reads {FORMAT}): "
                "import it with a newer pypi-xmlrpc-shim",
            )
        for name, types in _FIELDS.items():
            if isinstance(data.get(name), bool) or not isinstance(data.get(name), types):
                raise SnapshotRefused(path, f"its manifest has no valid {name!r} (a damaged file)")
        fields = {name: data[name] for name in _FIELDS}
        if fields["compression"] != "xz" or not re.fullmatch(r"[0-9]{1,9}", fields["schema"]) or fields["size"] < 0:
            raise SnapshotRefused(path, "its manifest is malformed (a damaged file)")
        return cls(**fields)


def read_manifest(path: Path | str, source: IO[bytes]) -> Manifest:
    """The manifest at the start of `source`, which is left at the start of the compressed catalog."""
    head = source.read(len(MAGIC))
    if head != MAGIC:
        if head.startswith(_SQLITE):
            raise SnapshotRefused(
                path,
                "it is not a catalog snapshot but an SQLite file (a catalog itself?): "
                "make a snapshot of a catalog with `pypi-xmlrpc-shim catalog export`",
            )
        raise SnapshotRefused(path, f"it is not a catalog snapshot (it does not start with {MAGIC.decode()!r})")
    line = source.readline(_MANIFEST_MAX)
    if not line.endswith(b"\n"):
        if len(line) >= _MANIFEST_MAX:
            raise SnapshotRefused(path, "its manifest is over 64 KiB (a damaged file)")
        raise SnapshotRefused(path, "it is truncated (it ends within its manifest)")
    return Manifest.parse(path, line)


def is_empty(catalog: CatalogFile) -> bool:
    """The catalog has never started (no first look at the Simple index) and holds no project."""
    connection = catalog.connect()
    (projects,) = connection.execute("SELECT COUNT(*) FROM projects").fetchone()
    return int(projects) == 0 and catalog.oldest_serial is None


@contextmanager
def scratch(beside: Path, suffix: str) -> Iterator[Path]:
    """A temporary file beside `beside` (on its file system), removed (with any journal) however the block ends."""
    beside.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=beside.parent, prefix=f".{beside.name}.", suffix=suffix)
    os.close(descriptor)
    path = Path(name)
    try:
        yield path
    finally:
        for leftover in (path, Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _described(path: Path, upstream: str, now: int) -> Manifest:
    """The manifest of the catalog copy at `path`."""
    copy = CatalogReader(path)
    try:
        last_serial = copy.last_serial()
        projects = copy.coverage().projects
        schema = copy.get_meta("schema") or SCHEMA_VERSION
    finally:
        copy.close()
    return Manifest(upstream, last_serial, schema, path.stat().st_size, _digest(path), projects, now)


def export(catalog: CatalogReader, destination: Path, *, now: float | None = None) -> Manifest:
    """Write a snapshot of `catalog` (its upstream's: `catalog.upstream`) to `destination`, replaced whole, or
    not at all."""
    if catalog.upstream is None:
        raise ValueError("a snapshot names its upstream: open the catalog with one")
    if destination.resolve() == catalog.path.resolve():
        raise SnapshotRefused(destination, "not written: it is the catalog itself")
    if not catalog.path.is_file() or catalog.oldest_serial is None:
        raise SnapshotRefused(destination, f"not written: the catalog {catalog.path} has not started yet")
    upstream = catalog.upstream.base
    with scratch(destination, ".sqlite3") as copied, scratch(destination, ".part") as part:
        target = sqlite3.connect(copied)
        try:
            catalog.run_locked(lambda connection: connection.backup(target))
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no journal beside it
            with target:  # a catalog written before catalogs recorded their upstream: the copy records it
                target.execute("INSERT OR IGNORE INTO meta VALUES ('upstream', ?)", (upstream,))
        finally:
            target.close()
        manifest = _described(copied, upstream, int(time.time() if now is None else now))
        compressor = lzma.LZMACompressor(format=lzma.FORMAT_XZ, preset=_PRESET)
        with copied.open("rb") as source, part.open("wb") as out:
            out.write(MAGIC + manifest.line())
            while chunk := source.read(_CHUNK):
                out.write(compressor.compress(chunk))
            out.write(compressor.flush())
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, destination)
    return manifest


def _expand(path: str, source: IO[bytes], out: IO[bytes], manifest: Manifest) -> str:
    """Decompress the catalog from `source` into `out`, never past its declared size; returns its sha256."""
    decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=_MEMLIMIT)
    digest = hashlib.sha256()
    size = 0
    while not decompressor.eof:
        chunk = b""
        if decompressor.needs_input:
            chunk = source.read(_CHUNK)
            if not chunk:
                raise SnapshotRefused(path, "it is truncated (its compressed catalog ends early)")
        try:
            # Never more than one chunk out of one call: a small bomb stops at the declared size, not past it.
            data = decompressor.decompress(chunk, max_length=_CHUNK)
        except lzma.LZMAError as exc:
            raise SnapshotRefused(path, f"it is corrupt (its compressed catalog does not decompress: {exc})") from None
        size += len(data)
        if size > manifest.size:
            raise SnapshotRefused(
                path,
                f"its catalog expands past the {manifest.size} bytes its manifest declares "
                "(a damaged file, or a decompression bomb)",
            )
        digest.update(data)
        out.write(data)
    if decompressor.unused_data or source.read(1):
        raise SnapshotRefused(path, "it is corrupt (bytes follow its compressed catalog)")
    if size != manifest.size:
        raise SnapshotRefused(
            path, f"it is corrupt (its catalog is {size} bytes, its manifest declares {manifest.size})"
        )
    return digest.hexdigest()


def _verified(path: str, copy: Path, manifest: Manifest) -> None:
    """The expanded copy is a sound SQLite catalog that says what its manifest says."""
    reader = CatalogReader(copy)
    try:
        reader.connect()  # SQLite's quick_check, as for any catalog opened
        found = (reader.get_meta("upstream"), reader.get_meta("schema"), reader.last_serial())
    except sqlite3.DatabaseError as exc:
        raise SnapshotRefused(path, f"it is corrupt (its catalog is not a sound SQLite catalog: {exc})") from None
    finally:
        reader.close()
    if found != (manifest.upstream, manifest.schema, manifest.last_serial):
        upstream, schema, last_serial = found
        raise SnapshotRefused(
            path,
            f"it does not match its manifest (its catalog records upstream {redact_url(str(upstream))}, "
            f"schema {schema}, last serial {last_serial})",
        )


def _checked(path: str, manifest: Manifest, catalog: CatalogWriter, max_bytes: int) -> None:
    """What the manifest alone shows: refused before anything is expanded."""
    assert catalog.upstream is not None
    if int(manifest.schema) > int(SCHEMA_VERSION):
        raise SnapshotRefused(
            path,
            f"its catalog has a newer schema ({manifest.schema}; this version reads up to {SCHEMA_VERSION}): "
            "import it with a newer pypi-xmlrpc-shim",
        )
    if manifest.upstream != catalog.upstream.base:
        raise SnapshotRefused(
            path,
            f"it is a catalog of another upstream ({redact_url(manifest.upstream)}; "
            f"this service's upstream is {redact_url(str(catalog.upstream))})",
        )
    if manifest.size > max_bytes:
        raise SnapshotRefused(
            path, f"its catalog would be {manifest.size} bytes, over SHIM_SNAPSHOT_MAX_BYTES ({max_bytes})"
        )
    catalog.path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(catalog.path.parent).free
    if manifest.size > free:
        raise SnapshotRefused(
            path, f"its catalog needs {manifest.size} bytes, and {catalog.path.parent} has {free} free"
        )


def install(
    path: Path, catalog: CatalogWriter, *, max_bytes: int, replace: bool = False, shown: str | None = None
) -> Manifest:
    """Import the snapshot at `path` (named `shown` in messages: a seed's URL) into `catalog`, whose upstream it
    must be. Any refusal or failure leaves the catalog as it was."""
    name = shown if shown is not None else str(path)
    try:
        source = path.open("rb")
    except OSError as exc:
        raise SnapshotRefused(name, f"it cannot be read ({exc.strerror or exc})") from None
    with source, scratch(catalog.path, ".import") as copy:
        manifest = read_manifest(name, source)
        _checked(name, manifest, catalog, max_bytes)
        with copy.open("wb") as out:
            checksum = _expand(name, source, out, manifest)
        if checksum != manifest.sha256:
            raise SnapshotRefused(name, "it is corrupt (its checksum does not match its manifest)")
        _verified(name, copy, manifest)
        _copy_into(name, copy, catalog, replace=replace)
    return manifest


def _copy_into(path: str, copy: Path, catalog: CatalogWriter, *, replace: bool) -> None:
    def write(connection: sqlite3.Connection) -> None:
        if not replace and not is_empty(catalog):
            (projects,) = connection.execute("SELECT COUNT(*) FROM projects").fetchone()
            raise CatalogNotEmpty(catalog.path, int(projects))
        source = sqlite3.connect(copy)
        try:
            source.backup(connection)  # one step: one transaction, rolled back by any failure
        except sqlite3.Error as exc:
            raise SnapshotRefused(path, f"could not be written into the catalog ({exc})") from None
        finally:
            source.close()

    catalog.run_locked(write)
    catalog.close()  # opened again, the file is checked as any other: its schema, its upstream


def export_from(path: Path, upstream: UpstreamURL, destination: Path) -> Manifest:
    """`catalog export`: a snapshot of the catalog at `path`, which must be `upstream`'s (or record none)."""
    catalog = CatalogReader(path, upstream=upstream)
    try:
        return export(catalog, destination)
    finally:
        catalog.close()


def import_into(path: Path, upstream: UpstreamURL, snapshot: Path, *, max_bytes: int, replace: bool) -> Manifest:
    """`catalog import`: the catalog at `path` built from `snapshot`, which must be `upstream`'s."""
    catalog = CatalogWriter(path, upstream=upstream)
    try:
        return install(snapshot, catalog, max_bytes=max_bytes, replace=replace)
    finally:
        catalog.close()
