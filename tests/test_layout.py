"""The package's layers, checked from its source: imports point one way (web → xmlrpc/methods → catalog/upstream →
the shared words), no module imports itself back through others, and no module grows past 400 lines."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400

# Top to bottom: a module may import from its own floor or any floor below it, never above.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("shim.app", "shim.cli", "shim.__main__"),
    ("shim.web",),
    ("shim.wiring",),
    ("shim.methods",),
    ("shim.xmlrpc",),
    ("shim.config",),
    ("shim.catalog",),
    ("shim.upstream", "shim.shared", "shim.metrics"),
    ("shim", "shim.encodings", "shim.errors", "shim.exchange", "shim.logs", "shim.modes", "shim.versions"),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(folder: str) -> dict[str, Path]:
    return {module_name(path): path for path in sorted((ROOT / folder).rglob("*.py"))}


def imported(source: str, name: str, *, is_package: bool = False) -> set[str]:
    """Every module `source` (module `name`) imports, at any depth of its code, relative imports resolved."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from shim.config import parsers`
    return found


@functools.cache
def imports_of(path: Path) -> set[str]:
    """Parsed once per module for every check that asks (each check walks every module's imports)."""
    return imported(path.read_text(encoding="utf-8"), module_name(path), is_package=path.name == "__init__.py")


Graph = dict[str, set[str]]
SHIM = modules("shim")
GRAPH: Graph = {name: {m for m in imports_of(path) if m in SHIM and m != name} for name, path in SHIM.items()}


def floor(name: str) -> int:
    matches = [
        (len(prefix), level)
        for level, prefixes in enumerate(FLOORS)
        for prefix in prefixes
        if name == prefix or (prefix != "shim" and name.startswith(prefix + "."))
    ]
    assert matches, f"{name} is on no floor: add it to FLOORS"
    return max(matches)[1]


def upward_imports(graph: Graph) -> list[tuple[str, str]]:
    return sorted((name, m) for name, targets in graph.items() for m in targets if floor(m) < floor(name))


def cycles(graph: Graph) -> list[list[str]]:
    # Imports into a package's own __init__ (`from shim import __version__`) are not cycles of code.
    graph = {name: {m for m in targets if not name.startswith(m + ".")} for name, targets in graph.items()}
    state: dict[str, str] = {}
    found: list[list[str]] = []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph.get(name, set())):
            if state.get(target) == "open":
                found.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return found


def test_imports_point_down_the_layers() -> None:
    assert upward_imports(GRAPH) == []


def test_no_import_cycles() -> None:
    assert cycles(GRAPH) == []


def test_the_checks_find_an_upward_import_and_a_cycle() -> None:
    client = imported("from shim.web.app import create_app\n", "shim.upstream.client")
    bad: Graph = {"shim.upstream.client": client & {"shim.web.app"}, "shim.web.app": {"shim.upstream.client"}}
    assert upward_imports(bad) == [("shim.upstream.client", "shim.web.app")]
    assert cycles(bad) == [["shim.upstream.client", "shim.web.app", "shim.upstream.client"]]
    relative = imported("from ..errors import Refused\n", "shim.methods.roles")
    assert "shim.errors.Refused" in relative and "shim.errors" in relative


@pytest.mark.parametrize("folder", ["shim", "testkit", "scripts", "tests"])
def test_no_module_is_over_400_lines(folder: str) -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_nothing_outside_the_tests_imports_the_tests() -> None:
    for folder in ("shim", "testkit", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            imports = imports_of(path)
            assert not any(m == "tests" or m.startswith("tests.") for m in imports), path


def test_the_service_never_imports_the_testkit() -> None:
    for name, path in SHIM.items():
        assert not any(m.startswith("testkit") for m in imports_of(path)), name


def test_the_readme_names_every_part_of_the_package_and_only_what_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## How it is built", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(shim/[\w/.]*)`", section))
    assert all((ROOT / path).exists() for path in named), sorted(p for p in named if not (ROOT / p).exists())
    parts = {f"shim/{p.name}/" if p.is_dir() else f"shim/{p.name}" for p in (ROOT / "shim").iterdir()}
    parts -= {"shim/__init__.py", "shim/__main__.py", "shim/py.typed", "shim/__pycache__/"}
    assert parts <= named, sorted(parts - named)


def test_no_test_module_imports_another_test_module() -> None:
    # What tests share lives in conftest, a helper module of tests/, or testkit/: never in a test module.
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        imports = imports_of(path)
        assert not any(m.rpartition(".")[2].startswith("test_") or ".test_" in m for m in imports), path


def test_the_readme_lists_the_layers_top_to_bottom_as_the_check_does() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## How it is built", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`shim/" in line]
    first = [re.findall(r"`(shim/[\w/.]*)`", row)[0] for row in rows]
    floors = [floor(path.removesuffix("/").removesuffix(".py").replace("/", ".")) for path in first]
    assert floors == sorted(floors), list(zip(first, floors, strict=True))


def test_only_dispatch_turns_errors_into_faults() -> None:
    # The fault definitions live in faults.py and the wire format in protocol.py; only dispatch puts one on the wire.
    allowed = {"shim.xmlrpc.dispatch", "shim.xmlrpc.faults", "shim.xmlrpc.protocol"}
    rendering = {"dump_fault", "Fault"}
    users = {
        name
        for name, path in SHIM.items()
        if name not in allowed
        and any(
            isinstance(node, ast.Name) and node.id in rendering
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    }
    assert users == set()


def test_no_test_module_imports_conftest() -> None:
    # pytest loads conftest.py itself; what tests share as plain code is in tests/helpers.py.
    for path in sorted((ROOT / "tests").glob("*.py")):
        assert not any(m.rpartition(".")[2] == "conftest" for m in imports_of(path)), path
