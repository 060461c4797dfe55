"""The file proxy's streams: a file larger than memory streams in constant memory, and the upstream stream is
closed however the client's response ends."""

from __future__ import annotations

import contextlib
import tracemalloc
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import anyio
import httpx
import pytest

from shim.app import create_app
from shim.modes import FilesMode
from shim.upstream.urls import UpstreamURL
from testkit.fakeindex import FakeIndex
from testkit.servers import serve_in_thread

from .helpers import make_settings


@pytest.fixture
def fake() -> FakeIndex:
    return FakeIndex()


class BigFiles(httpx.AsyncBaseTransport):
    """The fake index, plus one huge file on the files host, generated as it is read."""

    def __init__(self, fake: FakeIndex, size: int) -> None:
        self.inner = httpx.ASGITransport(app=fake)
        self.size = size

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "files.upstream.test" and request.url.path.endswith("/big-1.0.tar.gz"):
            return httpx.Response(
                200, headers={"Content-Length": str(self.size)}, stream=_Generated(self.size), request=request
            )
        return await self.inner.handle_async_request(request)


class _Generated(httpx.AsyncByteStream):
    def __init__(self, size: int) -> None:
        self.size = size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunk = b"\x5a" * 65536
        for start in range(0, self.size, len(chunk)):
            yield chunk[: min(len(chunk), self.size - start)]


@pytest.mark.heavy
def test_a_file_larger_than_memory_would_hold_is_streamed_in_constant_memory(fake: FakeIndex) -> None:
    size = 256 * 1024 * 1024
    fake.add_release(
        "big",
        "1.0",
        files=[
            {
                "filename": "big-1.0.tar.gz",
                "packagetype": "sdist",
                "python_version": "source",
                "size": size,
                "digests": {"blake2b_256": "ee" * 32, "md5": "0" * 32, "sha256": "1" * 64},
                "upload_time": "2024-01-01T00:00:00Z",
                "comment_text": None,
                "path": "ee/ee/" + "ee" * 30 + "/big-1.0.tar.gz",
            }
        ],
    )
    app = create_app(make_settings(files=FilesMode.PROXY), transport=BigFiles(fake, size))
    with serve_in_thread(app, lifespan="on") as base, httpx.Client(base_url=base) as client:
        url = client.get("/pypi/big/json").json()["urls"][0]["url"]
        tracemalloc.start()
        try:
            received = 0
            with client.stream("GET", url.removeprefix(base)) as response:
                assert response.status_code == 200
                for chunk in response.iter_raw():
                    received += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert received == size
    # Both ends of the stream run in this process: the whole file never sat in memory.
    assert peak < size // 16, f"peak {peak} bytes while streaming {size}"


# The XML-RPC calls and the documents share one cache


class TrackedFile(httpx.AsyncBaseTransport):
    """A files host whose every file is a stream that records whether the service closed it."""

    def __init__(self) -> None:
        self.closed: list[bool] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        closed = self.closed
        closed.append(False)
        index = len(closed) - 1

        class Body(httpx.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                yield b"wheel bytes"

            async def aclose(self) -> None:
                closed[index] = True

        return httpx.Response(200, headers={"Content-Length": "11"}, stream=Body())


def test_a_file_whose_client_is_gone_before_the_first_byte_closes_its_upstream_stream() -> None:
    transport = TrackedFile()
    settings = make_settings(files=FilesMode.PROXY, files_upstream=UpstreamURL.parse("https://files.upstream.test/"))
    app = create_app(settings, transport=transport)
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/packages/ab/cd/x-1.0-py3-none-any.whl", "raw_path": b"", "query_string": b"",
        "headers": [(b"host", b"shim.test")], "client": ("127.0.0.1", 5000), "server": ("shim.test", 80),
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def gone(message: MutableMapping[str, Any]) -> None:
        raise OSError("the client hung up")  # as a server reports a closed socket (ASGI spec 2.4)

    async def request() -> list[bool]:
        with contextlib.suppress(Exception):
            await app(scope, receive, gone)
        return list(transport.closed)  # when the app returns: not left to a finalizer that runs at some later turn

    assert anyio.run(request) == [True]
