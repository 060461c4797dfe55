"""The drop-in host: the index's JSON, Simple and RSS documents and its files, at the same URLs as upstream.

A legacy client is configured with one base URL and reads more than XML-RPC from it. Documents come
from the same cache the XML-RPC methods read, so a project's page never shows a serial lower than the
one XML-RPC reports for it. Only the documented path shapes are served, only from the configured
upstream (and its files host, when files are proxied); anything else is 404.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from shim.config.settings import Settings
from shim.errors import UpstreamError, UpstreamMalformed
from shim.modes import FilesMode
from shim.upstream.cache import Entry
from shim.upstream.client import SIMPLE_JSON, SITE_FEEDS
from shim.upstream.names import normalize_name, path_segment
from shim.upstream.parsers import ProjectDoc, load_json
from shim.web.addresses import client_address
from shim.web.files import FileProxy
from shim.web.responses import not_found, unavailable
from shim.xmlrpc.context import Services
from shim.xmlrpc.ratelimit import RateLimiter

__all__ = ["passthrough_routes"]

logger = logging.getLogger(__name__)

SIMPLE_HTML = "text/html"
_SIMPLE_TYPES = {
    "application/vnd.pypi.simple.v1+json": SIMPLE_JSON,
    "application/vnd.pypi.simple.latest+json": SIMPLE_JSON,
    "application/vnd.pypi.simple.v1+html": SIMPLE_HTML,
    "application/vnd.pypi.simple.latest+html": SIMPLE_HTML,
    "text/html": SIMPLE_HTML,
    "text/*": SIMPLE_HTML,
    "*/*": SIMPLE_HTML,
}
_HREF = re.compile(r'(href=")([^"]*)(")', re.IGNORECASE)
# Copies of one document with file URLs rewritten for distinct service URLs (Host headers), kept at once.
_COPIES_PER_DOCUMENT = 4


def negotiate_simple(accept: str) -> str:
    """PEP 691: JSON when the client prefers it, HTML otherwise (and when it says nothing)."""
    best, best_q = SIMPLE_HTML, -1.0
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        kind = _SIMPLE_TYPES.get(media.strip().lower())
        if kind is None:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        # Ties go to HTML, as Warehouse offers it first.
        if q > 0 and (q > best_q or (q == best_q and kind == SIMPLE_HTML)):
            best, best_q = kind, q
    return best


@dataclass
class Passthrough:
    settings: Settings
    services: Services
    files: FileProxy

    # --- URLs in documents --------------------------------------------------------------------

    def _rewrite(self, entry: Entry, service: str) -> bytes:
        """The body with every file URL made absolute (and proxied), or the upstream's bytes untouched."""
        if "json" in entry.content_type:
            # Parsed once already, but here deeper in the stack: a document nested near the limit may not load.
            document = load_json(entry.body, "the document")
            changed = False
            for file in _files_in(document):
                url = file.get("url")
                if isinstance(url, str):
                    new = self.files.file_url(url, entry.url, service)
                    changed |= new != url
                    file["url"] = new
            if not changed:
                return entry.body
            try:
                text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            except RecursionError:
                raise ValueError("the document is nested too deep to rewrite") from None
            return (text + "\n").encode()
        if "html" in entry.content_type:
            text = entry.body.decode("utf-8", "replace")

            def href(match: re.Match[str]) -> str:
                url = html.unescape(match[2])
                return match[1] + html.escape(self.files.file_url(url, entry.url, service)) + match[3]

            rewritten = _HREF.sub(href, text)
            return entry.body if rewritten == text else rewritten.encode()
        return entry.body

    # --- answering from an entry ----------------------------------------------------------------

    async def _answer(self, request: Request, key: str, entry: Entry, kind: str, rewrite: bool) -> Response:
        if entry.status == 404:
            return not_found(kind)
        body = entry.body
        if rewrite:
            service = public_base(request, self.settings)
            # Direct file URLs do not depend on the service's URL: one copy serves every Host.
            name = service if self.settings.files is FilesMode.PROXY else ""
            cached = entry.variants.get(name)
            if cached is None:
                try:
                    cached = self._rewrite(entry, service)
                except ValueError as exc:  # a document too deeply nested to rewrite: malformed, as on XML-RPC
                    return unavailable(UpstreamMalformed(entry.url, str(exc)))
            body = cached
            # Without a public URL each Host asks for its own copy: only a few are kept, all counted by the cache.
            keep = 1 if self.settings.public_url is not None else _COPIES_PER_DOCUMENT
            await self.services.store.cache.keep_variant(key, entry, name, body, keep=keep)
        headers = dict(entry.headers)
        if body is not entry.body:
            # A rewritten body is another representation: its own validator.
            headers["etag"] = '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'
        if _not_modified(request, headers):
            kept = ("etag", "cache-control", "vary", "last-modified", "x-pypi-last-serial")
            return Response(status_code=304, headers={k: v for k, v in headers.items() if k in kept})
        return Response(body, headers=headers)

    async def _serve(
        self,
        request: Request,
        key: str,
        url: str,
        project: str | None,
        kind: str,
        *,
        parse: Callable[[bytes, str], Any] | None = None,
        accept: str | None = None,
        rewrite: bool = True,
    ) -> Response:
        try:
            entry = await self.services.store.entry(key, url, project, parse=parse, accept=accept)
        except UpstreamError as exc:
            return unavailable(exc)
        return await self._answer(request, key, entry, kind, rewrite)

    def _listed(self, normalized: str) -> bool | None:
        """Whether the Simple index, loaded and refreshed lately, lists the project; None when no such copy says.
        A project created since the last refresh is unlisted here until the next one (SHIM_INDEX_REFRESH); a copy
        overdue by a whole interval (the refresher failing) is no guide, and the upstream is asked."""
        index = self.services.index
        snapshot = index.snapshot
        if snapshot is None or index.clock() - snapshot.fetched_at >= 2 * index.refresh_every:
            return None
        return normalized in snapshot

    async def _unlisted(self, normalized: str) -> bool:
        """Known not to exist, without asking the upstream: the Simple index does not list it, nor has the change
        feed recorded it above that copy's serial (the feed poller records a new project before the next copy)."""
        if self._listed(normalized) is not False:
            return False
        snapshot, catalog = self.services.index.snapshot, self.services.catalog
        recorded = await catalog.run(catalog.serial_of, normalized)
        copy = snapshot.listing.last_serial if snapshot is not None else None
        return recorded is None or (copy is not None and recorded <= copy)

    async def _project(self, request: Request, kind: str) -> str | Response:
        """The normalised project name of the path, or the answer when it is not one: 404 for a name no index can
        hold, a 301 to the normalised name, 404 for one the Simple index does not list."""
        name = request.path_params["name"]
        normalized = normalize_name(name)
        if normalized is None:
            return not_found(kind)
        if normalized != name:
            return _redirect(request, self.settings, name, normalized)
        return not_found(kind) if await self._unlisted(normalized) else normalized

    # --- routes -------------------------------------------------------------------------------------

    async def project_json(self, request: Request) -> Response:
        normalized = await self._project(request, "json")
        if isinstance(normalized, Response):
            return normalized
        upstream = self.services.store.upstream
        return await self._serve(
            request,
            f"project:{normalized}",
            upstream.project_url(normalized),
            normalized,
            "json",
            parse=ProjectDoc.from_json,
        )

    async def project_page(self, request: Request) -> Response:
        """`/pypi/<name>/` (and `/pypi/<name>`), where legacy PyPI showed a project and clients (vanity) check
        that one exists: 200 for the normalised name, a 301 to `/pypi/<normalised>` (no slash: the name is the
        Location's last segment) for another spelling of a listed project, 404 for any other name."""
        name = request.path_params["name"]
        normalized = normalize_name(name)
        if normalized is None:
            return not_found("text")
        listed = False if await self._unlisted(normalized) else (self._listed(normalized) or None)
        if listed is None:  # no fresh Simple index to go by, or the change feed knows it since: its JSON says
            upstream = self.services.store.upstream
            key, url = f"project:{normalized}", upstream.project_url(normalized)
            try:
                entry = await self.services.store.entry(key, url, normalized, parse=ProjectDoc.from_json)
            except UpstreamError as exc:
                return unavailable(exc)
            listed = entry.status != 404
        if not listed:
            return not_found("text")
        if normalized != name:
            return _redirect(request, self.settings, name, normalized, slash=False)
        links = f'<a href="json">JSON</a> <a href="../../simple/{normalized}/">Simple</a>'  # [a-z0-9-] only
        return HTMLResponse(f"<!DOCTYPE html>\n<title>{normalized}</title><h1>{normalized}</h1>{links}\n")

    async def release_json(self, request: Request) -> Response:
        version = request.path_params["version"]
        normalized = await self._project(request, "json")
        if isinstance(normalized, Response):
            return normalized
        if version in (".", ".."):
            return not_found("json")
        upstream = self.services.store.upstream
        # The upstream looks the version up (3.0 may answer 3.0.0): the key is the version as asked.
        return await self._serve(
            request,
            f"passthrough:{normalized}:{version}",
            upstream.version_url(normalized, version),
            normalized,
            "json",
            parse=_json_object,
        )

    async def simple_index(self, request: Request) -> Response:
        kind = negotiate_simple(request.headers.get("accept", ""))
        upstream = self.services.store.upstream
        response = await self._serve(
            request,
            f"simple-index:{kind}",
            upstream.simple_index_url,
            None,
            "text",
            accept=kind,
            rewrite=False,
            parse=_simple_page,
        )
        response.headers.setdefault("vary", "Accept")
        return response

    async def simple_project(self, request: Request) -> Response:
        normalized = await self._project(request, "text")
        if isinstance(normalized, Response):
            return normalized
        kind = negotiate_simple(request.headers.get("accept", ""))
        upstream = self.services.store.upstream
        response = await self._serve(
            request,
            f"simple:{kind}:{normalized}",
            f"{upstream.simple_index_url}{path_segment(normalized)}/",
            normalized,
            "text",
            accept=kind,
            parse=_simple_page,
        )
        response.headers.setdefault("vary", "Accept")
        return response

    async def rss(self, request: Request) -> Response:
        feed = request.path_params.get("feed")
        name = request.path_params.get("name")
        upstream = self.services.store.upstream
        if name is not None:
            normalized = normalize_name(name)
            if normalized is None or await self._unlisted(normalized):
                return not_found("text")
            url, key, project = upstream.project_feed_url(normalized), f"rss:{normalized}", normalized
        elif feed in SITE_FEEDS:
            url, key, project = upstream.site_feed_url(feed), f"rss:{feed}", None
        else:
            return not_found("text")
        return await self._serve(request, key, url, project, "text", rewrite=False, parse=_feed)


def _simple_page(body: bytes, url: str) -> None:
    """A Simple page is JSON with its list, or HTML: a maintenance page or an error body is not one."""
    if body.lstrip()[:1] == b"{":
        document = load_json(body, "the Simple page")
        if not isinstance(document, dict) or not isinstance(document.get("files", document.get("projects")), list):
            raise ValueError("a Simple JSON page without files or projects")
    elif b"<a" not in body and b"<html" not in body.lower()[:4096]:
        raise ValueError("neither a Simple JSON page nor HTML")


def _feed(body: bytes, url: str) -> None:
    if b"<rss" not in body[:4096]:
        raise ValueError("not an RSS feed")


def _json_object(body: bytes, url: str) -> None:
    if not isinstance(load_json(body, "the release document"), dict):
        raise ValueError("not a JSON object")


def _files_in(document: Any) -> list[dict[str, Any]]:
    """Every file object of a project/release JSON document or a Simple JSON page."""
    if not isinstance(document, dict):
        return []
    files: list[Any] = []
    for key in ("urls", "files"):
        if isinstance(document.get(key), list):
            files += document[key]
    releases = document.get("releases")
    if isinstance(releases, dict):
        for release in releases.values():
            if isinstance(release, list):
                files += release
    return [f for f in files if isinstance(f, dict)]


def _not_modified(request: Request, headers: dict[str, str]) -> bool:
    etag = headers.get("etag")
    asked = request.headers.get("if-none-match")
    if asked is not None:
        tags = {tag.strip().removeprefix("W/") for tag in asked.split(",")}
        return etag is not None and ("*" in tags or etag.removeprefix("W/") in tags)
    since = request.headers.get("if-modified-since")
    return since is not None and since == headers.get("last-modified")


def public_base(request: Request, settings: Settings) -> str:
    """The service's base URL as the client must see it: SHIM_PUBLIC_URL, else the request's (starlette takes a
    Host header only when it is a valid host and port, else the server's own address)."""
    return settings.public_url or str(request.base_url)


def _redirect(request: Request, settings: Settings, name: str, normalized: str, *, slash: bool = True) -> Response:
    # Warehouse's 301 for a non-normalised name, pointing at this service (without `slash`, the trailing one dropped).
    path = request.url.path.removeprefix(request.scope.get("root_path", "")).lstrip("/")
    target = path[: path.rindex(name)] + normalized + path[path.rindex(name) + len(name) :]
    target = target if slash else target.removesuffix("/")
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(public_base(request, settings) + target + query, status_code=301)


def passthrough_routes(settings: Settings, services: Services, prefixes: list[str]) -> list[Route]:
    """The pass-through routes, under each mode prefix too (a client's base URL may carry one)."""
    files = FileProxy(settings, services.store.upstream, services.store.files)
    handler = Passthrough(settings, services, files)
    shapes: list[tuple[str, Callable[[Request], Any]]] = [
        ("/pypi/{name}/", handler.project_page),
        ("/pypi/{name}", handler.project_page),  # where the 301 points: a client that follows it lands on a 200
        ("/pypi/{name}/json", handler.project_json),
        ("/pypi/{name}/json/", handler.project_json),
        ("/pypi/{name}/{version}/json", handler.release_json),
        ("/pypi/{name}/{version}/json/", handler.release_json),
        ("/simple/", handler.simple_index),
        ("/simple/{name}/", handler.simple_project),
        ("/rss/{feed:str}.xml", handler.rss),
        ("/rss/project/{name}/releases.xml", handler.rss),
    ]
    shapes = [(prefix + path, endpoint) for prefix in prefixes for path, endpoint in shapes]
    shapes.append(("/packages/{path:path}", files.file))
    limit = settings.passthrough_rate_limit
    if limit is not None:
        limiter = RateLimiter(limit, name="passthrough", shared=services.shared)
        limiter.refused = services.metrics.rate_limited
        shapes = [(path, _limited(endpoint, settings, limiter)) for path, endpoint in shapes]
    return [Route(path, endpoint, methods=["GET", "HEAD"]) for path, endpoint in shapes]


def _limited(endpoint: Callable[[Request], Any], settings: Settings, limiter: RateLimiter) -> Callable[[Request], Any]:
    """`endpoint`, counted against the pass-through limit: each GET may cost the upstream a request or a file."""

    async def handle(request: Request) -> Response:
        verdict = await limiter.hit(client_address(request, settings))
        if not verdict.allowed:
            text = f"429 Too Many Requests: over SHIM_PASSTHROUGH_RATE_LIMIT ({limiter.limit}).\n"
            return PlainTextResponse(text, status_code=429, headers=limiter.headers(verdict))
        response: Response = await endpoint(request)
        return response

    return handle
