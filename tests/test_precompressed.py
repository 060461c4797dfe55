"""Whole-index answers are deflated once per snapshot of the index and kept so, compressed only: each call frames the
stored stream for its client (gzip, zlib), or inflates it as it is sent (identity), and compresses nothing."""

from __future__ import annotations

import asyncio
import gzip
import random
import threading
import tracemalloc
import xmlrpc.client
import zlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
from packaging.utils import canonicalize_name
from starlette.testclient import TestClient

from shim.methods.reading import memo
from shim.xmlrpc.compressed import CHUNK, Deflated
from shim.xmlrpc.protocol import Raw, WireError, dump_response, encode_value
from testkit.fakeindex import FakeIndex
from testkit.fakeindex.state import IndexState, Project

from .helpers import after_first_pass, raw_post, served, value_of

WHOLE_INDEX = ["list_packages", "list_packages_with_serial"]


def rpc_body(method: str, *params: Any) -> bytes:
    return xmlrpc.client.dumps(params, methodname=method, allow_none=True).encode()


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with served(FakeIndex(), compress_min_bytes=0) as client:
        after_first_pass(client)  # the refresher's first look is over: the snapshot stays
        yield client


def stored(client: TestClient) -> dict[str, Any]:
    answers: dict[str, Any] = client.app.state.services.index.snapshot.answers  # type: ignore[attr-defined]
    return answers


@pytest.mark.parametrize("method", WHOLE_INDEX)
def test_a_whole_index_answer_is_the_same_in_every_coding_and_in_a_multicall(client: TestClient, method: str) -> None:
    plain = raw_post(client, rpc_body(method), None)
    gzipped = raw_post(client, rpc_body(method), "gzip")
    zlibbed = raw_post(client, rpc_body(method), "deflate")
    value = value_of(plain.raw_bytes)
    assert value  # the fake index has projects
    assert plain.raw_bytes == dump_response(value)  # byte for byte what Warehouse renders
    assert "content-encoding" not in plain.headers
    assert (gzipped.headers["content-encoding"], zlibbed.headers["content-encoding"]) == ("gzip", "deflate")
    assert gzip.decompress(gzipped.raw_bytes) == plain.raw_bytes
    assert zlib.decompress(zlibbed.raw_bytes) == plain.raw_bytes
    for response in (plain, gzipped, zlibbed):
        assert response.headers["content-length"] == str(len(response.raw_bytes))
    # Inflated into its slot as it is sent, and not compressed again (that would be per request).
    multicall = raw_post(client, rpc_body("system.multicall", [{"methodName": method, "params": []}]), "gzip")
    assert "content-encoding" not in multicall.headers
    assert multicall.headers["content-length"] == str(len(multicall.raw_bytes))
    assert value_of(multicall.raw_bytes) == [[value]]


def test_the_snapshot_keeps_whole_index_answers_compressed_only(client: TestClient) -> None:
    plain = {method: raw_post(client, rpc_body(method), None).raw_bytes for method in WHOLE_INDEX}
    answers = stored(client)
    assert set(answers) == {f"{method}:False" for method in WHOLE_INDEX}
    for key, answer in answers.items():
        assert type(answer) is Deflated, key  # no Raw, no bytes: nothing uncompressed is kept
        assert all(type(part) is bytes for part in answer.parts)
        assert zlib.decompress(b"".join(answer.parts), -zlib.MAX_WBITS) == plain[key.split(":")[0]]


def test_a_second_call_compresses_nothing(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    compressions: list[str] = []
    compressobj, compress = zlib.compressobj, zlib.compress

    def counted_compressobj(*args: Any, **kwargs: Any) -> Any:
        compressions.append("compressobj")
        return compressobj(*args, **kwargs)

    def counted_compress(*args: Any, **kwargs: Any) -> bytes:
        compressions.append("compress")
        return compress(*args, **kwargs)

    monkeypatch.setattr(zlib, "compressobj", counted_compressobj)
    monkeypatch.setattr(zlib, "compress", counted_compress)
    first = raw_post(client, rpc_body("package_releases", "roundup"), "gzip")  # an ordinary answer is compressed
    assert first.headers["content-encoding"] == "gzip" and compressions
    raw_post(client, rpc_body("list_packages_with_serial"), "gzip")  # stored by now, or stored here
    kept = stored(client)["list_packages_with_serial:False"]
    compressions.clear()
    for accept in ("gzip", "deflate", None):
        raw_post(client, rpc_body("list_packages_with_serial"), accept)
    assert compressions == []
    assert stored(client)["list_packages_with_serial:False"] is kept


def value_chunks(count: int) -> Iterator[bytes]:
    """A `<value>` array of `count` strings, encoded a chunk at a time."""
    yield b"<value><array><data>\n"
    for start in range(0, count, 1000):
        yield "".join(
            f"<value><string>project-{i:07d}</string></value>\n" for i in range(start, min(start + 1000, count))
        ).encode()
    yield b"</data></array></value>\n"


def test_a_deflated_answer_frames_and_inflates_to_the_response() -> None:
    names = [f"project-{i:07d}" for i in range(5_000)]  # 220 kB: a few pieces of CHUNK
    answer = Deflated.response(value_chunks(len(names)))
    response = dump_response(names)
    assert answer.size == len(response) and answer.compressed_size < len(response) / 5
    length, pieces = answer.as_gzip()
    framed = b"".join(pieces)
    assert (len(framed), gzip.decompress(framed)) == (length, response)
    length, pieces = answer.as_zlib()
    framed = b"".join(pieces)
    assert (len(framed), zlib.decompress(framed)) == (length, response)
    inflated = list(answer.inflated())
    assert b"".join(inflated) == response
    assert len(inflated) > 1 and max(len(piece) for piece in inflated) <= CHUNK  # never the whole answer at once
    element = answer.element()
    assert len(element) == encode_value(names).size
    assert b"".join(element) == encode_value(names).xml.encode()


def fake_context() -> Any:
    return SimpleNamespace(allow_i8=False)


@pytest.mark.parametrize(
    "build",
    [
        lambda: ["a", "b"],  # a value, encoded here
        lambda: Raw("<value><array><data>\n", "<value><string>a</string></value>\n", "</data></array></value>\n"),
        lambda: iter(
            [
                b"<value><array><data>\n<value><string>a</string></value>\n",
                b"<value><string>b</string></value>\n</data></array></value>\n",
            ]
        ),
    ],
    ids=["value", "raw", "chunks"],
)
def test_memo_takes_a_value_a_raw_or_encoded_chunks(build: Any) -> None:
    snapshot = cast(Any, SimpleNamespace(answers={}))
    answer = asyncio.run(memo(fake_context(), snapshot, "list_packages", build))
    assert snapshot.answers == {"list_packages:False": answer}
    assert asyncio.run(memo(fake_context(), snapshot, "list_packages", lambda: pytest.fail("built twice"))) is answer
    assert value_of(b"".join(answer.inflated())) == (["a"] if isinstance(build(), Raw) else ["a", "b"])


@pytest.mark.heavy  # 8 MB encoded as it is compressed, memory measured
def test_memo_compresses_chunks_as_they_come() -> None:
    count = 200_000
    snapshot = cast(Any, SimpleNamespace(answers={}))
    tracemalloc.start()
    try:
        answer = asyncio.run(memo(fake_context(), snapshot, "list_packages", lambda: value_chunks(count)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.size > 8_000_000
    assert peak < answer.size / 5, f"{peak} bytes at the peak for an answer of {answer.size}"


def realistic_names(count: int) -> list[str]:
    """Project names as an index has them: words, separators, versions and digits, deterministically."""
    rng = random.Random(15)
    words = [
        "py",
        "django",
        "flask",
        "data",
        "test",
        "lib",
        "tool",
        "net",
        "json",
        "yaml",
        "async",
        "http",
        "cli",
        "core",
        "utils",
        "ml",
        "aws",
        "sdk",
        "api",
    ]
    words += [
        "client",
        "server",
        "plugin",
        "parser",
        "stream",
        "cloud",
        "auth",
        "cache",
        "queue",
        "graph",
        "image",
        "text",
        "web",
    ]
    names: dict[str, str] = {}  # by normalised name: one project each
    while len(names) < count:
        parts = [rng.choice(words) for _ in range(rng.randint(1, 3))]
        name = rng.choice("-_.").join(parts) + (str(rng.randint(0, 9999)) if rng.random() < 0.5 else "")
        names.setdefault(canonicalize_name(name), name.title() if rng.random() < 0.1 else name)
    return sorted(names.values())


@pytest.mark.heavy  # a Simple index of 100,000 projects
def test_the_listing_with_serials_is_five_times_smaller_in_gzip() -> None:
    names = realistic_names(100_000)
    rng = random.Random(1)
    fake = FakeIndex(IndexState(Project(name, last_serial=rng.randint(1, 25_000_000), created=None) for name in names))
    with served(fake) as client:
        after_first_pass(client)
        plain = raw_post(client, rpc_body("list_packages_with_serial"), None)
        gzipped = raw_post(client, rpc_body("list_packages_with_serial"), "gzip")
        kept = stored(client)["list_packages_with_serial:False"]
    assert len(value_of(plain.raw_bytes)) == 100_000
    assert gzip.decompress(gzipped.raw_bytes) == plain.raw_bytes
    assert len(gzipped.raw_bytes) * 5 <= len(plain.raw_bytes), (len(gzipped.raw_bytes), len(plain.raw_bytes))
    assert kept.compressed_size * 5 <= kept.size


def test_a_whole_index_answer_is_built_once_off_the_event_loop_for_the_callers_that_come_at_once() -> None:
    built_in: list[threading.Thread] = []

    def build() -> Iterator[bytes]:
        built_in.append(threading.current_thread())
        return iter([b"<value><array><data>\n</data></array></value>\n"])

    async def main() -> tuple[Any, Any, threading.Thread]:
        snapshot = cast(Any, SimpleNamespace(answers={}))
        first, second = await asyncio.gather(
            memo(fake_context(), snapshot, "list_packages", build),
            memo(fake_context(), snapshot, "list_packages", build),
        )
        return first, second, threading.current_thread()

    first, second, loop_thread = asyncio.run(main())
    assert first is second and len(built_in) == 1 and built_in[0] is not loop_thread


def test_a_build_that_fails_fails_its_callers_and_the_next_call_builds_again() -> None:
    snapshot = cast(Any, SimpleNamespace(answers={}))

    def failing() -> Any:
        raise WireError("integer 4294967296 is outside the range the client can read")

    with pytest.raises(WireError):
        asyncio.run(memo(fake_context(), snapshot, "list_packages", failing))
    assert snapshot.answers == {}
    answer = asyncio.run(memo(fake_context(), snapshot, "list_packages", lambda: ["a"]))
    assert value_of(b"".join(answer.inflated())) == ["a"]
