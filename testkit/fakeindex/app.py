"""`FakeIndex`: an ASGI app that answers like Warehouse's JSON, Simple and RSS APIs and its file host."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from packaging.utils import canonicalize_name
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from . import render_json, render_rss, render_simple
from .replies import ExceptionSpec, PathPattern, Reply, Rule, etag_matches, md5_etag, ranged
from .state import FileRecord, IndexState, Project, Release, full_info, parse_time
from .urls import DEFAULT_BASE_URL, DEFAULT_FILES_URL, Urls, netloc_path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "index"

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": ("Content-Type, If-Match, If-Modified-Since, If-None-Match, If-Unmodified-Since"),
    "Access-Control-Allow-Methods": "GET",
    "Access-Control-Max-Age": "86400",
    "Access-Control-Expose-Headers": "X-PyPI-Last-Serial",
}
NOT_FOUND_JSON = b'{"message": "Not Found"}'
NOT_FOUND_HTML = b"<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>"


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    host: str
    path: str  # path and query, as sent
    headers: dict[str, str]  # lower-cased names; a repeated header keeps its last value


class FakeIndex:
    """A Warehouse look-alike. Switches are plain attributes and methods, safe to use while the app runs."""

    def __init__(
        self,
        state: IndexState | None = None,
        *,
        fixtures: Path | None = FIXTURES,
        base_url: str = DEFAULT_BASE_URL,
        files_url: str = DEFAULT_FILES_URL,
        per_version_json: bool = True,
        json_simple: bool = True,
        rss: bool = True,
        serial_headers: bool = True,
        ownership: bool = True,
        core_metadata: bool = True,
        ranges: bool = True,
    ) -> None:
        if state is None:
            state = IndexState.load(fixtures) if fixtures is not None else IndexState()
        self.state = state
        self.urls = Urls(base_url, files_url)
        self.per_version_json = per_version_json
        self.json_simple = json_simple
        self.rss = rss
        self.serial_headers = serial_headers
        self.ownership = ownership
        # A mirror-like file host: no `<file>.metadata` (nor its keys in the JSON), and Range ignored (200, whole).
        self.core_metadata = core_metadata
        self.ranges = ranges
        self.requests: list[LoggedRequest] = []
        self._faults: list[Rule] = []
        self._delays: list[Rule] = []

    # --- switches -----------------------------------------------------------------------------------

    def set_urls(self, base_url: str, files_url: str | None = None) -> None:
        """Move the fake (e.g. once served on 127.0.0.1); files default to `<base_url>files/`."""
        base = base_url if base_url.endswith("/") else base_url + "/"
        self.urls = Urls(base, files_url if files_url is not None else base + "files/")

    def project(self, name: str) -> Project:
        project = self.state.get(name)
        if project is None:
            raise KeyError(f"No project {name!r} in the fake index.")
        return project

    def bump_serial(self, name: str) -> int:
        """A new journal entry for `name`: the global serial plus one becomes the project's serial."""
        project = self.project(name)
        self.state.serial += 1
        project.last_serial = self.state.serial
        return project.last_serial

    def set_serial(self, name: str, serial: int) -> None:
        self.project(name).last_serial = serial
        self.state.serial = max(p.last_serial for p in self.state.projects.values())

    def add_release(
        self,
        name: str,
        version: str,
        *,
        files: Iterable[FileRecord | Mapping[str, Any]] = (),
        info: Mapping[str, Any] | None = None,
        yanked: bool = False,
        yanked_reason: str | None = None,
        created: dt.datetime | str | None = None,
    ) -> Release:
        """Journal a new release (one serial) and its files (one serial each), creating the project if needed."""
        when = parse_time(created) if isinstance(created, str) else created
        if when is None:
            when = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        release = Release(
            version=version,
            created=when,
            info=full_info(info or {}),
            files=[f if isinstance(f, FileRecord) else FileRecord.from_state(f) for f in files],
            yanked=yanked,
            yanked_reason=yanked_reason,
        )
        project = self.state.get(name)
        if project is None:
            project = Project(name=name, last_serial=0, created=when)
            self.state.put(project)
        project.releases.append(release)
        self.state.serial += 1 + len(release.files)
        project.last_serial = self.state.serial
        return release

    def fail(
        self,
        pattern: PathPattern,
        *,
        status: int = 500,
        exception: ExceptionSpec | None = None,
        times: int | None = None,
    ) -> None:
        """Matching paths (glob, or a compiled regex searched) answer `status`, or raise `exception`.

        Through `httpx.ASGITransport` a raised exception reaches the client as is (an `httpx.ConnectError`
        class is instantiated with the request). Served by uvicorn, it becomes uvicorn's 500.
        """
        self._faults.append(Rule(pattern, times, status=status, exception=exception))

    def slow(self, pattern: PathPattern, seconds: float, *, times: int | None = None) -> None:
        """Matching paths answer after `seconds`; not at all if the client hangs up first."""
        self._delays.append(Rule(pattern, times, seconds=seconds))

    def clear_rules(self) -> None:
        self._faults.clear()
        self._delays.clear()

    def count(self, pattern: PathPattern | None = None) -> int:
        """Logged requests whose path (query included) matches `pattern` (all when None)."""
        if pattern is None:
            return len(self.requests)
        rule = Rule(pattern, None)
        return sum(rule.matches(r.path) for r in self.requests)

    # --- ASGI ---------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        host = request.headers.get("host", "").lower()
        query = scope.get("query_string", b"").decode("latin-1")
        full_path = request.url.path + (f"?{query}" if query else "")
        self.requests.append(
            LoggedRequest(request.method, host, full_path, {k.lower(): v for k, v in request.headers.items()})
        )
        for rule in self._delays:
            if rule.matches(request.url.path) and rule.take() and await self._hung_up_within(rule.seconds, receive):
                return  # the client gave up waiting (a timeout): nobody is left to answer
        for rule in self._faults:
            if rule.matches(request.url.path) and rule.take():
                if rule.exception is not None:
                    raise self._exception(rule.exception, request)
                await Response(b"", status_code=rule.status)(scope, receive, send)
                return
        response = self._respond(request, host)
        await response(scope, receive, send)

    @staticmethod
    async def _hung_up_within(seconds: float, receive: Receive) -> bool:
        """Wait `seconds`, or less if the client hangs up first (then True): served for real, a slow answer
        stops when its client times out, so that stopping the server never waits for it."""
        with anyio.move_on_after(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass
            return True
        return False

    @staticmethod
    def _exception(spec: ExceptionSpec, request: Request) -> BaseException:
        if isinstance(spec, BaseException):
            return spec
        if issubclass(spec, httpx.RequestError):
            return spec("Injected by FakeIndex.fail()", request=httpx.Request(request.method, str(request.url)))
        return spec("Injected by FakeIndex.fail()")

    def _respond(self, request: Request, host: str) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(b"", status_code=405, headers={"Allow": "GET, HEAD"})
        path = request.url.path
        file_reply = self._file(host, path, request.headers.get("range") if self.ranges else None)
        if file_reply is not None:
            reply = file_reply
        elif self.urls.separate_files_host and host == self.urls.files_netloc.lower():
            reply = Reply(b"Not Found", 404, "text/plain")
        else:
            reply = self._route(request, path) or Reply(NOT_FOUND_HTML, 404, "text/html")
        if reply.status == 200 and reply.media_type != "application/octet-stream":
            etag = md5_etag(reply.body)
            reply.headers["ETag"] = etag
            if_none_match = request.headers.get("if-none-match")
            if if_none_match and etag_matches(if_none_match, etag):
                return Response(status_code=304, headers=reply.headers)
        body = b"" if request.method == "HEAD" else reply.body
        response = Response(body, status_code=reply.status, headers=reply.headers, media_type=reply.media_type)
        if request.method == "HEAD":
            response.headers["content-length"] = str(len(reply.body))
        return response

    # --- routes -------------------------------------------------------------------------------------

    _ROUTES: tuple[tuple[re.Pattern[str], str], ...] = (
        (re.compile(r"/pypi/(?P<name>[^/]+)/json/?"), "_project_json"),
        (re.compile(r"/pypi/(?P<name>[^/]+)/(?P<version>[^/]+)/json/?"), "_version_json"),
        (re.compile(r"/simple/"), "_simple_index"),
        (re.compile(r"/simple/(?P<name>[^/]+)/?"), "_simple_project"),
        (re.compile(r"/rss/updates\.xml"), "_rss_updates"),
        (re.compile(r"/rss/packages\.xml"), "_rss_packages"),
        (re.compile(r"/rss/project/(?P<name>[^/]+)/releases\.xml"), "_rss_project"),
    )

    def _route(self, request: Request, path: str) -> Reply | None:
        for regex, method in self._ROUTES:
            match = regex.fullmatch(path)
            if match:
                handler: Callable[..., Reply | None] = getattr(self, method)
                return handler(request, **match.groupdict())
        return None

    def _redirect(self, request: Request, name: str, normalized: str) -> Reply:
        path = request.url.path.replace(f"/{name}", f"/{normalized}", 1)
        location = self.urls.index(path.lstrip("/"))
        return Reply(b"", 301, "text/html", {**CORS, "Location": location})

    def _document(self, document: dict[str, Any], project: Project) -> Reply:
        if not self.core_metadata:  # a mirror that says nothing of core metadata files
            for files in [document["urls"], *document.get("releases", {}).values()]:
                for file in files:
                    file.pop("core-metadata", None)
        return self._json(render_json.encode(document), project)

    def _json(self, body: bytes, project: Project) -> Reply:
        headers = {**CORS, "Cache-Control": "max-age=900, public"}
        if self.serial_headers:
            headers["X-PyPI-Last-Serial"] = str(project.last_serial)
        return Reply(body, 200, "application/json", headers)

    def _visible(self, name: str) -> Project | None:
        project = self.state.get(name)
        return None if project is None or project.quarantined else project

    def _project_json(self, request: Request, name: str) -> Reply:
        if name != canonicalize_name(name):
            return self._redirect(request, name, canonicalize_name(name))
        project = self._visible(name)
        release = project.latest() if project else None
        if project is None or release is None:
            return Reply(NOT_FOUND_JSON, 404, "application/json", dict(CORS))
        document = render_json.release_document(
            self.urls, project, release, with_releases=True, serials=self.serial_headers, ownership=self.ownership
        )
        return self._document(document, project)

    def _version_json(self, request: Request, name: str, version: str) -> Reply:
        if not self.per_version_json:
            return Reply(NOT_FOUND_JSON, 404, "application/json", dict(CORS))
        if name != canonicalize_name(name):
            return self._redirect(request, name, canonicalize_name(name))
        project = self._visible(name)
        release = project.find_version(version) if project else None
        if project is None or release is None:
            return Reply(NOT_FOUND_JSON, 404, "application/json", dict(CORS))
        document = render_json.release_document(
            self.urls, project, release, with_releases=False, serials=self.serial_headers, ownership=self.ownership
        )
        return self._document(document, project)

    def _simple_headers(self, serial: int) -> dict[str, str]:
        headers = {**CORS, "Vary": "Accept", "Cache-Control": "max-age=600, public"}
        if self.serial_headers:
            headers["X-PyPI-Last-Serial"] = str(serial)
        return headers

    def _simple_type(self, request: Request) -> str:
        if not self.json_simple:
            return render_simple.HTML
        return render_simple.negotiate(request.headers.get("accept"))

    def _simple_index(self, request: Request) -> Reply:
        media = self._simple_type(request)
        headers = self._simple_headers(self.state.serial)
        serials = self.serial_headers
        if media == render_simple.V1_JSON:
            return Reply(render_json.encode(render_simple.index_json(self.state, serials=serials)), 200, media, headers)
        return Reply(render_simple.index_html(self.state, self.urls, serials=serials).encode(), 200, media, headers)

    def _simple_project(self, request: Request, name: str) -> Reply:
        if name != canonicalize_name(name) or not request.url.path.endswith("/"):
            location = self.urls.index(f"simple/{canonicalize_name(name)}/")
            return Reply(b"", 301, "text/html", {**CORS, "Location": location})
        project = self.state.get(name)
        if project is None:
            return Reply(b"404 Not Found", 404, "text/plain", dict(CORS))
        media = self._simple_type(request)
        headers = self._simple_headers(project.last_serial)
        serials = self.serial_headers
        if media == render_simple.V1_JSON:
            document = render_simple.project_json(project, self.urls, serials=serials)
            return Reply(render_json.encode(document), 200, media, headers)
        return Reply(render_simple.project_html(project, self.urls, serials=serials).encode(), 200, media, headers)

    def _rss(self, body: bytes) -> Reply:
        return Reply(body, 200, "text/xml", dict(CORS))

    def _rss_updates(self, request: Request) -> Reply | None:
        return self._rss(render_rss.updates(self.state, self.urls)) if self.rss else None

    def _rss_packages(self, request: Request) -> Reply | None:
        return self._rss(render_rss.packages(self.state, self.urls)) if self.rss else None

    def _rss_project(self, request: Request, name: str) -> Reply | None:
        project = self.state.get(name)
        if not self.rss or project is None:
            return None
        return self._rss(render_rss.project_releases(project, self.urls))

    # --- files --------------------------------------------------------------------------------------

    def _file(self, host: str, path: str, range_header: str | None) -> Reply | None:
        for project in self.state.projects.values():
            for release in project.releases:
                for file in release.files:
                    where = netloc_path(self.urls.absolute_file_url(project, file))
                    if where == (host, path):
                        return ranged(file.body(), range_header)
                    metadata_path = path.removesuffix(".metadata")
                    offered = file.metadata if self.core_metadata else None
                    if offered is not None and metadata_path != path and where == (host, metadata_path):
                        return ranged(offered.encode(), range_header)
        return None
