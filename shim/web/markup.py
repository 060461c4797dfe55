"""What the status page is made of besides its figures: escaping, tables, the method table's Markdown, and the page's
only style and script, inline, with the Content-Security-Policy that allows exactly those two and nothing else.

Every value is escaped where it is put in the page, unless it is `Html` (made here, from escaped parts). The page
loads nothing from anywhere: no stylesheet, font, image or script of another origin (it must work in an air-gapped
network), and its policy says so to the browser, so that even markup that slipped through could not run.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable

from markdown_it import MarkdownIt

__all__ = ["CSP", "SCRIPT", "STYLE", "Html", "cell", "esc", "markdown", "table"]


class Html(str):
    """Markup made here from escaped parts: put in the page as it is."""

    __slots__ = ()


def esc(value: object) -> Html:
    """`value` as text in the page (quotes too: it may stand in an attribute)."""
    return value if isinstance(value, Html) else Html(html.escape(str(value), quote=True))


def cell(text: str) -> Html:
    """A cell as the README's tables write it: escaped, and a cell in backticks shown as code."""
    if len(text) > 1 and text.startswith("`") and text.endswith("`"):
        return Html(f"<code>{html.escape(text[1:-1])}</code>")
    return esc(text)


def table(header: Iterable[str], rows: Iterable[Iterable[object]], *, id: str) -> Html:
    """An HTML table in a box that scrolls sideways on a narrow screen; each cell escaped unless it is `Html`."""
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"
    body = ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows]
    return Html(f"<div class='wide'><table id='{esc(id)}'>" + head + "\n" + "\n".join(body) + "\n</table></div>\n")


# The method table's notes and answers are Markdown (code spans, mostly). Raw HTML is off, so a note can never inject
# markup (it is shown as text), and so are links and images: the page names no other origin.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).disable(["link", "image", "autolink"])


def markdown(text: str) -> Html:
    """One line of Markdown (a note, an answer) as inline HTML."""
    return Html(_MARKDOWN.renderInline(text))


STYLE = """
:root { color-scheme: light dark; --line: #8884; --soft: #8881; --warn: #b35900; --bad: #c0392b; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; padding: 0 1rem 3rem;
  max-width: 72rem; }
h1 { font-size: 1.5rem; margin: 1rem 0 .25rem; }
h2 { font-size: 1.15rem; margin: 1.75rem 0 .5rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1rem; margin: 1.25rem 0 .35rem; }
code { font: .9em ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; overflow-wrap: anywhere; }
#usage code { overflow-wrap: normal; }
.wide { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; margin: .25rem 0 .75rem; }
th, td { border: 1px solid var(--line); padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: var(--soft); }
td { overflow-wrap: anywhere; min-width: 3.5rem; }
#methods td:last-child, #settings td:last-child, #faults td:last-child { min-width: 18rem; }
.figures { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; padding: 0; list-style: none; }
.figures li { min-width: 9rem; }
.figures b { display: block; font-size: 1.3rem; }
.stamp, .hint { color: #888; font-size: .9em; }
.open, .degraded, .no { color: var(--bad); font-weight: 600; }
.half-open, .unknown { color: var(--warn); font-weight: 600; }
@media (max-width: 40rem) { body { font-size: 14px; padding: 0 .5rem 2rem; } th, td { padding: .2rem .3rem; } }
"""

# Refreshes the live section in place, every few seconds (`?refresh=N` for another N, 1 to 300), from `?live`: the
# same section rendered by the server, so that every figure is escaped by the one code that escapes it. A failed
# refresh leaves the figures as they were; without JavaScript the page is whole, and a reload refreshes it.
SCRIPT = """
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.fetch || !window.DOMParser) { return; }
  var asked = Number(new URLSearchParams(location.search).get("refresh"));
  var every = asked >= 1 && asked <= 300 ? asked : Number(live.getAttribute("data-refresh")) || 5;
  function hint() {
    var shown = document.getElementById("refreshing");
    if (shown) { shown.textContent = "Refreshed every " + every + " s."; }
  }
  hint();
  function refresh() {
    if (document.hidden) { return; }
    fetch(location.pathname + "?live", { cache: "no-store", headers: { Accept: "text/html" } })
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (text) {
        if (text === null) { return; }
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("live");
        var shown = document.getElementById("live");
        if (fresh && shown) { shown.replaceWith(document.adoptNode(fresh)); hint(); }
      })
      .catch(function () { /* the next turn tries again */ });
  }
  setInterval(refresh, every * 1000);
})();
"""


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Only the page's own style and script (by their hashes), its own origin for the refresh; nothing else at all.
CSP = (
    f"default-src 'none'; style-src {_digest(STYLE)}; script-src {_digest(SCRIPT)}; connect-src 'self'; "
    "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
