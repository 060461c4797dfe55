"""The only code that speaks HTTP to the index.

Every URL is built here from the configured base and path segments that were checked and quoted;
redirects are followed by hand, at most three, and only within the origin the request started on.
Statuses other than 200, 304 and 404 and every transport failure become `UpstreamUnavailable`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

from shim import __version__
from shim.errors import UpstreamUnavailable
from shim.names import path_segment
from shim.urls import UpstreamURL, redact_url

__all__ = ["PASSED_HEADERS", "SIMPLE_JSON", "USER_AGENT", "Fetched", "Upstream", "build_client", "passed_headers"]

logger = logging.getLogger("shim.upstream")

USER_AGENT = f"pypi-xmlrpc-shim/{__version__} httpx/{httpx.__version__}"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
MAX_REDIRECTS = 3
# What a client of a passed-through document or file sees of the upstream's answer.
PASSED_HEADERS = (
    "content-type",
    "etag",
    "last-modified",
    "cache-control",
    "vary",
    "x-pypi-last-serial",
    "content-range",
    "accept-ranges",
    "content-length",
)


@dataclass(frozen=True)
class Fetched:
    """One upstream answer: 200 (a body), 304 (not modified) or 404 (not found)."""

    url: str  # after redirects
    status: int
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None
    serial: int | None  # X-PyPI-Last-Serial, where the upstream sends it
    headers: dict[str, str] = field(default_factory=dict)  # those a pass-through keeps (PASSED_HEADERS)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.rpartition("@")[2].lower()


def _serial(headers: httpx.Headers) -> int | None:
    value = headers.get("x-pypi-last-serial", "").strip()
    return int(value) if value.isdigit() else None


def passed_headers(headers: httpx.Headers) -> dict[str, str]:
    return {name: headers[name] for name in PASSED_HEADERS if name in headers and name != "content-length"}


def build_client(
    *, timeout: float, ca_bundle: str | None = None, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The one HTTP client: explicit timeouts, our User-Agent, HTTPS_PROXY/NO_PROXY honoured, no auto-redirects."""
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout),
        verify=ca_bundle or True,
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        trust_env=True,
    )


class Upstream:
    """GETs of the index's documents, by kind, with conditional requests."""

    def __init__(self, client: httpx.AsyncClient, upstream: UpstreamURL) -> None:
        self.client = client
        self.base = upstream.base
        self._auth: httpx.Auth | None = None
        if upstream.credentials is not None:
            creds = upstream.credentials
            self._auth = httpx.BasicAuth(creds.username, creds.password.reveal())

    def project_url(self, normalized: str) -> str:
        return f"{self.base}pypi/{path_segment(normalized)}/json"

    def version_url(self, normalized: str, version: str) -> str:
        return f"{self.base}pypi/{path_segment(normalized)}/{path_segment(version)}/json"

    @property
    def simple_index_url(self) -> str:
        return f"{self.base}simple/"

    async def get(self, url: str, *, accept: str | None = None, etag: str | None = None) -> Fetched:
        """GET `url`; a 304 answers a matching `etag`. Credentials go only to the upstream's own origin."""
        start_origin = _origin(url)
        if start_origin[0] not in ("http", "https"):
            raise UpstreamUnavailable(redact_url(url), "not an http(s) URL")
        headers = {}
        if accept:
            headers["Accept"] = accept
        if etag:
            headers["If-None-Match"] = etag
        auth = self._auth if start_origin == _origin(self.base) else None
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = await self.client.get(url, headers=headers, auth=auth or httpx.USE_CLIENT_DEFAULT)
            except httpx.HTTPError as exc:
                raise UpstreamUnavailable(redact_url(url), f"{type(exc).__name__}: {exc}") from None
            if response.has_redirect_location:
                location = response.headers.get("location", "")
                target = urljoin(url, location)
                if _origin(target) != start_origin:
                    raise UpstreamUnavailable(redact_url(url), f"redirect to another origin: {redact_url(target)}")
                url = target
                continue
            if response.status_code in (200, 304, 404):
                return Fetched(
                    url=url,
                    status=response.status_code,
                    body=response.content if response.status_code == 200 else b"",
                    content_type=response.headers.get("content-type", "").split(";")[0].strip().lower(),
                    etag=response.headers.get("etag"),
                    last_modified=response.headers.get("last-modified"),
                    serial=_serial(response.headers),
                    headers=passed_headers(response.headers),
                )
            raise UpstreamUnavailable(redact_url(url), f"HTTP {response.status_code}")
        raise UpstreamUnavailable(redact_url(url), f"more than {MAX_REDIRECTS} redirects")

    @asynccontextmanager
    async def stream(self, url: str, *, headers: dict[str, str] | None = None) -> AsyncIterator[httpx.Response]:
        """A file, streamed: the response is open until the block ends. No redirects, no credentials
        beyond the upstream's own origin; the read timeout is an idle timeout, never a whole-file deadline.
        `headers` carries the client's Range and conditional headers."""
        if _origin(url)[0] not in ("http", "https"):
            raise UpstreamUnavailable(redact_url(url), "not an http(s) URL")
        auth = self._auth if _origin(url) == _origin(self.base) else None
        request = self.client.build_request("GET", url, headers=headers or {})
        try:
            response = await self.client.send(request, auth=auth or httpx.USE_CLIENT_DEFAULT, stream=True)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(redact_url(url), f"{type(exc).__name__}: {exc}") from None
        try:
            yield response
        finally:
            await response.aclose()
