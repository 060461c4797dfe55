"""Pins the fake index's behaviour to Warehouse's (spec §3, §4.3-§4.5) and to the recorded upstream bodies."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from testkit.fakeindex import FIXTURES, FakeIndex, IndexState, Project, Release
from testkit.fakeindex.render_json import encode
from testkit.fakeindex.render_simple import negotiate
from testkit.fakeindex.state import full_info, version_key
from testkit.servers import serve_in_thread

RECORDED = ("starlette", "httpx", "defusedxml", "pypi-simple")
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def fake() -> FakeIndex:
    return FakeIndex()


@pytest.fixture
async def client(fake: FakeIndex) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=fake)
    async with httpx.AsyncClient(transport=transport, base_url="https://upstream.test") as c:
        yield c


def _recorded(name: str, kind: str) -> Any:
    return json.loads((FIXTURES / "recorded" / f"{name}.{kind}.json").read_text(encoding="utf-8"))


def _by_filename(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # The recording upstream lists a release's files in no fixed order; Warehouse orders them by filename.
    return sorted(files, key=lambda f: f["filename"])


# --- golden ---------------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("name", RECORDED)
async def test_project_json_reproduces_the_recorded_body(client: httpx.AsyncClient, name: str) -> None:
    golden = _recorded(name, "project")
    golden["urls"] = _by_filename(golden["urls"])
    golden["releases"] = {v: _by_filename(files) for v, files in golden["releases"].items()}
    response = await client.get(f"/pypi/{name}/json")
    assert response.status_code == 200
    assert response.content == encode(golden)


@pytest.mark.anyio
@pytest.mark.parametrize("name", RECORDED)
async def test_simple_json_reproduces_the_recorded_page(client: httpx.AsyncClient, name: str) -> None:
    """The recording upstream speaks API 1.1 (string serial, no core-metadata/provenance/status keys),
    sorts `versions` as strings and lists file-less ones, and orders a version's files arbitrarily: those are
    brought to Warehouse's 1.4 rules using the recorded project JSON. Its JSON API also gives some projects
    relative file URLs where Simple gives absolute ones: the state keeps the JSON API's. Every other byte
    must match."""
    golden = _recorded(name, "simple")
    project = _recorded(name, "project")
    files = {f["filename"]: f for files in project["releases"].values() for f in files}
    version_of = {f["filename"]: v for v, files in project["releases"].items() for f in files}
    golden["files"].sort(key=lambda f: (version_key(version_of[f["filename"]]), f["filename"]))
    golden["meta"] = {"_last-serial": int(golden["meta"]["_last-serial"]), "api-version": "1.4"}
    golden["project-status"] = {"status": "active"}
    with_files = set(version_of.values())
    golden["versions"] = sorted((v for v in golden["versions"] if v in with_files), key=version_key)
    for file in golden["files"]:
        file["core-metadata"] = file["data-dist-info-metadata"] = files[file["filename"]]["core-metadata"]
        file["provenance"] = None
        file["url"] = files[file["filename"]]["url"]
    response = await client.get(f"/simple/{name}/", headers={"Accept": SIMPLE_JSON})
    assert response.status_code == 200
    assert response.headers["content-type"] == SIMPLE_JSON
    assert response.content == encode(golden)


# --- JSON API -------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_json_headers_etag_and_304(client: httpx.AsyncClient) -> None:
    response = await client.get("/pypi/roundup/json")
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-pypi-last-serial"] == "3977000"
    assert response.headers["cache-control"] == "max-age=900, public"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.content.endswith(b"\n")
    assert response.json()["last_serial"] == 3977000
    etag = response.headers["etag"]
    again = await client.get("/pypi/roundup/json", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert (await client.get("/pypi/roundup/json/")).content == response.content


@pytest.mark.anyio
async def test_roundup_release_file(client: httpx.AsyncClient) -> None:
    document = (await client.get("/pypi/roundup/1.6.0/json")).json()
    assert "releases" not in document
    (file,) = document["urls"]
    assert file["url"] == (
        "https://files.upstream.test/packages/f0/07/"
        "6f4e2164ed82dfff873ee55181f782926bcb4a29f6a83fe4f8b9cbf5489c/roundup-1.6.0.tar.gz"
    )
    assert file["upload_time_iso_8601"] == "2018-07-13T11:30:36.405653Z"
    assert file["upload_time"] == "2018-07-13T11:30:36"
    assert file["md5_digest"] == "54d587da7c3d9c83f13d04674cacdc2a"
    assert (file["size"], file["has_sig"], file["downloads"]) == (2893499, False, -1)
    assert len(document["info"]) == 30
    assert document["info"]["release_url"] == "https://upstream.test/project/roundup/1.6.0/"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/pypi/Roundup/json", "https://upstream.test/pypi/roundup/json"),
        ("/pypi/Zope.Interface_Demo/4.0/json", "https://upstream.test/pypi/zope-interface-demo/4.0/json"),
        ("/simple/Zope.Interface_Demo/", "https://upstream.test/simple/zope-interface-demo/"),
        ("/simple/roundup", "https://upstream.test/simple/roundup/"),
    ],
)
async def test_redirects(client: httpx.AsyncClient, path: str, location: str) -> None:
    response = await client.get(path)
    assert response.status_code == 301
    assert response.headers["location"] == location


@pytest.mark.anyio
async def test_not_found(client: httpx.AsyncClient) -> None:
    for path in ("/pypi/nope/json", "/pypi/empty-project/json", "/pypi/roundup/9.9/json"):
        response = await client.get(path)
        assert (response.status_code, response.json()) == (404, {"message": "Not Found"}), path
    simple = await client.get("/simple/nope/")
    assert (simple.status_code, simple.text, simple.headers["content-type"]) == (
        404,
        "404 Not Found",
        "text/plain; charset=utf-8",
    )
    assert (await client.get("/elsewhere")).status_code == 404


def _project(versions: list[str], yanked: set[str] = frozenset()) -> Project:  # type: ignore[assignment]
    created = dt.datetime(2020, 1, 1)
    releases = [Release(v, created, full_info({}), yanked=v in yanked) for v in versions]
    return Project("p", 1, created, releases)


@pytest.mark.parametrize(
    ("versions", "yanked", "chosen"),
    [
        (["1.0", "2.0", "4.0.dev0", "3.0"], set(), "3.0"),
        (["1.0.dev0", "2.0.dev0", "3.0.dev0"], set(), "3.0.dev0"),
        (["1.0", "2.0", "4.0.dev0", "3.0"], {"1.0", "2.0", "4.0.dev0", "3.0"}, "3.0"),
        (["1.0", "3.0", "3.0.dev0", "2.0"], {"3.0"}, "2.0"),
        (["1.0", "2.0", "3.0", "3.0.dev0", "2.0.dev0"], {"1.0", "2.0", "3.0", "3.0.dev0"}, "2.0.dev0"),
    ],
)
def test_latest_release_choice(versions: list[str], yanked: set[str], chosen: str) -> None:
    latest = _project(versions, yanked).latest()
    assert latest is not None and latest.version == chosen


@pytest.mark.parametrize(
    ("versions", "requested", "found"),
    [
        (["0.1", "1.0", "2.0", "3.0"], "3.0", "3.0"),
        (["0.1", "1.0", "2.0", "3.0.0"], "3.0", "3.0.0"),
        (["0.1", "1.0", "2.0", "3.0.0", "3.0.0.0.0"], "3.0.0.0.0", "3.0.0.0.0"),
        (["3.0.0", "3.0.0.0"], "3.0", None),
        (["0.1", "1.0"], "3.0", None),
    ],
)
def test_canonical_version_lookup(versions: list[str], requested: str, found: str | None) -> None:
    release = _project(versions).find_version(requested)
    assert (release.version if release else None) == found


@pytest.mark.anyio
async def test_odd_versions(client: httpx.AsyncClient) -> None:
    document = (await client.get("/pypi/oddversions/json")).json()
    assert document["info"]["version"] == "3.0.0"
    assert document["releases"]["2.0.dev3"] == []
    assert (await client.get("/pypi/oddversions/3.0/json")).json()["info"]["version"] == "3.0.0"
    assert (await client.get("/pypi/oddversions/2004d/json")).json()["info"]["version"] == "2004d"
    page = (await client.get("/simple/oddversions/", headers={"Accept": SIMPLE_JSON})).json()
    # packaging_legacy order: the legacy 2004d first, then PEP 440 order; file-less 2.0.dev3 left out.
    assert page["versions"] == ["2004d", "0.9.8-r1", "1.0-beta", "1.0", "2.0rc1", "3.0.0"]


@pytest.mark.anyio
async def test_all_yanked_and_ownership_and_unicode(client: httpx.AsyncClient) -> None:
    info = (await client.get("/pypi/all-yanked/json")).json()["info"]
    assert (info["version"], info["yanked"], info["yanked_reason"]) == ("3.0", True, "broken")
    roles = (await client.get("/pypi/case-owners/json")).json()["ownership"]["roles"]
    assert [(r["role"], r["user"]) for r in roles] == [
        ("Owner", "Alice"),
        ("Owner", "alice"),
        ("Owner", "bob"),
        ("Maintainer", "Bob"),
        ("Maintainer", "Zed"),
        ("Maintainer", "alice"),
    ]
    raw = (await client.get("/pypi/unicode-chaos/json")).content
    assert "Hello… 日本語".encode() in raw
    assert b"\\u001b" in raw and b"\\u0000" in raw


# --- Simple API -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, "text/html"),
        ("text/plain", "text/html"),
        (SIMPLE_JSON, SIMPLE_JSON),
        ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.v1+html"),
        (f"text/html, application/vnd.pypi.simple.v1+html, {SIMPLE_JSON}", "text/html"),
        (f"text/html;q=0.01, application/vnd.pypi.simple.v1+html;q=0.2, {SIMPLE_JSON};q=1", SIMPLE_JSON),
    ],
)
def test_content_negotiation(accept: str | None, chosen: str) -> None:
    assert negotiate(accept) == chosen


@pytest.mark.anyio
async def test_simple_index_and_html(client: httpx.AsyncClient, fake: FakeIndex) -> None:
    index = await client.get("/simple/", headers={"Accept": SIMPLE_JSON})
    body = index.json()
    assert index.headers["vary"] == "Accept"
    assert body["meta"] == {"_last-serial": fake.state.serial, "api-version": "1.4"}
    assert index.headers["x-pypi-last-serial"] == str(fake.state.serial)
    names = [p["name"] for p in body["projects"]]
    assert "Zope.Interface_Demo" in names and "empty-project" in names
    assert names == sorted(names, key=lambda n: re.sub(r"[-_.]+", "-", n).lower())
    html = await client.get("/simple/nofiles/")
    assert html.headers["content-type"].startswith("text/html")
    assert 'data-requires-python="&gt;=3.8"' in html.text
    assert 'data-core-metadata="sha256=' in html.text and "#sha256=" in html.text
    yanked = (await client.get("/simple/all-yanked/")).text
    assert 'data-yanked="broken"' in yanked and 'data-yanked=""' in yanked


# --- RSS ------------------------------------------------------------------------------------------------


def _titles(xml: str) -> list[str]:
    return re.findall(r"<title>(.*?)</title>", xml)[1:]


def _small_index() -> FakeIndex:
    fake = FakeIndex(IndexState())
    fake.add_release("a", "1.0", created="2011-01-01T00:00:00Z", info={"summary": "A"})
    fake.add_release("b", "1.0", created="2012-01-01T00:00:00Z", info={"author_email": "noreply@upstream.test"})
    fake.add_release("c", "1.0", created="2013-01-01T00:00:00Z")
    fake.state.get("a").created = dt.datetime(2011, 1, 1)  # type: ignore[union-attr]
    fake.state.put(Project("empty", 9, dt.datetime(2012, 6, 1)))
    fake.add_release("proj", "1.0.0", created="2018-01-01T00:00:00Z")
    fake.add_release("proj", "3.0.0", created="2019-01-01T00:00:00Z")
    fake.add_release("proj", "2.0.0", created="2020-01-01T00:00:00Z")
    return fake


@pytest.mark.anyio
async def test_rss_feeds() -> None:
    fake = _small_index()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake), base_url="https://upstream.test") as c:
        updates = (await c.get("/rss/updates.xml")).text
        assert _titles(updates) == ["proj 2.0.0", "proj 3.0.0", "proj 1.0.0", "c 1.0", "b 1.0", "a 1.0"]
        assert updates.count("<author>") == 1 and "<author>noreply@upstream.test</author>" in updates
        assert "<pubDate>Fri, 01 Jan 2016" not in updates and "<pubDate>Sun, 01 Jan 2012 00:00:00 GMT" in updates
        assert "<guid>" not in updates
        packages = (await c.get("/rss/packages.xml")).text
        assert _titles(packages) == ["proj added to PyPI", "c added to PyPI", "b added to PyPI", "a added to PyPI"]
        project = await c.get("/rss/project/PROJ/releases.xml")
        assert project.headers["content-type"].startswith("text/xml")
        assert _titles(project.text) == ["2.0.0", "3.0.0", "1.0.0"]
        assert "<link>https://upstream.test/project/proj/2.0.0/</link>" in project.text
        assert (await c.get("/rss/project/nope/releases.xml")).status_code == 404


def test_rss_description_drops_control_characters(fake: FakeIndex) -> None:
    from testkit.fakeindex.render_rss import project_releases

    xml = project_releases(fake.project("unicode-chaos"), fake.urls).decode()
    assert "<description>Hello… 日本語 [31mred[0m tabhere</description>" in xml


# --- switches -------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_failures_and_request_log(client: httpx.AsyncClient, fake: FakeIndex) -> None:
    fake.fail("/pypi/roundup/*", status=503, times=1)
    assert (await client.get("/pypi/roundup/json")).status_code == 503
    assert (await client.get("/pypi/roundup/json")).status_code == 200
    fake.fail(re.compile(r"^/simple/"), exception=httpx.ConnectError)
    with pytest.raises(httpx.ConnectError):
        await client.get("/simple/roundup/")
    assert fake.count("/pypi/*") == 2 and fake.count() == 3
    assert fake.requests[0].host == "upstream.test" and fake.requests[0].method == "GET"
    fake.requests.clear()
    fake.clear_rules()
    await client.get("/simple/roundup/?x=1", headers={"Accept": SIMPLE_JSON})
    assert fake.requests[0].path == "/simple/roundup/?x=1"
    assert fake.requests[0].headers["accept"] == SIMPLE_JSON


@pytest.mark.anyio
async def test_slow(client: httpx.AsyncClient, fake: FakeIndex) -> None:
    import time

    fake.slow("/pypi/*", 0.2, times=1)
    start = time.monotonic()
    await client.get("/pypi/roundup/json")
    assert time.monotonic() - start >= 0.2


@pytest.mark.anyio
async def test_capability_switches(client: httpx.AsyncClient, fake: FakeIndex) -> None:
    fake.per_version_json = False
    assert (await client.get("/pypi/roundup/1.6.0/json")).status_code == 404
    fake.json_simple = False
    page = await client.get("/simple/roundup/", headers={"Accept": SIMPLE_JSON})
    assert page.headers["content-type"].startswith("text/html")
    fake.rss = False
    assert (await client.get("/rss/updates.xml")).status_code == 404
    fake.serial_headers = False
    fake.ownership = False
    response = await client.get("/pypi/roundup/json")
    assert "x-pypi-last-serial" not in response.headers
    assert "last_serial" not in response.json() and "ownership" not in response.json()
    fake.json_simple = True
    index = (await client.get("/simple/", headers={"Accept": SIMPLE_JSON})).json()
    assert "_last-serial" not in index["meta"] and "_last-serial" not in index["projects"][0]


@pytest.mark.anyio
async def test_serials_and_add_release(client: httpx.AsyncClient, fake: FakeIndex) -> None:
    before = fake.state.serial
    assert fake.bump_serial("roundup") == before + 1
    assert (await client.get("/pypi/roundup/json")).headers["x-pypi-last-serial"] == str(before + 1)
    fake.set_serial("roundup", before + 50)
    assert fake.state.serial == before + 50
    fake.add_release(
        "roundup",
        "2.0.0",
        info={"summary": "new"},
        files=[fake.project("nofiles").releases[1].files[0]],
        created="2024-01-01T00:00:00Z",
    )
    document = (await client.get("/pypi/roundup/json")).json()
    assert document["info"]["version"] == "2.0.0"
    assert document["last_serial"] == before + 52
    fake.add_release("Brand_New", "0.1")
    assert (await client.get("/pypi/brand-new/json")).json()["info"]["name"] == "Brand_New"


# --- files ----------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_file_serving_and_range(client: httpx.AsyncClient) -> None:
    url = "https://files.upstream.test/packages/f0/07/6f4e2164ed82dfff873ee55181f782926bcb4a29f6a83fe4f8b9cbf5489c/roundup-1.6.0.tar.gz"
    whole = await client.get(url)
    assert (whole.status_code, len(whole.content), whole.headers["content-length"]) == (200, 2893499, "2893499")
    part = await client.get(url, headers={"Range": "bytes=10-19"})
    assert (part.status_code, part.content) == (206, whole.content[10:20])
    assert part.headers["content-range"] == "bytes 10-19/2893499"
    assert (await client.get(url.replace("f0/07", "f0/08"))).status_code == 404
    assert (await client.get("https://files.upstream.test/pypi/roundup/json")).status_code == 404
    metadata_url = (await client.get("/pypi/nofiles/json")).json()["urls"][0]["url"] + ".metadata"
    assert (await client.get(metadata_url)).text.startswith("Metadata-Version: 2.1")
    relative = await client.get("/packages/ab/cd/relative_urls-1.0.tar.gz")
    assert (relative.status_code, len(relative.content)) == (200, 2048)


def test_served_on_localhost() -> None:
    fake = FakeIndex()
    with serve_in_thread(fake) as base:
        fake.set_urls(base)
        with httpx.Client(base_url=base) as client:
            document = client.get("/pypi/roundup/1.6.0/json").json()
            url = document["urls"][0]["url"]
            assert url.startswith(f"{base}/files/packages/f0/07/")
            assert document["info"]["package_url"] == f"{base}/project/roundup/"
            response = client.get(url, headers={"Range": "bytes=0-3"})
            assert (response.status_code, len(response.content)) == (206, 4)
    assert fake.requests[-1].host == base.removeprefix("http://")
