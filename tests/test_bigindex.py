"""The benchmark's generated upstream (testkit/bigindex.py): the same names for the same seed, names like PyPI's,
the Simple index as PEP 691 JSON bytes with its serials, ETag and gzip, every other path from the fake index."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from testkit.bigindex import RARE_COUNT, RARE_WORD, BigIndex, generate_names, normalize
from testkit.fakeindex import FakeIndex

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SIZE = 600


@pytest.fixture(scope="module")
def big() -> BigIndex:
    return BigIndex(SIZE, seed=3)


@pytest.fixture
async def client(big: BigIndex) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=big)
    async with httpx.AsyncClient(transport=transport, base_url="https://upstream.test") as c:
        yield c


def test_the_same_seed_draws_the_same_names_and_another_seed_others() -> None:
    assert generate_names(2_000, 7) == generate_names(2_000, 7)
    assert generate_names(2_000, 7) != generate_names(2_000, 8)


def test_names_are_unique_once_normalised_and_look_like_pypis() -> None:
    names = generate_names(3_000, 1, reserved=("Zope.Interface_Demo",))
    assert len(names) == 3_000 and len({normalize(n) for n in names}) == 3_000
    assert "Zope.Interface_Demo" in names
    assert all(2 <= len(n) <= 60 for n in names)
    assert any(n != n.lower() for n in names) and any(n.isupper() for n in names)
    for mark in ("-", "_", "."):
        assert any(mark in n for n in names)
    assert any(c.isdigit() for n in names for c in n)
    assert sum("django" in n.lower() for n in names) > 30  # a common word has many hits
    assert sum(RARE_WORD in normalize(n) for n in names) == RARE_COUNT  # a rare one a handful


@pytest.mark.anyio
async def test_the_simple_index_is_pep_691_json_with_its_serials(client: httpx.AsyncClient, big: BigIndex) -> None:
    response = await client.get("/simple/", headers={"Accept": SIMPLE_JSON, "Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"] == SIMPLE_JSON
    assert "content-encoding" not in response.headers
    document = json.loads(response.content)
    serials = [p["_last-serial"] for p in document["projects"]]
    assert document["meta"] == {"_last-serial": max(serials), "api-version": "1.1"}
    assert response.headers["x-pypi-last-serial"] == str(max(serials))
    names = [p["name"] for p in document["projects"]]
    assert len(names) == SIZE and names == big.names
    assert [normalize(n) for n in names] == sorted(normalize(n) for n in names)
    fake = FakeIndex()
    for fixture in ("roundup", "httpx"):  # the fixtures are listed with their own serials
        assert serials[names.index(fake.project(fixture).name)] == fake.project(fixture).last_serial


@pytest.mark.anyio
async def test_the_index_is_gzipped_when_asked_and_unchanged_gives_304(client: httpx.AsyncClient) -> None:
    plain = await client.get("/simple/", headers={"Accept": SIMPLE_JSON, "Accept-Encoding": "identity"})
    async with client.stream("GET", "/simple/", headers={"Accept": SIMPLE_JSON, "Accept-Encoding": "gzip"}) as zipped:
        raw = b"".join([chunk async for chunk in zipped.aiter_raw()])
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) == len(raw) < len(plain.content) / 3
    assert gzip.decompress(raw) == plain.content
    again = await client.get("/simple/", headers={"Accept": SIMPLE_JSON, "If-None-Match": plain.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.anyio
async def test_every_other_path_is_the_fake_index(client: httpx.AsyncClient, big: BigIndex) -> None:
    roundup = (await client.get("/pypi/roundup/json")).json()
    assert roundup["info"]["version"] == FakeIndex().project("roundup").latest().version  # type: ignore[union-attr]
    generated = next(n for n in big.names if FakeIndex().state.get(n) is None)
    answer = await client.get(f"/pypi/{normalize(generated)}/json")
    assert answer.status_code == 200
    assert answer.json()["info"]["name"] == generated and answer.json()["info"]["version"] == "1.0"
    assert answer.headers["x-pypi-last-serial"] == str(big.serials[big.names.index(generated)])
    assert (await client.get("/pypi/no-such-project-here/json")).status_code == 404
    html = await client.get("/simple/roundup/", headers={"Accept": "text/html"})
    assert html.status_code == 200 and "roundup" in html.text
