"""The status page served on GET of an endpoint path ending in `/` (`/`, `/today/`, ...): server-rendered HTML, whole
without JavaScript, readable on a phone, loading nothing from anywhere.

Live (shim.web.live): calls, faults and latency per method since start, the clients calling, the upstream origins and
what the upstream offers, the cache, the catalog. Then what does not change while the service runs: the mode and the
path prefixes served, each method's answer and fidelity in this page's mode with its note (Markdown, rendered with
raw HTML off), the faults and the settings (their defaults, never their values).
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import HTMLResponse

from shim import __version__
from shim.config.settings import Settings
from shim.modes import Mode
from shim.web.docs import FAULT_COLUMNS, SETTING_COLUMNS, fault_rows, setting_rows
from shim.web.live import Live, live_section, read_live
from shim.web.markup import CSP, SCRIPT, STYLE, Html, cell, esc, markdown, table
from shim.xmlrpc.context import Services
from shim.xmlrpc.table import Absent, MethodTable, Refuse

__all__ = ["HEADERS", "status_page", "status_response"]

# The page's answer headers: its policy (shim.web.markup), never cached (its figures are live), never sniffed.
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ENDPOINT_PATHS = ("pypi", "RPC2", "")


def _endpoints(settings: Settings, prefixes: Mapping[str, Mode | None], here: Mode | None) -> Html:
    """Each prefix, the mode it answers in, and its paths; `here` is the prefix of this page (its fixed mode)."""
    rows: list[list[object]] = []
    for prefix, fixed in prefixes.items():
        served = fixed or settings.mode
        paths = ", ".join(f"{prefix}/{path}" for path in ENDPOINT_PATHS)
        shown: object = f"{prefix}/"
        if served is not Mode.REMOVED:  # a removed endpoint answers 404: no page to link to
            this = " (this page)" if fixed is here else ""
            shown = Html(f"<a href='{esc(prefix)}/'>{esc(prefix)}/</a>{esc(this)}")
        note = "the default (SHIM_MODE)" if fixed is None else ""
        rows.append([shown, Html(f"<b>{esc(served.value)}</b> {esc(note)}"), Html(f"<code>{esc(paths)}</code>")])
    return table(["Prefix", "Mode", "XML-RPC paths (POST)"], rows, id="endpoints")


def _methods(table_: MethodTable, settings: Settings, mode: Mode) -> Html:
    rows: list[list[object]] = []
    for spec in table_:
        behaviour = spec.behaviour(mode)
        if isinstance(behaviour, Absent):
            continue
        answer = esc(behaviour.text(settings.upstream.host)) if isinstance(behaviour, Refuse) else None
        rows.append(
            [
                Html(f"<code>{esc(spec.usage())}</code>"),
                answer or markdown(spec.summary),
                spec.grade.value,
                markdown(spec.note),
            ]
        )
    return table(["Method", "Answer", "Fidelity", "Differences from PyPI"], rows, id="methods")


def status_page(
    methods: MethodTable,
    settings: Settings,
    live: Live,
    *,
    upstream: str,
    prefixes: Mapping[str, Mode | None],
    here: Mode | None = None,
) -> str:
    """The page of the endpoint under the prefix whose fixed mode is `here` (None: the default one, in SHIM_MODE);
    `upstream` is the index's URL as shown (redacted)."""
    mode = here or settings.mode
    faults = [[cell(c) for c in row] for row in fault_rows()]
    settings_rows = [[cell(c) for c in row] for row in setting_rows()]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>pypi-xmlrpc-shim {esc(__version__)}: {esc(mode.value)}</title>\n"
        f"<style>{STYLE}</style>\n</head><body>\n"
        f"<h1>pypi-xmlrpc-shim {esc(__version__)}</h1>\n"
        f"<p>PyPI's legacy XML-RPC API, answered from <code>{esc(upstream)}</code> "
        f"in <b>{esc(mode.value)}</b> mode. POST <code>text/xml</code> calls to this URL. "
        "Health: <a href='/healthz'>/healthz</a>, <a href='/readyz'>/readyz</a>.</p>\n"
        + live_section(live)
        + "<h2>Endpoints</h2>\n"
        + _endpoints(settings, prefixes, here)
        + f"<h2>Methods in {esc(mode.value)} mode</h2>\n"
        + _methods(methods, settings, mode)
        + "<h2>Faults</h2>\n"
        + table(FAULT_COLUMNS, faults, id="faults")
        + "<h2>Settings</h2>\n"
        + table(SETTING_COLUMNS, settings_rows, id="settings")
        + f"<script>{SCRIPT}</script>\n</body></html>\n"
    )


def status_response(
    methods: MethodTable,
    settings: Settings,
    services: Services,
    *,
    prefixes: Mapping[str, Mode | None],
    here: Mode | None,
    live_only: bool,
) -> HTMLResponse:
    """The page, or with `live_only` (`?live`, what its script asks for) its live section alone."""
    live = read_live(services)
    if live_only:
        return HTMLResponse(live_section(live), headers=HEADERS)
    page = status_page(methods, settings, live, upstream=services.base_url, prefixes=prefixes, here=here)
    return HTMLResponse(page, headers=HEADERS)
