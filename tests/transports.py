"""httpx transports that put the fake index behind a misbehaving network, for the failure tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import httpx

from testkit.fakeindex import FakeIndex

__all__ = ["Gate", "Lagging", "Metered", "MisRanged", "SeedHost", "Tampered", "Undeclared", "Unreachable"]


class Tampered(httpx.AsyncBaseTransport):
    """The fake index, but `path` answers `body` (200, JSON) for its first `times` requests."""

    def __init__(self, fake: FakeIndex, path: str, body: bytes, times: int = 1) -> None:
        self.inner = httpx.ASGITransport(app=fake)
        self.path, self.body, self.times = path, body, times

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path and self.times > 0:
            self.times -= 1
            return httpx.Response(200, content=self.body, headers={"Content-Type": "application/json"})
        return await self.inner.handle_async_request(request)


class Gate(httpx.AsyncBaseTransport):
    """The fake index, with `path` (`/simple/`) held, while `holding`, until `opened` is set; `arrived` is set
    once a request is held there."""

    def __init__(self, fake: FakeIndex, *, holding: bool = False, path: str = "/simple/") -> None:
        self.inner = httpx.ASGITransport(app=fake)
        self.holding = holding
        self.path = path
        self.opened = anyio.Event()
        self.arrived = anyio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path and self.holding:
            self.arrived.set()
            await self.opened.wait()
        return await self.inner.handle_async_request(request)


class Lagging(httpx.AsyncBaseTransport):
    """The fake index, but `path` answers an older copy (`stale`) for its first `times` requests: a CDN
    that lags the Simple index."""

    def __init__(self, fake: FakeIndex, path: str, stale: httpx.Response, times: int = 1) -> None:
        self.inner = httpx.ASGITransport(app=fake)
        self.path, self.stale, self.times = path, stale, times

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path and self.times > 0:
            self.times -= 1
            return httpx.Response(200, content=self.stale.content, headers=self.stale.headers)
        return await self.inner.handle_async_request(request)


class Unreachable(httpx.AsyncBaseTransport):
    """The fake index, but `host` cannot be reached (a name that does not resolve, a firewall that drops it):
    every request to it fails to connect. `asked` counts the requests each host was sent."""

    def __init__(self, fake: FakeIndex, host: str) -> None:
        self.inner = httpx.ASGITransport(app=fake)
        self.host = host
        self.asked: dict[str, int] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.asked[host] = self.asked.get(host, 0) + 1
        if host == self.host:
            raise httpx.ConnectError(f"[Errno -2] Name or service not known: {host}", request=request)
        return await self.inner.handle_async_request(request)


class Undeclared(httpx.AsyncBaseTransport):
    """The fake index as a mirror whose JSON says nothing of core metadata: no `core-metadata` (nor its older
    name) on any file of a project or release document."""

    KEYS = ("core-metadata", "data-dist-info-metadata")

    def __init__(self, fake: FakeIndex) -> None:
        self.inner = httpx.ASGITransport(app=fake)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if not (request.url.path.startswith("/pypi/") and response.status_code == 200):
            return response
        await response.aread()
        doc = json.loads(response.content)
        for file in [*doc.get("urls", []), *(f for files in doc.get("releases", {}).values() for f in files)]:
            for key in self.KEYS:
                file.pop(key, None)
        return httpx.Response(200, json=doc, headers={"X-PyPI-Last-Serial": response.headers["x-pypi-last-serial"]})


@dataclass
class Metering:
    """One request through `Metered`: its path, the Range it asked, the status, and the body bytes the client read."""

    path: str
    range: str | None
    status: int
    read: int = 0


class _MeteredStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, metering: Metering, chunk: int) -> None:
        self.inner, self.metering, self.chunk = inner, metering, chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self.inner:
            for start in range(0, len(part), self.chunk):
                piece = part[start : start + self.chunk]
                self.metering.read += len(piece)  # counted as the client takes it: what it read off the wire
                yield piece

    async def aclose(self) -> None:
        await self.inner.aclose()


class Metered(httpx.AsyncBaseTransport):
    """The fake index as a network delivers it: bodies in `chunk`-byte pieces, each counted as the client reads it."""

    def __init__(self, fake: FakeIndex, chunk: int = 16 * 1024) -> None:
        self.inner = httpx.ASGITransport(app=fake)
        self.chunk = chunk
        self.log: list[Metering] = []

    def on(self, path: str) -> list[Metering]:
        return [m for m in self.log if m.path == path]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        metering = Metering(request.url.path, request.headers.get("range"), response.status_code)
        self.log.append(metering)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        stream = _MeteredStream(response.stream, metering, self.chunk)
        return httpx.Response(response.status_code, headers=response.headers, stream=stream, request=request)


class MisRanged(httpx.AsyncBaseTransport):
    """The fake index, but a range request answers a 206 of other bytes than those asked (the file's first ten)."""

    def __init__(self, fake: FakeIndex) -> None:
        self.inner = httpx.ASGITransport(app=fake)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if "range" not in request.headers or response.status_code != 206:
            return response
        await response.aread()
        total = response.headers["content-range"].rpartition("/")[2]
        headers = {"Content-Range": f"bytes 0-9/{total}", "Content-Type": "application/octet-stream"}
        return httpx.Response(206, headers=headers, content=b"PK\x03\x04" + bytes(6), request=request)


class SeedHost(httpx.AsyncBaseTransport):
    """The fake index, and another host (`seeds.test`) serving one file: a catalog snapshot to seed from. `asked`
    lists the requests that host was sent; with `hold`, it never answers."""

    def __init__(
        self,
        fake: FakeIndex,
        body: bytes,
        *,
        host: str = "seeds.test",
        status: int = 200,
        headers: dict[str, str] | None = None,
        hold: bool = False,
    ) -> None:
        self.inner = httpx.ASGITransport(app=fake)
        self.host, self.body, self.status, self.headers, self.hold = host, body, status, headers or {}, hold
        self.asked: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != self.host:
            return await self.inner.handle_async_request(request)
        self.asked.append(request)
        if self.hold:
            await anyio.sleep_forever()
        return httpx.Response(self.status, headers=self.headers, stream=_Streamed(self.body))


class _Streamed(httpx.AsyncByteStream):
    """A body that comes as the network brings one: read as a stream, never at once."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), 65536):
            yield self.body[start : start + 65536]
