"""The README, the docs page and `--help` are generated from the code: pin that they still agree."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from shim.config.registry import REGISTRY
from shim.config.settings import Settings
from shim.methods.table import METHODS
from shim.modes import Mode
from shim.web.docs import render_readme
from shim.xmlrpc.faults import APPLICATION_ERROR, DOCUMENTED, METHOD_NOT_FOUND, NOT_WELL_FORMED, SERVICE_UNAVAILABLE

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
    done = subprocess.run([sys.executable, "-m", "shim", "--help"], capture_output=True, text=True, check=True)
    text = " ".join(done.stdout.split())
    for setting in REGISTRY:
        assert setting.option in text and setting.env in text


def test_the_docs_page_lists_every_method_of_its_mode(client: TestClient) -> None:
    for path, mode in (("/", Mode.RESTORE), ("/today/", Mode.PYPI_TODAY)):
        page = client.get(path).text
        assert re.findall(r"<code>([\w.]+)\(", page) == [s.name for s in METHODS if s.name in METHODS.names(mode)]
