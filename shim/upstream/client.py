"""The only code that speaks HTTP to the index.

Every URL is built here from the configured base and path segments that were checked and quoted;
redirects are followed by hand, at most three, and only within the origin the request started on.
Statuses other than 200, 304 and 404 (and 206, 416 where a file's bytes are read) and every transport failure
become `UpstreamUnavailable`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import IO, TYPE_CHECKING
from urllib.parse import urljoin

import httpx

from shim import __version__, encodings, exchange
from shim.errors import UpstreamMalformed, UpstreamUnavailable
from shim.metrics.instruments import Metrics
from shim.upstream.answers import Fetched, Ranged, origin, origin_label, passed_headers
from shim.upstream.names import path_segment
from shim.upstream.optional import OptionalReads
from shim.upstream.parsers import serial_value
from shim.upstream.resilience import Guard, retry_after
from shim.upstream.shared_guard import SharedCircuit
from shim.upstream.urls import UpstreamURL, redact_url

if TYPE_CHECKING:  # the Redis client is loaded only where SHIM_CACHE_URL is set (shim.shared.availability)
    from shim.shared.store import SharedRedis


__all__ = [
    "SIMPLE_JSON",
    "SITE_FEEDS",
    "USER_AGENT",
    "BodyReader",
    "Upstream",
    "build_client",
]

logger = logging.getLogger(__name__)

USER_AGENT = f"pypi-xmlrpc-shim/{__version__} httpx/{httpx.__version__}"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SITE_FEEDS = ("updates", "packages")
MAX_REDIRECTS = 3
# Reads a file's body from its raw chunks (what it keeps of it is the answer's body): `Upstream.get_streamed`.
BodyReader = Callable[[AsyncIterator[bytes]], Awaitable[bytes]]
_CONTENT_RANGE = re.compile(r"bytes ([0-9]{1,19})-([0-9]{1,19})/([0-9]{1,19})")


def _serial(headers: httpx.Headers) -> int | None:
    # The same rule as a serial in a document: ASCII digits, within SQLite's range; anything else is none.
    return serial_value(headers.get("x-pypi-last-serial", ""))


def build_client(
    *, timeout: float, ca_bundle: str | None = None, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The one HTTP client: explicit timeouts, our User-Agent, HTTPS_PROXY/NO_PROXY honoured, no auto-redirects."""
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout),
        # A CA bundle is trusted through an SSL context: httpx 0.28 deprecates a path here.
        verify=ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True,
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        trust_env=True,
    )


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    yield body


class _Retryable(Exception):
    """A failure worth another try: no connection, a timeout, a 5xx, a 429."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _RedirectRefused(UpstreamUnavailable):
    """A redirect not followed (another origin, too many): that document's fault, not an outage."""


# Origins with a guard of their own; any further one (only redirects within an origin and the files host are
# ever asked, so this is a bound, not a limit met) shares the last guard.
MAX_GUARDED_ORIGINS = 16


class Upstream:
    """GETs of the index's documents, by kind, with conditional requests."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        upstream: UpstreamURL,
        *,
        guard: Guard,
        max_bytes: int,
        optional_deadline: float | None = None,
        shared: SharedRedis | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.client = client
        self.metrics = metrics if metrics is not None else Metrics()
        self.base = upstream.base
        self.guard = guard  # the index's own origin
        if not guard.origin:
            guard.origin = origin_label(self.base)
        self.guards: dict[str, Guard] = {guard.origin: guard}
        self.circuit = SharedCircuit(shared)  # every origin's circuit and pause, shared with the other replicas
        self.max_bytes = max_bytes
        # An optional read (one the answer does without) gets one attempt, within this: never the retries and
        # the whole deadline a document the answer needs may take.
        self.optional_deadline = optional_deadline if optional_deadline is not None else guard.config.deadline
        self.optional = OptionalReads(lambda: self.guard.clock(), pause=guard.config.cooldown)
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

    def site_feed_url(self, feed: str) -> str:
        """A site-wide RSS feed: `updates` (the newest releases) or `packages` (the newest projects)."""
        if feed not in SITE_FEEDS:
            raise ValueError(f"no site feed {feed!r}")
        return f"{self.base}rss/{feed}.xml"

    def project_feed_url(self, normalized: str) -> str:
        return f"{self.base}rss/project/{path_segment(normalized)}/releases.xml"

    def guard_for(self, url: str) -> Guard:
        """The guard of `url`'s origin: its own retries, pauses and circuit."""
        label = origin_label(url)
        guard = self.guards.get(label)
        if guard is None:
            if len(self.guards) >= MAX_GUARDED_ORIGINS:
                return next(reversed(self.guards.values()))
            guard = self.guards[label] = self.guard.sibling(label)
        return guard

    async def get(
        self,
        url: str,
        *,
        accept: str | None = None,
        etag: str | None = None,
        optional: bool = False,
        byte_range: str | None = None,
        read: BodyReader | None = None,
    ) -> Fetched:
        """GET `url`; a 304 answers a matching `etag`. Credentials go only to the upstream's own origin.
        With `read`, a file's body (unencoded) is read by it instead, also from a 206 to `byte_range`.

        Retried, paced and cut off by the guard of the URL's origin (shim.upstream.resilience); every failure is
        UpstreamUnavailable, raised within the guard's deadline. An `optional` read is tried once, within
        `optional_deadline`."""
        start_origin = origin(url)
        if start_origin[0] not in ("http", "https"):
            raise UpstreamUnavailable(redact_url(url), "not an http(s) URL")
        headers = {"Accept-Encoding": encodings.ACCEPTED}
        if accept:
            headers["Accept"] = accept
        if etag:
            headers["If-None-Match"] = etag
        if read is not None:
            headers["Accept-Encoding"] = "identity"  # a file's own bytes: a range of an encoding is of no use
        if byte_range:
            headers["Range"] = byte_range
        guard = self.guard_for(url)
        budget = min(guard.config.deadline, self.optional_deadline) if optional else guard.config.deadline
        retries = 0 if optional else guard.config.retries
        deadline = guard.clock() + budget
        try:
            async with asyncio.timeout(budget) as timeout:
                return await self._guarded(guard, url, headers, deadline, timeout, retries, read)
        except TimeoutError:
            guard.count("deadline")
            raise UpstreamUnavailable(redact_url(url), f"no answer within {budget:g} s") from None

    async def _guarded(
        self,
        guard: Guard,
        url: str,
        headers: dict[str, str],
        deadline: float,
        timeout: asyncio.Timeout,
        retries: int,
        read: BodyReader | None,
    ) -> Fetched:
        for attempt in range(retries + 1):
            # The pause is waited out before the circuit admits: a request it refused is never the probe. What the
            # other replicas found is adopted first, and what this request teaches the guard is told to them.
            async with self.circuit.attempt(guard, url, deadline):
                probe = guard.probing
                # Every ending of an admitted request settles the circuit, or a probe that never settles
                # would keep it half-open, refusing everyone, for ever.
                try:
                    async with guard.slots:
                        fetched = await self._once(url, headers, read, guard.origin)
                except _Retryable as exc:
                    guard.failed()
                    if exc.retry_after is not None:
                        guard.throttled(exc.retry_after)
                    if attempt == retries:
                        raise UpstreamUnavailable(redact_url(url), exc.reason) from None
                    guard.count("retries")
                    self.metrics.upstream_retried(guard.origin)
                except (UpstreamMalformed, _RedirectRefused):
                    guard.succeeded()  # an answer, if not a usable one: the upstream is up
                    raise
                except asyncio.CancelledError:
                    # Cut off by the deadline: no answer in time. Cancelled from outside (shutting down): no word.
                    if timeout.expired():
                        guard.failed()
                    elif probe:
                        guard.released()
                    raise
                except BaseException:
                    guard.failed()  # UpstreamUnavailable, and whatever else a broken upstream brings
                    raise
                else:
                    guard.succeeded()
                    return fetched
            await guard.sleep(guard.backoff(attempt))  # told to the others first: no one waits for a retry's back-off
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _once(
        self, url: str, headers: dict[str, str], read: BodyReader | None = None, label: str = ""
    ) -> Fetched:
        """One request, redirects followed; each answer counted under `label`, its guard's origin."""
        start_origin = origin(url)
        auth = self._auth if start_origin == origin(self.base) else None
        for _ in range(MAX_REDIRECTS + 1):
            request = self.client.build_request("GET", url, headers=headers)
            exchange.upstream_request()  # each attempt and each redirect followed: one request more for the call
            try:
                response = await self.client.send(request, auth=auth or httpx.USE_CLIENT_DEFAULT, stream=True)
                try:
                    if read is not None:
                        body = await self._read_file(response, read)
                    else:
                        body = await self._read(response) if response.status_code == 200 else b""
                finally:
                    await response.aclose()
            except httpx.HTTPError as exc:
                self.metrics.upstream_answered(label, None, 0)
                raise _Retryable(f"{type(exc).__name__}: {exc}") from None
            self.metrics.upstream_answered(label, response.status_code, len(body))
            if response.has_redirect_location:
                target = urljoin(url, response.headers.get("location", ""))
                if origin(target) != start_origin:
                    raise _RedirectRefused(redact_url(url), f"redirect to another origin: {redact_url(target)}")
                url = target
                continue
            if response.status_code in (200, 304, 404) or (read is not None and response.status_code in (206, 416)):
                return Fetched(
                    url=url,
                    status=response.status_code,
                    body=body,
                    content_type=response.headers.get("content-type", "").split(";")[0].strip().lower(),
                    etag=response.headers.get("etag"),
                    last_modified=response.headers.get("last-modified"),
                    serial=_serial(response.headers),
                    headers=passed_headers(response.headers),
                )
            if response.status_code in (429, 500, 502, 503, 504):
                wait = retry_after(response.headers.get("retry-after"), time.time())
                raise _Retryable(f"HTTP {response.status_code}", wait)
            raise UpstreamUnavailable(redact_url(url), f"HTTP {response.status_code}")
        raise _RedirectRefused(redact_url(url), f"more than {MAX_REDIRECTS} redirects")

    async def _read(self, response: httpx.Response) -> bytes:
        """The body, decoded, refused past `max_bytes`: an oversized document is malformed, never buffered
        whole. Raw bytes are decoded here, a bounded amount at a time (httpx's decoders expand a read whole)."""
        url = str(response.url)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise UpstreamMalformed(url, f"a body of {declared} bytes, over SHIM_MAX_DOCUMENT_BYTES")
        if response.is_stream_consumed:
            # Built from bytes by an in-memory transport (httpx.MockTransport, a test's): read and decoded already.
            if len(response.content) > self.max_bytes:
                raise UpstreamMalformed(url, "a body over SHIM_MAX_DOCUMENT_BYTES")
            return response.content
        try:
            return await encodings.read_decoded(
                response.aiter_raw(), response.headers.get("content-encoding", ""), self.max_bytes
            )
        except encodings.TooLarge:
            raise UpstreamMalformed(url, "a body over SHIM_MAX_DOCUMENT_BYTES") from None
        except encodings.Undecodable as exc:
            raise UpstreamMalformed(url, str(exc)) from None

    async def _read_file(self, response: httpx.Response, read: BodyReader) -> bytes:
        """A file's body as `read` takes it; nothing of a 200 to a range request (the whole file)."""
        status = response.status_code
        if status not in (200, 206) or (status == 200 and "range" in response.request.headers):
            return b""
        if response.headers.get("content-encoding", "identity").strip().lower() != "identity":
            raise UpstreamMalformed(str(response.url), "a file sent encoded, though asked for as it is")
        return await read(_chunks(response.content) if response.is_stream_consumed else response.aiter_raw())

    async def get_streamed(self, url: str, read: BodyReader) -> Fetched:
        """A file, its raw chunks handed to `read` as they come (it may stop early: the rest is never read)."""
        return await self.get(url, read=read)

    async def get_range(self, url: str, start: int | None, end: int) -> Ranged:
        """Bytes `start` to `end` (inclusive) of the file `url`, or (`start` None) its last `end` bytes: a 206 only
        when its Content-Range is what was asked and its body that long, never more read; see `Ranged`."""
        spec = f"bytes=-{end}" if start is None else f"bytes={start}-{end}"
        wanted = end if start is None else end - start + 1

        async def take(chunks: AsyncIterator[bytes]) -> bytes:
            try:
                return await encodings.read_decoded(chunks, "", wanted)
            except encodings.TooLarge:
                raise UpstreamMalformed(redact_url(url), f"more than the {wanted} bytes a range asked") from None

        fetched = await self.get(url, byte_range=spec, read=take)
        if fetched.status != 206:
            return Ranged(fetched.status)
        match = _CONTENT_RANGE.fullmatch(fetched.headers.get("content-range", "").strip())
        first, last, total = (int(group) for group in match.groups()) if match else (0, -1, 0)
        expected = (max(total - end, 0), total - 1) if start is None else (start, min(end, total - 1))
        if (first, last) != expected or len(fetched.body) != last - first + 1:
            raise UpstreamMalformed(redact_url(url), f"a 206 for {spec} that is not that range")
        return Ranged(206, fetched.body, first, total)

    @asynccontextmanager
    async def stream(self, url: str, *, headers: dict[str, str] | None = None) -> AsyncIterator[httpx.Response]:
        """A file, streamed: the response is open until the block ends. No redirects, no credentials
        beyond the upstream's own origin; the read timeout is an idle timeout, never a whole-file deadline.
        `headers` carries the client's Range and conditional headers."""
        if origin(url)[0] not in ("http", "https"):
            raise UpstreamUnavailable(redact_url(url), "not an http(s) URL")
        auth = self._auth if origin(url) == origin(self.base) else None
        # Not retried (a client's download is the client's to retry), but its origin's circuit is honoured
        # and fed: a files host that is down is refused at once, and never trips the index's circuit.
        guard = self.guard_for(url)
        async with self.circuit.attempt(guard, url):
            request = self.client.build_request("GET", url, headers=headers or {})
            exchange.upstream_request()
            try:
                response = await self.client.send(request, auth=auth or httpx.USE_CLIENT_DEFAULT, stream=True)
            except httpx.HTTPError as exc:
                guard.failed()
                self.metrics.upstream_answered(guard.origin, None, 0)
                raise UpstreamUnavailable(redact_url(url), f"{type(exc).__name__}: {exc}") from None
            except BaseException:
                guard.released()
                raise
            self.metrics.upstream_answered(guard.origin, response.status_code, 0)  # a file's bytes go to its client
            if response.status_code >= 500:
                guard.failed()
            else:
                guard.succeeded()
        try:
            yield response
        finally:
            await response.aclose()

    async def download(self, url: str, sink: IO[bytes], *, max_bytes: int) -> int:
        """A file that is no document of the index (a catalog snapshot), written to `sink` as it comes, as `stream`
        fetches one (no redirects, the index's credentials only to its own origin, that origin's circuit), and
        refused past `max_bytes`; the caller bounds the time. Returns the bytes written."""
        async with self.stream(url, headers={"Accept-Encoding": "identity"}) as response:
            if response.status_code != 200:
                raise UpstreamUnavailable(redact_url(url), f"HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise UpstreamMalformed(redact_url(url), f"{declared} bytes, over the limit of {max_bytes} bytes")
            size = 0
            try:
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                    if size > max_bytes:
                        raise UpstreamMalformed(redact_url(url), f"over the limit of {max_bytes} bytes")
                    sink.write(chunk)
            except httpx.HTTPError as exc:
                raise UpstreamUnavailable(redact_url(url), f"{type(exc).__name__}: {exc}") from None
        return size
