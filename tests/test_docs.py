"""The README, the status page and `--help` are generated from the code: pin that they still agree."""

from __future__ import annotations

import dataclasses
import html
import os
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from shim.config.registry import BY_NAME, REGISTRY
from shim.config.settings import Settings
from shim.methods.table import METHODS
from shim.modes import Mode
from shim.web.docs import render_readme
from shim.xmlrpc.faults import APPLICATION_ERROR, DOCUMENTED, METHOD_NOT_FOUND, NOT_WELL_FORMED, SERVICE_UNAVAILABLE
from shim.xmlrpc.table import Refuse

from .helpers import run_shim

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(name: str) -> str:
    match = re.search(rf"<!-- generated:{name} -->\n(.*?)<!-- /generated:{name} -->", README, re.DOTALL)
    assert match, f"README has no generated {name} section"
    return match[1]


def test_the_readme_tables_are_up_to_date() -> None:
    assert render_readme(README, METHODS) == README, "run `python -m shim.web.docs`"


def test_the_readme_method_table_lists_exactly_the_method_table() -> None:
    listed = re.findall(r"^\| `([\w.]+)\(", _section("methods"), re.MULTILINE)
    assert listed == [spec.name for spec in METHODS]


def test_the_readme_settings_table_lists_every_setting() -> None:
    listed = re.findall(r"^\| `(SHIM_\w+)`", _section("settings"), re.MULTILINE)
    assert listed == [s.env for s in REGISTRY]
    # Every setting the service reads has a registry entry, and nothing else does.
    assert {s.name for s in REGISTRY} == {f.name for f in dataclasses.fields(Settings)}


def test_the_fault_table_matches_the_faults_sent() -> None:
    for fault in (NOT_WELL_FORMED, METHOD_NOT_FOUND, APPLICATION_ERROR, SERVICE_UNAVAILABLE):
        assert fault in [d.fault for d in DOCUMENTED]
    assert f"`{NOT_WELL_FORMED.string}`" in _section("faults")


def test_the_readme_gives_the_two_setup_commands_and_ci_runs_the_test_one() -> None:
    assert ".venv/bin/pip install . && .venv/bin/pypi-xmlrpc-shim" in README
    assert "```sh\nscripts/test\n```" in README
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r'^exec "\$\(dirname "\$0"\)/\.\./scripts/test"$', ci, re.MULTILINE)
    script = (ROOT / "scripts" / "test").read_text(encoding="utf-8")
    assert "pytest" in script and "mypy" in script and "ruff check" in script


@pytest.mark.e2e
def test_help_lists_every_setting() -> None:
    done = run_shim("--help", env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    for setting in REGISTRY:
        assert setting.option in text and setting.env in text


def test_the_docs_page_lists_every_method_of_its_mode(client: TestClient) -> None:
    for path, mode in (("/", Mode.RESTORE), ("/today/", Mode.PYPI_TODAY)):
        page = client.get(path).text
        assert re.findall(r"<code>([\w.]+)\(", page) == [s.name for s in METHODS if s.name in METHODS.names(mode)]


def test_the_always_refusing_methods_are_refusals_in_the_table_and_the_docs() -> None:
    rows = {m[1]: m[0] for m in re.finditer(r"^\| `([\w.]+)\(.*$", _section("methods"), re.MULTILINE)}
    for name in ("package_data", "package_urls", "top_packages"):
        spec = METHODS.by_name[name]
        assert spec.function is None and isinstance(spec.restore, Refuse) and isinstance(spec.today, Refuse)
        cells = [cell.strip() for cell in rows[name].split("|")]
        assert cells[4:6] == ["fault `RuntimeError`", "fault `RuntimeError`"], cells
        assert "answers" not in rows[name]


def test_the_fault_tables_come_from_the_fault_definitions(client: TestClient) -> None:
    listed = re.findall(r"^\| (-\d+) \| `(.*)` \|", _section("faults"), re.MULTILINE)
    assert listed == [(str(d.fault.code), d.fault.string) for d in DOCUMENTED]
    page = client.get("/").text
    assert re.findall(r"<tr><td>(-\d+)</td><td><code>(.*?)</code>", page) == [
        (str(d.fault.code), html.escape(d.fault.string)) for d in DOCUMENTED
    ]


def test_a_default_that_is_a_value_is_shown_from_that_value() -> None:
    for setting in REGISTRY:
        if setting.computed is not None or setting.shown:
            continue
        value = setting.default
        shown = "none" if value in (None, ()) else f"`{str(value).lower() if isinstance(value, bool) else value}`"
        if isinstance(value, float):
            shown = f"`{value:g}`"
        assert setting.default_doc.startswith(shown), (setting.name, setting.default_doc)
    assert BY_NAME["max_body_bytes"].default_doc == "`1048576` (1 MiB)"
    assert BY_NAME["rate_limit"].default_doc == "`3600 per minute`"
    assert BY_NAME["crawl_rate"].default_doc == "`5` (a second)"


def test_the_docs_page_shows_every_setting_with_its_registry_default(client: TestClient) -> None:
    page = client.get("/").text
    shown = re.findall(r"<tr><td><code>(SHIM_\w+)</code></td><td><code>(--[\w-]+)</code></td><td>(.*?)</td>", page)
    expected = []
    for setting in REGISTRY:
        doc = setting.default_doc
        cell = (
            f"<code>{html.escape(doc[1:-1])}</code>" if doc.startswith("`") and doc.endswith("`") else html.escape(doc)
        )
        expected.append((setting.env, setting.option, cell))
    assert shown == expected
