"""release_data for an older release on a mirror-like upstream (no per-release JSON, no core metadata files): read
from the release's own files, a wheel's METADATA by range requests, else an sdist's PKG-INFO streamed, bounded and
cached; the clear fault only when neither works."""

from __future__ import annotations

import io
import logging
import random
import struct
import zipfile
from typing import Any
from urllib.parse import urlsplit

import pytest

from testkit.fakeindex import FakeIndex
from testkit.sdists import build_sdist, sdist_file
from testkit.wheels import build_wheel, wheel_file

from .helpers import call, fault_of, guard_of, rpc_for, served, stable_id
from .seed import ROUNDUP_160_DATA
from .transports import Metered, MisRanged

METADATA = """Metadata-Version: 2.1
Name: arch-demo
Version: {version}
Summary: Read from the archive
Author: Ada
Classifier: Programming Language :: Python :: 3
Classifier: License :: OSI Approved :: MIT License
Requires-Dist: requests>=2
Requires-Dist: idna; extra == "idna"
Requires-Python: >=3.8
Requires-External: libxml2
Project-URL: Docs, https://docs.upstream.test/

A description.
"""


def _noise(size: int, seed: int = 0) -> bytes:
    """Incompressible bytes: a file as large in the archive as on disk."""
    return random.Random(seed).randbytes(size)


def _mirror(*releases: tuple[str, list[dict[str, Any]]]) -> FakeIndex:
    """A mirror-like upstream holding `arch-demo` with these older releases, and a latest 9.0 without files."""
    fake = FakeIndex(per_version_json=False, core_metadata=False)
    for version, files in releases:
        fake.add_release("arch-demo", version, files=files)
    fake.add_release("arch-demo", "9.0", info={"summary": "Latest"}, files=[])
    return fake


def _path(fake: FakeIndex, version: str, index: int = 0) -> str:
    file = fake.project("arch-demo").release(version)
    assert file is not None
    return urlsplit(fake.urls.absolute_file_url(fake.project("arch-demo"), file.files[index])).path


def _assert_read_from_metadata(data: dict[str, Any], version: str) -> None:
    assert list(data) == list(ROUNDUP_160_DATA)  # Warehouse's 33 keys, in its order
    assert (data["name"], data["version"], data["summary"], data["author"]) == (
        "arch-demo",
        version,
        "Read from the archive",
        "Ada",
    )
    assert data["classifiers"] == ["Programming Language :: Python :: 3", "License :: OSI Approved :: MIT License"]
    assert data["requires_dist"] == ["requests>=2", 'idna; extra == "idna"']
    assert data["requires_python"] == ">=3.8"
    assert data["requires_external"] == ["libxml2"]
    assert data["project_url"] == ["Docs, https://docs.upstream.test/"]
    assert data["description"] == "A description.\n"


def test_an_old_wheel_release_comes_from_the_wheels_metadata_read_by_two_range_requests() -> None:
    # METADATA early in the zip, a large file after it: the tail (central directory) and the member are apart.
    wheel = build_wheel(
        "arch-demo", "1.0", metadata=METADATA.format(version="1.0"), trailing={"arch_demo/blob.bin": _noise(400_000)}
    )
    fake = _mirror(("1.0", [wheel_file("arch-demo", "1.0", content=wheel)]))
    metered = Metered(fake)
    with served(fake, metered) as client:
        data = call(client, "release_data", "arch-demo", "1.0")
        again = call(client, "release_data", "arch-demo", "1.0")
    _assert_read_from_metadata(data, "1.0")
    reads = metered.on(_path(fake, "1.0"))
    # The zip's tail (its central directory), then the one member: never the whole file.
    assert [(m.range is not None, m.status) for m in reads] == [(True, 206), (True, 206)]
    assert reads[0].range is not None and reads[0].range.startswith("bytes=-")
    assert sum(m.read for m in reads) < 80_000 < len(wheel)
    # The second call is served from the cache: nothing more was asked of the upstream.
    assert again == data
    assert len(metered.on(_path(fake, "1.0"))) == 2


def test_a_wheels_metadata_at_its_end_comes_with_the_tail_in_one_request() -> None:
    # Where wheels put the dist-info: the tail that holds the central directory holds METADATA too.
    wheel = build_wheel(
        "arch-demo", "1.0", metadata=METADATA.format(version="1.0"), leading={"arch_demo/blob.bin": _noise(400_000)}
    )
    fake = _mirror(("1.0", [wheel_file("arch-demo", "1.0", content=wheel)]))
    metered = Metered(fake)
    with served(fake, metered) as client:
        _assert_read_from_metadata(call(client, "release_data", "arch-demo", "1.0"), "1.0")
    (tail,) = metered.on(_path(fake, "1.0"))
    assert (tail.range, tail.status, tail.read) == ("bytes=-67584", 206, 67584)


def _sdist(version: str, suffix: str = "tar.gz", **options: Any) -> tuple[bytes, dict[str, Any]]:
    content = build_sdist("arch-demo", version, pkg_info=METADATA.format(version=version), suffix=suffix, **options)
    return content, sdist_file("arch-demo", version, content, suffix=suffix, upload="2020-01-01T00:00:00Z")


NO_METADATA = (
    -32500,
    "RuntimeError: The upstream offers no metadata for arch-demo 1.0: no per-release JSON and no core metadata file.",
)


@pytest.mark.parametrize(
    ("suffix", "options"),
    [
        ("tar.gz", {}),  # setuptools: PKG-INFO first
        ("tar.gz", {"pkg_info_last": True}),  # hatchling, flit: PKG-INFO last
        ("tar.bz2", {"pkg_info_last": True}),
        ("tar.xz", {}),
        ("zip", {}),
        ("zip", {"pkg_info_last": True}),
        ("zip", {"pkg_info_last": True, "descriptors": True}),  # each member's length known only at its end
    ],
    ids=stable_id,
)
def test_an_old_sdist_only_release_comes_from_its_pkg_info_read_as_it_streams(
    suffix: str, options: dict[str, Any]
) -> None:
    # An egg-info's PKG-INFO (not the sdist's own) and a large file beside it.
    files = {"arch_demo.egg-info/PKG-INFO": b"Metadata-Version: 1.0\nName: wrong\nVersion: 0\n"}
    files["src/blob.bin"] = _noise(300_000)
    content, record = _sdist("1.0", suffix, files=files, **options)
    fake = _mirror(("1.0", [record]))
    metered = Metered(fake)
    with served(fake, metered) as client:
        data = call(client, "release_data", "arch-demo", "1.0")
        assert call(client, "release_data", "arch-demo", "1.0") == data  # the second from the cache
    _assert_read_from_metadata(data, "1.0")
    (read,) = metered.on(_path(fake, "1.0"))
    assert (read.range, read.status) == (None, 200)
    if not options.get("pkg_info_last") and suffix != "tar.bz2":
        assert read.read < 100_000 < len(content)  # the stream closed once PKG-INFO had passed


def test_a_pkg_info_past_the_byte_cap_is_not_read_for(caplog: pytest.LogCaptureFixture) -> None:
    content, record = _sdist("1.0", files={"src/blob.bin": _noise(600_000)}, pkg_info_last=True)
    fake = _mirror(("1.0", [record]))
    metered = Metered(fake, chunk=16 * 1024)
    with caplog.at_level(logging.INFO), served(fake, metered, max_archive_bytes=200_000) as client:
        assert fault_of(rpc_for(client), "release_data", "arch-demo", "1.0") == NO_METADATA
    assert "no PKG-INFO in the first 200000 bytes" in caplog.text
    (read,) = metered.on(_path(fake, "1.0"))
    assert 200_000 <= read.read < 200_000 + 16 * 1024 < len(content)


@pytest.mark.parametrize(("suffix", "options"), [("tar.gz", {}), ("zip", {"descriptors": True})], ids=stable_id)
def test_an_archive_bomb_is_refused_before_its_pkg_info(
    caplog: pytest.LogCaptureFixture, suffix: str, options: dict[str, Any]
) -> None:
    # 32 MiB of zeros compress to 32 KiB: within the byte cap, past 16 times it decompressed. A zip member whose
    # length comes after it is passed by inflating it: that counts too.
    zeros = {"src/zeros.bin": bytes(32 * 1024 * 1024)}
    content, record = _sdist("1.0", suffix, files=zeros, pkg_info_last=True, **options)
    fake = _mirror(("1.0", [record]))
    metered = Metered(fake)
    with caplog.at_level(logging.INFO), served(fake, metered, max_archive_bytes=1024 * 1024) as client:
        assert fault_of(rpc_for(client), "release_data", "arch-demo", "1.0") == NO_METADATA
    assert "more than 16777216 bytes decompressed before a PKG-INFO" in caplog.text
    (read,) = metered.on(_path(fake, "1.0"))
    assert read.read < len(content)


def test_a_pkg_info_larger_than_a_document_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    text = METADATA.format(version="1.0") + "x" * 100_000
    content = build_sdist("arch-demo", "1.0", pkg_info=text)
    fake = _mirror(("1.0", [sdist_file("arch-demo", "1.0", content, upload="2020-01-01T00:00:00Z")]))
    with caplog.at_level(logging.INFO), served(fake, max_document_bytes=64 * 1024) as client:
        assert fault_of(rpc_for(client), "release_data", "arch-demo", "1.0") == NO_METADATA
    assert f"a PKG-INFO of {len(text)} bytes, over the limit of 65536" in caplog.text


def test_a_files_host_that_ignores_range_is_read_from_the_sdist_and_not_asked_for_ranges_again() -> None:
    wheels = {v: build_wheel("arch-demo", v, metadata=METADATA.format(version=v)) for v in ("1.0", "2.0")}
    fake = FakeIndex(per_version_json=False, core_metadata=False, ranges=False)
    for version, wheel in wheels.items():
        fake.add_release(
            "arch-demo", version, files=[wheel_file("arch-demo", version, content=wheel), _sdist(version)[1]]
        )
    fake.add_release("arch-demo", "9.0", files=[])
    metered = Metered(fake)
    with served(fake, metered) as client:
        _assert_read_from_metadata(call(client, "release_data", "arch-demo", "1.0"), "1.0")
        _assert_read_from_metadata(call(client, "release_data", "arch-demo", "2.0"), "2.0")
        assert client.get("/healthz").json()["capabilities"]["ranges"]["offered"] is False
    wheel_reads = [m for m in metered.log if m.path.endswith(".whl")]
    # The one range request was answered whole: closed at once, nothing of it read; the next release's wheel
    # was not asked for.
    assert [(m.range, m.status, m.read) for m in wheel_reads] == [("bytes=-67584", 200, 0)]
    assert [m.path for m in metered.log if m.path.endswith(".tar.gz")] == [_path(fake, "1.0", 1), _path(fake, "2.0", 1)]


DEFLATED = zipfile.ZIP_DEFLATED


def _wheel(metadata: str | None = None) -> bytes:
    return build_wheel("arch-demo", "1.0", metadata=metadata or METADATA.format(version="1.0"), compression=DEFLATED)


def _patched(content: bytes, at: int, value: bytes) -> bytes:
    at %= len(content)
    return content[:at] + value + content[at + len(value) :]


def _metadata_entry(wheel: bytes) -> int:
    """Where the central directory's entry for METADATA starts (its name's last copy, less the fixed part)."""
    return wheel.rindex(b"arch_demo-1.0.dist-info/METADATA") - 46


def _local_offset_wrong(wheel: bytes) -> bytes:
    entry = _metadata_entry(wheel)
    offset = struct.unpack_from("<I", wheel, entry + 42)[0]
    return _patched(wheel, entry + 42, struct.pack("<I", offset + 1))


def _member_data_corrupt(wheel: bytes) -> bytes:
    offset = zipfile.ZipFile(io.BytesIO(wheel)).getinfo("arch_demo-1.0.dist-info/METADATA").header_offset
    return _patched(wheel, offset + 30 + 32 + 5, b"\xff" * 8)


MALFORMED_WHEELS = {
    "truncated": lambda w: w[: len(w) // 2],
    "garbage end record": lambda w: w[:-22] + _noise(22),
    "end record naming another directory offset": lambda w: _patched(w, -6, struct.pack("<I", 7)),
    "entry count past the directory": lambda w: _patched(w, -12, struct.pack("<H", 60000)),
    "local header offset wrong": _local_offset_wrong,
    "member data corrupt": _member_data_corrupt,
    "huge declared member": lambda w: _patched(w, _metadata_entry(w) + 24, struct.pack("<I", 2**31)),
    "not a zip": lambda w: _noise(len(w)),
}


def _tar_gz_truncated() -> bytes:
    return _sdist("1.0", files={"src/blob.bin": _noise(50_000)}, pkg_info_last=True)[0][:-30_000]


MALFORMED_SDISTS = {
    "truncated tar.gz": ("tar.gz", _tar_gz_truncated),
    "garbage tar.gz": ("tar.gz", lambda: _noise(50_000)),
    "tar with a bad header checksum": ("tar", lambda: _patched(_sdist("1.0", "tar")[0], 148, b"000000\0 ")),
    "zip with a broken local header": ("zip", lambda: _patched(_sdist("1.0", "zip")[0], 0, b"PK\x09\x09")),
    "zip of a stored member of unknown length": (
        "zip",
        lambda: _patched(_sdist("1.0", "zip", descriptors=True)[0], 8, b"\0\0"),
    ),
    "PKG-INFO without a name": ("tar.gz", lambda: build_sdist("arch-demo", "1.0", pkg_info="Summary: no name\n")),
}


@pytest.mark.parametrize(
    "files",
    [
        *(
            pytest.param([lambda make=make: wheel_file("arch-demo", "1.0", content=make(_wheel()))], id=name)
            for name, make in MALFORMED_WHEELS.items()
        ),
        *(
            pytest.param(
                [
                    lambda s=suffix, make=make: sdist_file(
                        "arch-demo", "1.0", make(), suffix=s, upload="2020-01-01T00:00:00Z"
                    )
                ],
                id=name,
            )
            for name, (suffix, make) in MALFORMED_SDISTS.items()
        ),
    ],
)
def test_a_malformed_archive_ends_in_the_clear_fault_and_is_not_read_again(files: list[Any]) -> None:
    fake = _mirror(("1.0", [make() for make in files]))
    with served(fake) as client:
        rpc = rpc_for(client)
        assert fault_of(rpc, "release_data", "arch-demo", "1.0") == NO_METADATA
        asked = len(fake.requests)
        assert fault_of(rpc, "release_data", "arch-demo", "1.0") == NO_METADATA
        # An answer, if not a usable one: the circuit is not nearer opening; and the finding is remembered.
        assert guard_of(client.app).failures == 0
    assert len(fake.requests) == asked


def test_a_wheel_whose_central_directory_is_larger_than_the_tail_costs_three_range_requests() -> None:
    many = {f"arch_demo/module_{n:04}_with_a_long_name.py": b"" for n in range(1500)}
    wheel = build_wheel("arch-demo", "1.0", metadata=METADATA.format(version="1.0"), leading=many)
    fake = _mirror(("1.0", [wheel_file("arch-demo", "1.0", content=wheel)]))
    metered = Metered(fake)
    with served(fake, metered) as client:
        _assert_read_from_metadata(call(client, "release_data", "arch-demo", "1.0"), "1.0")
    reads = metered.on(_path(fake, "1.0"))
    # The tail, the central directory's beginning, then the member before it.
    assert [m.status for m in reads] == [206, 206, 206]
    assert reads[0].range == "bytes=-67584"
    assert sum(m.read for m in reads) < len(wheel) - 100_000


def test_a_malformed_wheel_beside_a_good_sdist_is_read_from_the_sdist() -> None:
    broken = _wheel()[:-22] + _noise(22)
    fake = _mirror(("1.0", [wheel_file("arch-demo", "1.0", content=broken), _sdist("1.0")[1]]))
    with served(fake) as client:
        _assert_read_from_metadata(call(client, "release_data", "arch-demo", "1.0"), "1.0")


def test_a_206_of_other_bytes_than_asked_is_not_used() -> None:
    fake = _mirror(("1.0", [wheel_file("arch-demo", "1.0", content=_wheel())]))
    with served(fake, MisRanged(fake)) as client:
        assert fault_of(rpc_for(client), "release_data", "arch-demo", "1.0") == NO_METADATA
        assert guard_of(client.app).failures == 0
