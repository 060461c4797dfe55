"""The fake index's switches for a mirror-like upstream: no core metadata files, a files host that ignores Range;
and the sdists testkit builds, read back by the standard library."""

from __future__ import annotations

import io
import tarfile
import zipfile

import httpx
import pytest

from testkit.fakeindex import FakeIndex
from testkit.sdists import build_sdist

ROUNDUP_160 = (
    "https://files.upstream.test/packages/f0/07/6f4e2164ed82dfff873ee55181f782926bcb4a29f6a83fe4f8b9cbf5489c/"
    "roundup-1.6.0.tar.gz"
)


def _client(fake: FakeIndex) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=fake), base_url="https://upstream.test")


@pytest.mark.anyio
async def test_without_core_metadata_no_file_offers_one_and_none_is_served() -> None:
    async with _client(FakeIndex(core_metadata=False)) as client:
        document = (await client.get("/pypi/nofiles/json")).json()
        (file,) = document["urls"]
        assert "core-metadata" not in file
        assert all("core-metadata" not in f for files in document["releases"].values() for f in files)
        assert (await client.get(file["url"] + ".metadata")).status_code == 404


@pytest.mark.anyio
async def test_a_files_host_that_ignores_range_answers_the_whole_file() -> None:
    async with _client(FakeIndex(ranges=False)) as client:
        response = await client.get(ROUNDUP_160, headers={"Range": "bytes=10-19"})
    assert (response.status_code, len(response.content)) == (200, 2893499)
    assert "content-range" not in response.headers


@pytest.mark.parametrize("suffix", ["tar.gz", "tar.bz2", "tar.xz", "tar"])
@pytest.mark.parametrize("last", [False, True])
def test_a_tar_sdist_holds_its_pkg_info_first_or_last(suffix: str, last: bool) -> None:
    content = build_sdist(
        "demo", "1.0", pkg_info="Name: demo\n", suffix=suffix, files={"a.py": b""}, pkg_info_last=last
    )
    with tarfile.open(fileobj=io.BytesIO(content)) as archive:
        names = archive.getnames()
        member = archive.extractfile("demo-1.0/PKG-INFO")
        assert member is not None and member.read() == b"Name: demo\n"
    assert names == [
        "demo-1.0",
        *(["demo-1.0/a.py", "demo-1.0/PKG-INFO"] if last else ["demo-1.0/PKG-INFO", "demo-1.0/a.py"]),
    ]


@pytest.mark.parametrize("descriptors", [False, True])
def test_a_zip_sdist_gives_sizes_after_the_data_when_asked(descriptors: bool) -> None:
    content = build_sdist("demo", "1.0", pkg_info="Name: demo\n", suffix="zip", descriptors=descriptors)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        (info,) = archive.infolist()
        assert archive.read(info) == b"Name: demo\n"
    assert bool(info.flag_bits & 0x08) is descriptors
