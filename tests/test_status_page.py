"""The status page at GET `/` (and each endpoint path ending in `/`): what it shows after real XML-RPC round trips,
that every value from a client or the upstream is shown as text, that it loads nothing from anywhere, and that it
never waits on Redis, the catalog or the upstream. Its browser test is tests/test_status_page_browser.py."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import re
import signal
import time
import xmlrpc.client
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from shim import __version__
from shim.app import create_app
from shim.methods.table import METHODS
from shim.metrics.definitions import METRICS
from shim.modes import Mode
from shim.shared.address import RedisURL
from shim.web.endpoint import MODE_PREFIXES
from shim.web.live import read_live
from shim.web.markup import markdown
from shim.web.status import status_page
from shim.xmlrpc.table import MethodTable
from testkit.fakeindex import FakeIndex
from testkit.redisserver import RedisServer
from testkit.servers import serving

from .helpers import make_settings

MARKUP = "<script>window.pwned=1</script>"
ESCAPED = "&lt;script&gt;window.pwned=1&lt;/script&gt;"


class Tables(HTMLParser):
    """Each table's rows, by the table's id, as the text of their cells."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._rows: list[list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._rows = self.tables.setdefault(dict(attrs).get("id") or "", [])
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._rows:
            self._rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._rows = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(page: str) -> dict[str, dict[str, list[str]]]:
    """Each table's rows by their first cell (its header row left out)."""
    parser = Tables()
    parser.feed(page)
    return {name: {row[0]: row[1:] for row in rows[1:]} for name, rows in parser.tables.items()}


def post(client: TestClient, method: str, *params: Any, agent: str = "pip/24.0", path: str = "/pypi") -> Any:
    """One real XML-RPC round trip with this User-Agent: its value, or the Fault."""
    body = xmlrpc.client.dumps(params, methodname=method, allow_none=True).encode()
    response = client.post(path, content=body, headers={"Content-Type": "text/xml", "User-Agent": agent})
    assert response.status_code == 200, response.text
    try:
        return xmlrpc.client.loads(response.content)[0][0]
    except xmlrpc.client.Fault as fault:
        return fault


@pytest.fixture
def marked_index() -> FakeIndex:
    """The fixture projects, and one whose summary and keywords carry markup."""
    fake = FakeIndex()
    fake.add_release("marked", "1.0", info={"summary": MARKUP, "keywords": MARKUP})
    return fake


@pytest.fixture
def page_client(marked_index: FakeIndex) -> Iterator[TestClient]:
    app = create_app(make_settings(), transport=httpx.ASGITransport(app=marked_index))
    with TestClient(app) as client:
        yield client


def test_the_page_shows_each_methods_calls_faults_and_latency_and_the_clients_after_real_calls(
    page_client: TestClient,
) -> None:
    for agent in ("pip/24.0 {...}", "bandersnatch/6.6.0 (cpython 3.11)", "Python-xmlrpc/3.11"):
        assert post(page_client, "package_releases", "roundup", agent=agent) == ["1.6.1"]
    wrong = post(page_client, "package_releases", 1, agent="Python-xmlrpc/3.11")
    assert isinstance(wrong, xmlrpc.client.Fault) and wrong.faultCode == -32602
    missing = post(page_client, "no_such_method", agent="Python-xmlrpc/3.11")
    assert isinstance(missing, xmlrpc.client.Fault) and missing.faultCode == -32601

    shown = tables(page_client.get("/").text)
    calls, faults, p50, p99 = shown["usage"]["package_releases"]
    assert (calls, faults) == ("4", "-32602 × 1")
    assert re.fullmatch(r"[\d.]+ (ms|s)", p50) and re.fullmatch(r"[\d.]+ (ms|s)", p99), (p50, p99)
    assert shown["usage"]["(unknown)"][:2] == ["1", "-32601 × 1"]
    assert shown["clients"] == {"python-xmlrpc": ["3"], "bandersnatch": ["1"], "pip": ["1"]}


def test_the_live_section_alone_is_served_on_live_and_its_counters_move(page_client: TestClient) -> None:
    post(page_client, "list_packages")
    before = page_client.get("/?live")
    assert before.status_code == 200 and before.headers["content-type"] == "text/html; charset=utf-8"
    assert before.text.startswith("<section id='live'") and "<h2>Settings</h2>" not in before.text
    assert tables(before.text)["usage"]["list_packages"][0] == "1"
    post(page_client, "list_packages")
    post(page_client, "list_packages")
    assert tables(page_client.get("/?live").text)["usage"]["list_packages"][0] == "3"


def test_the_page_names_the_upstream_its_origins_capabilities_cache_and_the_prefixes_served(
    page_client: TestClient,
) -> None:
    post(page_client, "release_data", "roundup", "1.5.1")
    post(page_client, "release_data", "roundup", "1.5.1")
    page = page_client.get("/").text
    shown = tables(page)
    assert "answered from <code>https://upstream.test/</code> in <b>restore</b> mode" in page
    assert f"<h1>pypi-xmlrpc-shim {__version__}</h1>" in page
    circuit, failures, requests, *_ = shown["origins"]["https://upstream.test"]
    assert (circuit, failures) == ("closed", "0") and re.fullmatch(r"2xx \d+", requests), requests
    assert shown["capabilities"]["per-release JSON"][:2] == ["yes", "answers"]
    assert shown["capabilities"]["JSON Simple API (PEP 691)"][0] == "yes"
    assert re.search(r"Cache hit rate<b>\d+\.\d%</b>", page)
    assert shown["endpoints"]["/ (this page)"][0] == "restore the default (SHIM_MODE)"
    assert shown["endpoints"]["/today/"][0] == "pypi-today"
    assert shown["endpoints"]["/removed/"] == ["removed", "/removed/pypi, /removed/RPC2, /removed/"]
    assert "<a href='/removed/'>" not in page  # a removed endpoint has no page to link to


def test_an_origin_whose_circuit_is_open_is_shown_open_with_its_failures(page_client: TestClient) -> None:
    post(page_client, "package_releases", "roundup")
    guard = page_client.app.state.services.store.upstream.guard  # type: ignore[attr-defined]
    guard.failures, guard.open_until = guard.config.threshold, guard.clock() + 60  # as its failures left it
    guard.count("refused_by_circuit")
    page = page_client.get("/?live").text
    circuit, failures, _requests, _retries, _received, refused = tables(page)["origins"]["https://upstream.test"]
    assert (circuit, failures, refused) == ("open", str(guard.config.threshold), "1")
    assert "<span class='open'>open</span>" in page  # marked for the eye, not only said


def test_another_endpoint_path_shows_the_same_page_in_its_mode(page_client: TestClient) -> None:
    post(page_client, "package_releases", "roundup", path="/today/pypi")
    page = page_client.get("/today/").text
    shown = tables(page)
    assert "<b>pypi-today</b> mode" in page and "/today/ (this page)" in shown["endpoints"]
    assert shown["usage"]["package_releases"][0] == "1"  # the figures are the service's, whichever mode counted
    assert "package_hosting_mode(" not in page  # absent in pypi-today mode
    assert page_client.get("/today/?live").text.startswith("<section id='live'")
    assert page_client.get("/removed/").status_code == 404


def test_the_catalog_figures_are_not_yet_until_sampled_then_shown(marked_index: FakeIndex) -> None:
    app = create_app(make_settings(), transport=httpx.ASGITransport(app=marked_index))
    page = TestClient(app).get("/?live").text  # not started: the service has sampled nothing
    for figure in ("Catalog coverage", "Crawl ETA", "Feed lag", "Catalog role"):
        assert f"{figure}<b>not yet</b>" in page
    metrics = app.state.services.metrics  # what the sampler (shim.web.vitals) sets
    metrics.gauge("shim_catalog_projects", 2000)
    metrics.gauge("shim_catalog_covered", 500)
    metrics.gauge("shim_catalog_crawl_eta_seconds", 3 * 3600 + 240)
    metrics.gauge("shim_catalog_feed_lag_seconds", 12)
    for role in ("writer", "standby", "reader"):
        metrics.gauge("shim_catalog_role", 1 if role == "writer" else 0, role)
    page = TestClient(app).get("/?live").text
    assert "Catalog coverage<b>500 of 2,000 (25%)</b>" in page
    assert "Crawl ETA<b>3 h 4 min</b>" in page and "Feed lag<b>12 s</b>" in page
    assert "Catalog role<b>writer 1</b>" in page  # the roles no process holds left out


def test_the_catalog_figures_of_a_running_service_are_its_samplers(page_client: TestClient) -> None:
    vitals = page_client.app.state.vitals  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while vitals.latest is None and time.monotonic() < deadline:
        time.sleep(0.01)
    page = page_client.get("/?live").text
    assert re.search(r"Catalog coverage<b>\d[\d,]* of \d[\d,]*( \(\d+%\))?</b>", page), page
    assert re.search(r"Catalog role<b>(writer|standby|reader) 1</b>", page), page


def test_markup_from_a_client_or_the_upstream_is_shown_as_text(page_client: TestClient) -> None:
    post(page_client, "package_releases", "roundup", agent=MARKUP)
    post(page_client, "release_data", "marked", "1.0", agent=MARKUP)
    post(page_client, "search", {"summary": "window"}, agent=MARKUP)
    post(page_client, "package_releases", MARKUP, agent=MARKUP)  # a project name carrying markup
    # Figures whose labels were to carry markup (the service bounds them: a family, an origin, a method name).
    metrics = page_client.app.state.services.metrics  # type: ignore[attr-defined]
    metrics.client(MARKUP)
    metrics.upstream_answered("https://" + MARKUP, 200, 10)
    metrics.called(MARKUP, 0.01)
    metrics.faulted(MARKUP, -32500)
    guards = page_client.app.state.services.store.upstream.guards  # type: ignore[attr-defined]
    guards[MARKUP] = next(iter(guards.values())).sibling(MARKUP)
    page = page_client.get("/").text
    assert "<script>window" not in page and "<script" not in page.replace("<script>\n(function", "")
    assert ESCAPED in page  # where a label was shown, it is text
    assert tables(page)["clients"]["other"] == ["4"]  # the User-Agent itself is only ever its family


def test_a_note_is_rendered_from_markdown_and_can_never_inject_markup() -> None:
    assert markdown("`[name, version]` rows") == "<code>[name, version]</code> rows"
    assert markdown("a <img src=x onerror=alert(1)> note") == "a &lt;img src=x onerror=alert(1)&gt; note"
    assert markdown("[a link](https://elsewhere.test/) and <https://elsewhere.test/>") == (
        "[a link](https://elsewhere.test/) and &lt;https://elsewhere.test/&gt;"
    )
    spec = METHODS.by_name["list_packages"]
    table = MethodTable((dataclasses.replace(spec, note=f"`code` then {MARKUP}"),))
    settings = make_settings()
    services = create_app(settings).state.services
    page = status_page(table, settings, read_live(services), upstream="https://upstream.test/", prefixes=MODE_PREFIXES)
    assert f"<td><code>code</code> then {ESCAPED}</td>" in page


def test_the_method_table_shows_its_markdown_rendered_never_raw(page_client: TestClient) -> None:
    methods = tables(page_client.get("/").text)["methods"]
    answer, grade, note = methods["release_data(package_name, version)"]
    assert grade == "approximate" and "`" not in answer + note
    assert "<code>project_url</code> rebuilt from JSON <code>project_urls</code>" in page_client.get("/").text


def test_the_page_is_html_under_a_policy_that_allows_only_its_own_style_and_script(page_client: TestClient) -> None:
    response = page_client.get("/")
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff" and response.headers["cache-control"] == "no-store"
    page = response.text
    policy = dict(d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'" and policy["img-src"] == "'none'"

    def hashes(tag: str) -> set[str]:
        bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
        return {f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in bodies}

    assert set(policy["script-src"].split()) == hashes("script") and len(hashes("script")) == 1
    assert set(policy["style-src"].split()) == hashes("style") and len(hashes("style")) == 1
    assert "unsafe" not in response.headers["content-security-policy"]
    assert "<meta name='viewport' content='width=device-width, initial-scale=1'>" in page


def test_the_page_names_no_other_origin(page_client: TestClient) -> None:
    page = page_client.get("/").text
    references = re.findall(r"""\b(?:src|href|action|srcset|poster|data)\s*=\s*["']?([^"'\s>]*)""", page, re.I)
    assert references and all(r.startswith("/") and not r.startswith("//") for r in references), references
    assert not re.search(r"url\(|@import|<link|<iframe|<img|<object|<embed|<base", page, re.I)
    assert not re.search(r"<script[^>]", page)  # inline only: no `src`, no attribute at all
    # An address it names (the upstream's, a setting's example) is text, never in an attribute: nothing to load.
    assert "https://upstream.test/" in page and not re.search(r"""=\s*["'][^"']*://""", page)


@pytest.mark.timeout(30)
def test_the_page_never_waits_on_redis_the_catalog_or_the_upstream(own_redis: RedisServer) -> None:
    fake = FakeIndex()
    settings = make_settings(cache_url=RedisURL.parse(own_redis.url), cache_timeout=10.0)
    app = create_app(settings, transport=httpx.ASGITransport(app=fake))
    services = app.state.services

    async def refused(*args: object, **kwargs: object) -> object:
        await asyncio.sleep(20)  # a catalog file that does not answer, for whoever waits on it
        raise AssertionError("unreachable")

    with serving(app, lifespan="on") as served, httpx.Client(base_url=served.url, timeout=15.0) as http:
        assert http.get("/readyz").status_code == 200  # connected to Redis, the Simple index loaded
        assert services.shared.available
        process = own_redis.process
        assert process is not None
        asked = fake.count()
        fake.slow("*", 20)  # the upstream, were it asked, would answer late
        process.send_signal(signal.SIGSTOP)  # Redis still accepts, and answers nothing
        reads, services.catalog.run = services.catalog.run, refused
        try:
            started = time.monotonic()
            page = http.get("/")
            took = time.monotonic() - started
        finally:
            services.catalog.run = reads
            process.send_signal(signal.SIGCONT)
            fake.clear_rules()
    assert page.status_code == 200 and took < 1, took
    assert fake.count() == asked  # the page asked the upstream nothing
    assert tables(page.text)["usage"] == {"no call yet": ["0", "none", "not yet", "not yet"]}
    assert "Shared store<b>shared</b>" in page.text  # as this replica last found it


def test_every_metric_is_listed_in_the_readme_with_its_kind_labels_merge_and_meaning() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = re.search(r"<!-- generated:metrics -->\n(.*?)<!-- /generated:metrics -->", readme, re.DOTALL)
    assert section, "README has no generated metrics section"
    rows = {m[1]: m[2] for m in re.finditer(r"^\| `(\w+)` \| (.*) \|$", section[1], re.MULTILINE)}
    assert list(rows) == [spec.exposed for spec in METRICS]
    for spec in METRICS:
        kind, labels, merged, _meaning = (c.strip() for c in rows[spec.exposed].split(" | ", 3))
        assert (kind, merged) == (spec.kind, spec.merged)
        assert re.findall(r"`(\w+)`", labels) == list(spec.labels)
    picture = Path(__file__).resolve().parent.parent / "docs" / "status-page.png"
    assert "](docs/status-page.png)" in readme and picture.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("mode", [Mode.RESTORE, Mode.PYPI_TODAY])
def test_a_head_of_the_page_answers_as_its_get(page_client: TestClient, mode: Mode) -> None:
    path = "/" if mode is Mode.RESTORE else "/today/"
    head = page_client.head(path)
    assert head.status_code == 200 and head.headers["content-type"] == "text/html; charset=utf-8"
    assert "content-security-policy" in head.headers
