"""Wheels for the fake index: a small valid one with real hashes, and the file record Warehouse's JSON gives for
a wheel (real digests when its bytes are given, stand-ins otherwise)."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from collections.abc import Mapping
from typing import Any

from testkit.fakeindex import FakeIndex

__all__ = ["add_wheel", "build_wheel", "wheel_file"]


def build_wheel(
    name: str,
    version: str,
    *,
    metadata: str | None = None,
    leading: Mapping[str, bytes] | None = None,
    trailing: Mapping[str, bytes] | None = None,
    compression: int = zipfile.ZIP_STORED,
) -> bytes:
    """A small, valid, pure-Python wheel, made here so its hashes are real: its METADATA is `metadata` (else
    the three required fields), `leading` files come before the dist-info and `trailing` ones after it (where
    wheels rarely put any: it moves METADATA away from the zip's tail)."""
    dist = f"{name.replace('-', '_')}-{version}.dist-info"
    files = {
        f"{name.replace('-', '_')}/__init__.py": b"VALUE = 42\n",
        **(leading or {}),
        f"{dist}/METADATA": (metadata or f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        **(trailing or {}),
    }
    record = "".join(
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for path, data in files.items()
    )
    files[f"{dist}/RECORD"] = (record + f"{dist}/RECORD,,\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        for path, data in files.items():
            wheel.writestr(zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0)), data, compress_type=compression)
    return buffer.getvalue()


def wheel_file(
    name: str,
    version: str,
    *,
    content: bytes | None = None,
    upload: str = "2026-01-02T03:05:00Z",
    tag: str = "py3",
) -> dict[str, Any]:
    """A wheel's file record as the JSON API lists it; with `content`, its size and digests are real and the fake
    index serves those bytes."""
    filename = f"{name.replace('-', '_')}-{version}-{tag}-none-any.whl"
    blake = hashlib.blake2b(content if content is not None else filename.encode(), digest_size=32).hexdigest()
    record: dict[str, Any] = {
        "filename": filename,
        "packagetype": "bdist_wheel",
        "python_version": tag,
        "size": len(content) if content is not None else 10,
        "digests": {
            "blake2b_256": blake,
            "md5": hashlib.md5(content).hexdigest() if content is not None else "0" * 32,
            "sha256": hashlib.sha256(content).hexdigest() if content is not None else "1" * 64,
        },
        "upload_time": upload,
        "comment_text": None,
        "path": f"{blake[:2]}/{blake[2:4]}/{blake[4:]}/{filename}",
    }
    if content is not None:
        record["content_b64"] = base64.b64encode(content).decode()
    return record


def add_wheel(fake: FakeIndex, name: str, version: str, *, upload: str = "2024-03-01T12:00:00.123456Z") -> bytes:
    """A release of `name` with one real wheel (uploaded at `upload`), added to the fake index; its bytes."""
    content = build_wheel(name, version)
    fake.add_release(
        name,
        version,
        info={"summary": "A demo package", "requires_python": ">=3.8"},
        files=[wheel_file(name, version, content=content, upload=upload)],
    )
    return content
