"""Source distributions for the fake index: real tar (gzip, bzip2, xz) and zip archives holding a PKG-INFO where
the tools that make them put it (setuptools first, hatchling and flit last), and the file record the JSON API
gives for one."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zipfile
from collections.abc import Mapping
from typing import Any

__all__ = ["build_sdist", "sdist_file"]

_MODES = {"tar.gz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz", "tar": "w"}


class _Unseekable(io.RawIOBase):
    """A write-only stream: zipfile then writes each member's sizes after its data (a data descriptor)."""

    def __init__(self) -> None:
        self.written = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.written += bytes(data)
        return len(data)


def build_sdist(
    name: str,
    version: str,
    *,
    pkg_info: str,
    suffix: str = "tar.gz",
    files: Mapping[str, bytes] | None = None,
    pkg_info_last: bool = False,
    descriptors: bool = False,
) -> bytes:
    """An sdist `<name>-<version>.<suffix>` (tar.gz, tar.bz2, tar.xz, tar or zip): its top-level PKG-INFO is
    `pkg_info`, first or (`pkg_info_last`) after `files` (paths under the top directory); a zip with
    `descriptors` gives each member's sizes after its data, as a zip written to a stream does."""
    top = f"{name.replace('-', '_')}-{version}"
    members = {f"{top}/{path}": data for path, data in (files or {}).items()}
    head = {f"{top}/PKG-INFO": pkg_info.encode()}
    ordered = {**members, **head} if pkg_info_last else {**head, **members}
    if suffix == "zip":
        return _zip(ordered, descriptors=descriptors)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=_MODES[suffix], format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
        directory = tarfile.TarInfo(top)
        directory.type, directory.mode, directory.mtime = tarfile.DIRTYPE, 0o755, 1704067200
        archive.addfile(directory)
        for path, data in ordered.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 1704067200
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _zip(members: Mapping[str, bytes], *, descriptors: bool) -> bytes:
    target: Any = _Unseekable() if descriptors else io.BytesIO()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, data in members.items():
            archive.writestr(zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return bytes(target.written) if descriptors else bytes(target.getvalue())


def sdist_file(name: str, version: str, content: bytes, *, suffix: str = "tar.gz", upload: str) -> dict[str, Any]:
    """The sdist's file record as the JSON API lists it, its size and digests real, served by the fake index."""
    filename = f"{name.replace('-', '_')}-{version}.{suffix}"
    blake = hashlib.blake2b(content, digest_size=32).hexdigest()
    return {
        "filename": filename,
        "packagetype": "sdist",
        "python_version": "source",
        "size": len(content),
        "digests": {
            "blake2b_256": blake,
            "md5": hashlib.md5(content).hexdigest(),
            "sha256": hashlib.sha256(content).hexdigest(),
        },
        "upload_time": upload,
        "comment_text": None,
        "path": f"{blake[:2]}/{blake[2:4]}/{blake[4:]}/{filename}",
        "content_b64": base64.b64encode(content).decode(),
    }
