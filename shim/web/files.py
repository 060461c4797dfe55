"""The file proxy: with `SHIM_FILES=proxy`, files are streamed from the upstream's files host at
`/packages/...`, with Range and conditionals passed on and a size cap; and file URLs in documents are
rewritten to point here. With `direct` (the default) `/packages/` is 404: no open file proxy.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from urllib.parse import urljoin

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from shim.config.settings import Settings
from shim.errors import UpstreamError
from shim.modes import FilesMode
from shim.upstream.answers import passed_headers
from shim.upstream.client import Upstream
from shim.upstream.origins import FilesHost
from shim.web.responses import not_found, unavailable

__all__ = ["FileProxy"]

logger = logging.getLogger(__name__)

# A file path under /packages/: Warehouse's hash directories and a distribution's file name.
_FILE_PATH = re.compile(r"(?:[A-Za-z0-9_.+!~-]+/)*[A-Za-z0-9_.+!~-]+")


class FileProxy:
    def __init__(self, settings: Settings, upstream: Upstream, files_host: FilesHost) -> None:
        self.settings = settings
        self.upstream = upstream
        self.files_host = files_host

    @property
    def files_base(self) -> str | None:
        """The upstream's files host, as `<base>packages/...` names it: configured, else learnt from documents."""
        return self.files_host.base

    def file_url(self, url: str, document_url: str, service: str) -> str:
        """A file URL as the client must see it: absolute, and on this service when files are proxied."""
        absolute = urljoin(document_url, url)
        head, marker, rest = absolute.partition("/packages/")
        if not marker:
            return absolute
        self.files_host.learn(absolute)
        if self.settings.files is FilesMode.PROXY and self.files_base == head + "/":
            return f"{service}packages/{rest}"
        return absolute

    async def file(self, request: Request) -> Response:
        path = request.path_params["path"]
        if self.settings.files is not FilesMode.PROXY or self.files_base is None:
            return not_found("text")
        if not _FILE_PATH.fullmatch(path) or any(part in (".", "..") for part in path.split("/")):
            return not_found("text")
        url = f"{self.files_base}packages/{path}"
        stack = contextlib.AsyncExitStack()
        try:
            upstream = await stack.enter_async_context(self.upstream.stream(url, headers=_conditional(request)))
        except UpstreamError as exc:
            await stack.aclose()
            return unavailable(exc)
        declared = upstream.headers.get("content-length", "")
        if upstream.status_code not in (200, 206, 304) or (
            declared.isdigit() and int(declared) > self.settings.max_file_bytes
        ):
            await stack.aclose()
            if upstream.status_code == 404:
                return not_found("text")
            if upstream.status_code in (200, 206):
                return PlainTextResponse(
                    f"This file is larger than SHIM_MAX_FILE_BYTES ({self.settings.max_file_bytes}).\n",
                    status_code=403,
                )
            return PlainTextResponse(f"The files host answered HTTP {upstream.status_code}.\n", status_code=502)
        headers = passed_headers(upstream.headers)
        if "content-length" in upstream.headers:
            headers["content-length"] = upstream.headers["content-length"]
        if request.method == "HEAD" or upstream.status_code == 304:
            await stack.aclose()
            return Response(status_code=upstream.status_code, headers=headers)
        limit = self.settings.max_file_bytes

        async def body() -> AsyncIterator[bytes]:
            sent = 0
            try:
                async for chunk in upstream.aiter_raw():
                    sent += len(chunk)
                    if sent > limit:  # a files host that understated the length: cut it off
                        logger.warning("stopped streaming %s past SHIM_MAX_FILE_BYTES", path)
                        return
                    yield chunk
            finally:
                await stack.aclose()

        return _Streamed(body(), stack, status_code=upstream.status_code, headers=headers)


class _Streamed(StreamingResponse):
    """A streamed file whose upstream stream closes however the response ends: sent, cut off, or never started
    because the client had gone (then the body's own `finally` never runs)."""

    def __init__(
        self, body: AsyncIterator[bytes], stack: contextlib.AsyncExitStack, *, status_code: int, headers: dict[str, str]
    ) -> None:
        super().__init__(body, status_code=status_code, headers=headers)
        self.stack = stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.stack.aclose()


def _conditional(request: Request) -> dict[str, str]:
    names = ("range", "if-range", "if-none-match", "if-modified-since")
    return {name: request.headers[name] for name in names if name in request.headers}
