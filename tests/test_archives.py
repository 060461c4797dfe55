"""The archive readers on any bytes at all: a member found, or ArchiveError, never another exception nor a hang."""

from __future__ import annotations

import contextlib
import random
import zipfile

import pytest

from shim.upstream import archives
from shim.upstream.archive_stream import Limits, MemberFinder, stream_kind
from testkit.sdists import build_sdist
from testkit.wheels import build_wheel

PKG_INFO = "Metadata-Version: 2.1\nName: fuzz-demo\nVersion: 1.0\n"
COUNT = 150
LIMITS = Limits(member=64 * 1024, expanded=4 * 1024 * 1024)


def _mutants(content: bytes, seed: int, count: int = COUNT) -> list[bytes]:
    """`content` truncated, with bytes flipped, or with a run of bytes overwritten, `count` ways."""
    rng = random.Random(seed)

    def place() -> int:  # the headers are at the ends: half the changes go there
        at = rng.randrange(min(len(content), 1024))
        return rng.choice([rng.randrange(len(content)), at, len(content) - 1 - at])

    out = []
    for _ in range(count):
        data = bytearray(content)
        how = rng.randrange(3)
        if how == 0:
            data = data[: place()]
        elif how == 1:
            for _ in range(rng.randrange(1, 8)):
                data[place()] ^= 1 << rng.randrange(8)
        else:
            at = place()
            data[at : at + 8] = rng.randbytes(8)
        out.append(bytes(data))
    return out


def _stream(kind: str, data: bytes) -> bytes | None:
    finder = MemberFinder(kind, LIMITS)
    for at in range(0, len(data), 1000):
        finder.feed(data[at : at + 1000])
        while finder.work():
            pass
        if finder.member is not None:
            return finder.member
    finder.close()
    return finder.member


@pytest.mark.parametrize(
    ("suffix", "descriptors"),
    [("tar.gz", False), ("tar.bz2", False), ("tar.xz", False), ("tar", False), ("zip", False), ("zip", True)],
)
def test_a_streamed_sdist_gives_its_pkg_info_or_archive_error_whatever_its_bytes(
    suffix: str, descriptors: bool
) -> None:
    files = {"src/a.py": b"A = 1\n" * 200, "demo.egg-info/PKG-INFO": b"not this one"}
    content = build_sdist(
        "fuzz-demo", "1.0", pkg_info=PKG_INFO, suffix=suffix, files=files, pkg_info_last=True, descriptors=descriptors
    )
    kind = stream_kind(f"x.{suffix}")
    assert kind is not None
    assert _stream(kind, content) == PKG_INFO.encode()
    for mutant in _mutants(content, seed=len(suffix) + descriptors):
        with contextlib.suppress(archives.ArchiveError):
            _stream(kind, mutant)


def _from_the_end(wheel: bytes) -> bytes:
    """The wheel's METADATA as the range reader finds it, all of the file at hand."""
    tail_start = max(len(wheel) - archives.TAIL_BYTES, 0)
    directory = archives.find_directory(wheel[tail_start:], tail_start, len(wheel))
    entries = archives.central_entries(wheel[directory.offset : directory.offset + directory.size], directory.entries)
    member = archives.wheel_metadata_member(entries, "fuzz_demo-1.0-py3-none-any.whl")
    data = wheel[member.offset : directory.offset]
    begins = archives.data_offset(data, member)
    text = data[begins : begins + member.compressed]
    return archives.inflate(text, member.method, member.size, member.crc, LIMITS.member)


def test_a_wheel_read_from_its_end_gives_its_metadata_or_archive_error_whatever_its_bytes() -> None:
    wheel = build_wheel("fuzz-demo", "1.0", metadata=PKG_INFO, compression=zipfile.ZIP_DEFLATED)
    assert _from_the_end(wheel) == PKG_INFO.encode()
    for mutant in _mutants(wheel, seed=1, count=3 * COUNT):
        with contextlib.suppress(archives.ArchiveError):
            _from_the_end(mutant)
