"""The status page in a real headless Chromium (Debian's package, driven over the DevTools protocol: testkit/chromium),
served by the `pypi-xmlrpc-shim` command over a real socket: it loads with nothing on the console, its counters move
after a few calls without a reload, it is whole without JavaScript and fits a phone's width, and a User-Agent carrying
`<script>` never runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.agents import AGENTS, a_few_calls, call_as
from testkit.chromium import Browser, Page, chromium, find_chromium
from testkit.fakeindex import FakeIndex
from testkit.servers import serve_in_thread
from testkit.shimprocess import Running, command

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

# Would set a global and say so on the console, were it ever run as markup.
HOSTILE_AGENT = "<script>window.pwned = 1; console.error('pwned')</script><img src=x onerror=\"window.pwned = 2\">"

# The calls of one method as the page's usage table shows them (null before its first call).
CALLS = """(() => {
  for (const row of document.querySelectorAll("#usage tr")) {
    const cells = row.querySelectorAll("td");
    if (cells.length && cells[0].textContent.trim() === %s) { return Number(cells[1].textContent.replace(/,/g, "")); }
  }
  return null;
})()"""


def calls_of(page: Page, method: str) -> int | None:
    value = page.evaluate(CALLS % json.dumps(method))
    return None if value is None else int(value)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    executable = find_chromium()
    if executable is None:
        pytest.skip("Chromium is not installed (scripts/test installs Debian's chromium when run as root)")
    with chromium(executable, tmp_path) as started:
        yield started


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Running]:
    fake = FakeIndex()
    with serve_in_thread(fake) as index_url:
        fake.set_urls(index_url + "/")
        settings = {"SHIM_UPSTREAM": index_url + "/", "SHIM_CATALOG_PATH": str(tmp_path / "catalog.sqlite3")}
        with command(settings) as running:
            yield running


def test_the_page_in_chromium_is_silent_live_escaped_and_fits_a_phone(
    browser: Browser, service: Running, tmp_path: Path
) -> None:
    base = service.base
    call_as(base, HOSTILE_AGENT, "package_releases", "roundup")  # before the page is loaded: its figures hold it
    a_few_calls(base)
    page = browser.new_page()
    page.size(1200, 1500)
    page.goto(base + "/?refresh=1")

    assert page.evaluate("document.title").startswith("pypi-xmlrpc-shim")
    assert page.evaluate("document.contentType") == "text/html"
    before = calls_of(page, "package_releases")
    assert before == 4  # the hostile client's, qypi's and python-xmlrpc's two (one faulted)
    assert page.evaluate("document.getElementById('refreshing').textContent") == "Refreshed every 1 s."

    for _ in range(3):
        call_as(base, AGENTS["bandersnatch"], "package_releases", "roundup")
    page.until(f"({CALLS % json.dumps('package_releases')}) === {before + 3}", timeout=10)
    assert page.evaluate("location.pathname + location.search") == "/?refresh=1"  # moved in place, never reloaded
    shot = page.screenshot(tmp_path / "status-page.png")
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and shot.stat().st_size > 20_000

    # The hostile User-Agent never ran, nor became markup: the page's one script is its own.
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.evaluate("document.scripts.length") == 1
    assert page.evaluate("document.querySelectorAll('img, iframe, object, embed').length") == 0
    text = page.evaluate("document.body.innerText")
    assert "pwned" not in text or "<script>window.pwned" in text  # if ever shown, as the text it is

    # Readable on a phone: nothing wider than its screen but the tables, which scroll inside their boxes.
    page.size(390, 844, mobile=True, scale=2)
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(tmp_path / "status-page-phone.png")

    # Whole without JavaScript: the figures are the server's.
    page.send("Emulation.setScriptExecutionDisabled", value=True)
    page.reload()
    assert calls_of(page, "package_releases") == before + 3
    assert page.evaluate("document.getElementById('refreshing').textContent") == ""

    assert page.problems == [], json.dumps(page.problems, indent=1)[:4000]
