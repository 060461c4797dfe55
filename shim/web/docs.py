"""Documentation generated from the code: the README's tables of methods, settings, faults and metrics, whose rows
the status page (shim.web.status) shows too. `python -m shim.web.docs` rewrites the README; `--check` fails if stale.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from shim.config.registry import REGISTRY
from shim.metrics.definitions import METRICS
from shim.xmlrpc.faults import DOCUMENTED
from shim.xmlrpc.table import Absent, Behaviour, MethodTable, Refuse

__all__ = [
    "FAULT_COLUMNS",
    "SETTING_COLUMNS",
    "fault_rows",
    "faults_markdown",
    "methods_markdown",
    "metrics_markdown",
    "render_readme",
    "setting_rows",
    "settings_markdown",
]


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


# The faults and the settings as both the README and the status page list them: header, then rows.
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


METRIC_COLUMNS = ["Metric", "Kind", "Labels", "Workers merged by", "Meaning"]


def metrics_markdown() -> str:
    """Every metric as `/metrics` exposes it, from `METRICS`."""
    rows = [
        [f"`{spec.exposed}`", spec.kind, ", ".join(f"`{x}`" for x in spec.labels) or "none", spec.merged, spec.meaning]
        for spec in METRICS
    ]
    return _table(METRIC_COLUMNS, rows)


_SECTIONS: dict[str, Callable[[MethodTable], str]] = {
    "methods": methods_markdown,
    "settings": lambda table: settings_markdown(),
    "faults": lambda table: faults_markdown(),
    "metrics": lambda table: metrics_markdown(),
}
_MARKED = re.compile(r"(<!-- generated:(\w+) -->\n).*?(<!-- /generated:\2 -->)", re.DOTALL)


def render_readme(text: str, table: MethodTable) -> str:
    """`text` with every generated section rewritten from the code."""

    def fill(match: re.Match[str]) -> str:
        return f"{match[1]}{_SECTIONS[match[2]](table)}\n{match[3]}"

    return _MARKED.sub(fill, text)


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
