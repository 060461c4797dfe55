"""Documentation generated from the method table and the settings registry: the README's tables and
the docs page served on GET `/`. `python -m shim.web.docs` rewrites the README; `--check` fails if stale.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from collections.abc import Callable
from pathlib import Path

from shim import __version__
from shim.config.registry import REGISTRY
from shim.config.settings import Settings
from shim.modes import Mode
from shim.xmlrpc.faults import DOCUMENTED
from shim.xmlrpc.table import Absent, Behaviour, MethodTable, Refuse

__all__ = ["docs_page", "faults_markdown", "methods_markdown", "render_readme", "settings_markdown"]


def _behaviour(behaviour: Behaviour) -> str:
    if isinstance(behaviour, Absent):
        return "-32601"
    if isinstance(behaviour, Refuse):
        return f"fault `{behaviour.exception}`"
    return "answers"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]
    return "\n".join(lines)


def methods_markdown(table: MethodTable) -> str:
    header = ["Method", "Answer", "Fidelity", "restore", "pypi-today", "Differences from PyPI"]
    rows = [
        [
            f"`{spec.usage()}`",
            spec.summary,
            spec.grade.value,
            _behaviour(spec.restore),
            _behaviour(spec.today),
            spec.note,
        ]
        for spec in table
    ]
    return _table(header, rows)


# The faults and the settings as both the README and the docs page list them: header, then rows.
FAULT_COLUMNS = ["faultCode", "faultString", "When"]
SETTING_COLUMNS = ["Variable", "Option", "Default", "Meaning"]


def fault_rows() -> list[list[str]]:
    return [[str(d.fault.code), f"`{d.fault.string}`", d.when] for d in DOCUMENTED]


def setting_rows() -> list[list[str]]:
    return [[f"`{s.env}`", f"`{s.option}`", s.default_doc, s.meaning] for s in REGISTRY]


def settings_markdown() -> str:
    return _table(SETTING_COLUMNS, setting_rows())


def faults_markdown() -> str:
    return _table(FAULT_COLUMNS, fault_rows())


_SECTIONS: dict[str, Callable[[MethodTable], str]] = {
    "methods": methods_markdown,
    "settings": lambda table: settings_markdown(),
    "faults": lambda table: faults_markdown(),
}
_MARKED = re.compile(r"(<!-- generated:(\w+) -->\n).*?(<!-- /generated:\2 -->)", re.DOTALL)


def render_readme(text: str, table: MethodTable) -> str:
    """`text` with every generated section rewritten from the code."""

    def fill(match: re.Match[str]) -> str:
        return f"{match[1]}{_SECTIONS[match[2]](table)}\n{match[3]}"

    return _MARKED.sub(fill, text)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table; cells are escaped, and a cell in backticks is shown as code."""

    def cell(text: str) -> str:
        if len(text) > 1 and text.startswith("`") and text.endswith("`"):
            return f"<code>{html.escape(text[1:-1])}</code>"
        return html.escape(text)

    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
    body = ["<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows]
    return "<table border='1'>" + head + "\n" + "\n".join(body) + "\n</table>\n"


def docs_page(table: MethodTable, settings: Settings, mode: Mode) -> str:
    """The HTML page served on GET of an endpoint: what each method answers in `mode` and how well, the faults,
    and the settings with their defaults (never their values here)."""
    esc = html.escape
    methods = [
        [
            f"`{spec.usage()}`",
            behaviour.text(settings.upstream.host) if isinstance(behaviour, Refuse) else spec.summary,
            spec.grade.value,
            spec.note,
        ]
        for spec in table
        if not isinstance(behaviour := spec.behaviour(mode), Absent)
    ]
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>pypi-xmlrpc-shim</title></head><body>\n"
        f"<h1>pypi-xmlrpc-shim {esc(__version__)}</h1>\n"
        f"<p>PyPI's legacy XML-RPC API, answered from <code>{esc(settings.upstream.base)}</code> "
        f"in <b>{esc(mode.value)}</b> mode. POST <code>text/xml</code> calls to this URL.</p>\n"
        + _html_table(["Method", "Answer", "Fidelity", "Differences from PyPI"], methods)
        + "<h2>Faults</h2>\n"
        + _html_table(FAULT_COLUMNS, fault_rows())
        + "<h2>Settings</h2>\n"
        + _html_table(SETTING_COLUMNS, setting_rows())
        + "</body></html>\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rewrite README.md's generated tables from the code.")
    parser.add_argument("--check", action="store_true", help="fail if README.md is out of date")
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    args = parser.parse_args(argv)
    from shim.methods.table import METHODS

    current = args.readme.read_text(encoding="utf-8")
    wanted = render_readme(current, METHODS)
    if args.check:
        if current != wanted:
            print(f"{args.readme} is out of date: run `python -m shim.web.docs`", file=sys.stderr)
            return 1
        return 0
    args.readme.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
