"""The document cache's memory: its byte budget holds as tracemalloc measures what it keeps, whatever the shape of
the documents, and parsing a large document leaves the event loop free for other calls."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
import xmlrpc.client
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shim.app import create_app
from shim.upstream.cache import MemoryStorage, footprint
from shim.upstream.parsers import CoreMetadata, ProjectDoc, VersionDoc
from testkit.fakeindex import FakeIndex, IndexState, render_json
from testkit.wheels import wheel_file

from .helpers import in_app, make_settings, rpc_for, served
from .transports import Tampered

pytestmark = pytest.mark.heavy  # seconds of memory and volume measurement: run after the fast stage

BUDGET = 1024 * 1024
XML = {"Content-Type": "text/xml"}
ARRIVALS = 0.005


def many_releases(fake: FakeIndex, name: str, releases: int, files: int) -> None:
    for i in range(releases):
        version = f"1.{i}"
        fake.add_release(name, version, files=[wheel_file(name, version, tag=f"py{t}") for t in range(files)])


# Releases without files (many small objects: about 12 bytes in memory per byte of JSON), with one, with a few.
SHAPES = {"bare": (1500, 0, 12), "one file": (120, 1, 8), "three files": (40, 3, 8)}


def _document(fake: FakeIndex, name: str, with_releases: bool) -> bytes:
    project = fake.project(name)
    release = project.latest()
    assert release is not None
    return render_json.encode(render_json.release_document(fake.urls, project, release, with_releases=with_releases))


METADATA = "Metadata-Version: 2.1\nName: meta\nVersion: 1.0\n" + "".join(
    f"Requires-Dist: dep{i} (>=1.{i})\nClassifier: Topic :: {i}\n" for i in range(200)
)


@pytest.mark.parametrize(
    "parse",
    [
        lambda fake: ProjectDoc.from_json(_document(fake, "many-0", True), "u"),
        lambda fake: ProjectDoc.from_json(_document(fake, "many-1", True), "u"),
        lambda fake: VersionDoc.from_json(_document(fake, "many-1", False), "u"),
        lambda fake: CoreMetadata.from_text(METADATA),
    ],
    ids=["project, bare releases", "project, files", "release", "core metadata"],
)
def test_a_parsed_documents_footprint_is_what_tracemalloc_measures(parse: Callable[[FakeIndex], Any]) -> None:
    fake = FakeIndex(IndexState())
    many_releases(fake, "many-0", 1500, 0)
    many_releases(fake, "many-1", 100, 3)
    parse(fake)  # what a first parse creates and keeps (compiled patterns, caches) is no part of a document
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        parsed = parse(fake)
        gc.collect()
        measured = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # No less (the budget holds), a little more where the parser's keys are its code's own strings.
    assert measured * 0.98 <= footprint(parsed) <= measured * 1.1


@pytest.mark.parametrize(("releases", "files", "projects"), SHAPES.values(), ids=SHAPES.keys())
def test_the_cache_holds_no_more_than_its_budget_as_tracemalloc_measures_it(
    releases: int, files: int, projects: int
) -> None:
    fake = FakeIndex(IndexState())
    names = [f"many-{i}" for i in range(projects)]
    for name in names:
        many_releases(fake, name, releases, files)
    with served(fake, cache_max_bytes=BUDGET) as client:
        rpc = rpc_for(client)
        storage = client.app.state.services.store.cache.storage  # type: ignore[attr-defined]
        assert isinstance(storage, MemoryStorage)
        tracemalloc.start()
        try:
            for name in names:  # more than the budget keeps: the least recently used go
                assert len(rpc("package_releases", name)) == 1

            async def held() -> int:
                # What the cache keeps is what emptying it frees: entries, bodies, parsed forms, bookkeeping. The
                # catalog's keeping of what the calls read is over first: its allocations are no part of the cache.
                await client.app.state.services.observations.settled(10)  # type: ignore[attr-defined]
                gc.collect()
                before = tracemalloc.get_traced_memory()[0]
                for key in list(storage._entries):
                    await storage.delete(key)
                gc.collect()
                return before - tracemalloc.get_traced_memory()[0]

            kept = len(storage)
            measured = in_app(client, held)
        finally:
            tracemalloc.stop()
    assert 1 < kept < projects
    assert measured <= BUDGET, f"{measured / BUDGET:.2f}x the budget"
    assert measured >= BUDGET * 0.7, f"{measured / BUDGET:.2f}x the budget: counted beyond what it holds"


@pytest.mark.anyio
async def test_a_large_document_is_parsed_while_other_calls_are_answered() -> None:
    fake = FakeIndex()
    many_releases(fake, "huge", 2000, 2)
    body = _document(fake, "huge", True)  # about 3 MB: a parse of tens of milliseconds
    app = create_app(make_settings(rate_limit=None), transport=Tampered(fake, "/pypi/huge/json", body))
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shim.test") as client:

        async def call(method: str, *params: Any) -> float:
            """One call; when it was answered (the loop's time)."""
            sent = xmlrpc.client.dumps(params, method).encode()
            xmlrpc.client.loads((await client.post("/pypi", content=sent, headers=XML)).content)
            return loop.time()

        async def arriving(at: float) -> tuple[float, float]:
            """A call that arrives at `at`: when it was answered, and how long after it came."""
            await asyncio.sleep(at - loop.time())
            answered = await call("package_releases", "roundup")
            return answered, answered - at

        await call("package_releases", "roundup")  # the Simple index loaded, and roundup's document cached
        start = loop.time()
        large = asyncio.create_task(call("package_roles", "huge"))
        others: list[asyncio.Task[tuple[float, float]]] = []
        while not large.done():  # a call arrives every few milliseconds, answered from memory
            while start + len(others) * ARRIVALS <= loop.time():  # those that came while the loop was held
                others.append(asyncio.create_task(arriving(start + len(others) * ARRIVALS)))
            await asyncio.sleep(ARRIVALS / 2)
        answers = await asyncio.gather(*others)
    end = await large
    # Parsed on the event loop, the document would hold every call that came meanwhile until it was done.
    assert len([answered for answered, _ in answers if answered < end]) >= 3, answers
    assert max(wait for _, wait in answers) < 0.8 * (end - start), (answers, end - start)
