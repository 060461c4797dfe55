"""Each mode's answer for every method in the table, pinned: restore (the last working behaviour),
pypi-today (what PyPI answers now, spec §1.1 and §2.2) and removed (the endpoint gone)."""

from __future__ import annotations

import json
import xmlrpc.client
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.utils import canonicalize_name
from starlette.testclient import TestClient

from shim.app import create_app
from shim.methods.table import METHODS
from shim.modes import Mode
from testkit.fakeindex import FIXTURES, FakeIndex

from .helpers import Rpc, make_settings
from .seed import ROUNDUP_160_DATA, ROUNDUP_160_URLS

URL = "https://warehouse.pypa.io/api-reference/xml-rpc.html#deprecated-methods"
NOT_FOUND = (-32601, "server error; requested method not found")
DEPRECATED = (-32500, f"RuntimeError: This API has been deprecated. See {URL} for more information.")
BIGQUERY = (-32500, f"RuntimeError: This API has been removed. Use BigQuery instead. See {URL} for more information.")


def not_yet(method: str) -> tuple[int, str]:
    return (-32500, f"RuntimeError: The XMLRPC {method} method is not served by this service yet.")


def gone(method: str, instead: str) -> tuple[int, str]:
    return (
        -32500,
        f"RuntimeError: PyPI no longer supports the XMLRPC {method} method. Use {instead} instead. "
        f"See {URL} for more information.",
    )


# The fake index's fixture projects, as the Simple index lists them (sorted by normalised name).
_PROJECTS = sorted(
    (json.loads(p.read_text(encoding="utf-8")) for p in Path(FIXTURES).glob("*.json")),
    key=lambda project: canonicalize_name(project["name"]),
)
NAMES = [p["name"] for p in _PROJECTS]
SERIALS = {p["name"]: p["last_serial"] for p in _PROJECTS}
LAST_SERIAL = max(SERIALS.values())
ROUNDUP_ROLES = [["Owner", "richard"], ["Maintainer", "rouilj"]]
ROUNDUP_HIT = {
    "name": "roundup",
    "summary": "A simple-to-use and -install issue-tracking system.",
    "version": "1.6.1",
    "_pypi_ordering": False,
}


class _AnyInt:
    """Equal to any int (a timestamp: when the service first looked)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and not isinstance(other, bool)

    __hash__ = None  # type: ignore[assignment]


# Before the first change the service saw, the feed proves only that each project changed at its serial.
BASELINE_ROWS = [
    [p["name"], None, _AnyInt(), "update", p["last_serial"]] for p in sorted(_PROJECTS, key=lambda p: p["last_serial"])
]

RESTORE_METHODS = [
    "browse",
    "changelog",
    "changelog_last_serial",
    "changelog_since_serial",
    "list_packages",
    "list_packages_with_serial",
    "package_data",
    "package_hosting_mode",
    "package_releases",
    "package_roles",
    "package_urls",
    "release_data",
    "release_urls",
    "search",
    "system.listMethods",
    "system.methodHelp",
    "system.methodSignature",
    "system.multicall",
    "top_packages",
    "user_packages",
]

# (method, params, answer in restore mode, answer in pypi-today mode); a tuple (code, string) is a fault.
PINS: list[tuple[str, tuple[Any, ...], Any, Any]] = [
    ("changelog_last_serial", (), LAST_SERIAL, LAST_SERIAL),
    ("changelog_since_serial", (0,), BASELINE_ROWS, BASELINE_ROWS),
    ("list_packages_with_serial", (), SERIALS, SERIALS),
    ("package_roles", ("roundup",), ROUNDUP_ROLES, ROUNDUP_ROLES),
    ("user_packages", ("someone",), [], []),
    ("browse", (["Framework :: Django"],), [], []),
    (
        "search",
        ({"name": "roundup", "summary": ["one", "two"]}, "or"),
        [ROUNDUP_HIT],
        (
            -32500,
            "RuntimeError: PyPI no longer supports 'pip search' (or XML-RPC search). Please use "
            f"https://upstream.test/search (via a browser) instead. See {URL} for more information.",
        ),
    ),
    (
        "search",
        ({"name": "foo"}, "lol nope"),
        (-32500, "ValueError: Invalid operator, must be one of 'and' or 'or'."),
        None,  # today: the fault above, whatever the operator
    ),
    ("list_packages", (), NAMES, gone("list_packages", "Simple API")),
    ("package_releases", ("roundup",), ["1.6.1"], gone("package_releases", "JSON or Simple API")),
    (
        "package_releases",
        ("roundup", True),
        ["1.6.1", "1.6.0", "1.5.1"],
        gone("package_releases", "JSON or Simple API"),
    ),
    ("release_urls", ("roundup", "1.6.0"), ROUNDUP_160_URLS, gone("release_urls", "JSON or Simple API")),
    ("release_data", ("roundup", "1.6.0"), ROUNDUP_160_DATA, gone("release_data", "JSON or Simple API")),
    (
        "changelog",
        (0,),
        [row[:4] for row in BASELINE_ROWS],  # changelog_since_serial's rows, by time: the first look's
        (-32500, "ValueError: The changelog method has been deprecated, use changelog_since_serial instead."),
    ),
    ("changelog", (0, True), BASELINE_ROWS, None),
    ("package_hosting_mode", ("nope",), "pypi-only", NOT_FOUND),
    ("package_hosting_mode", ("roundup",), "pypi-only", NOT_FOUND),
    ("package_data", ("foo", "1.0.0"), DEPRECATED, DEPRECATED),
    ("package_urls", ("foo", "1.0.0"), DEPRECATED, DEPRECATED),
    ("top_packages", (), BIGQUERY, BIGQUERY),
    ("top_packages", (None,), BIGQUERY, BIGQUERY),
    ("top_packages", (5,), BIGQUERY, BIGQUERY),
    ("release_downloads", ("roundup", "1.6.0"), NOT_FOUND, NOT_FOUND),
    ("updated_releases", (0,), NOT_FOUND, NOT_FOUND),
    ("changed_packages", (0,), NOT_FOUND, NOT_FOUND),
    ("system.listMethods", (), RESTORE_METHODS, NOT_FOUND),
    (
        "system.methodHelp",
        ("package_hosting_mode",),
        'package_hosting_mode(package_name): `"pypi-only"`, for any name. Fidelity: exact. '
        "PyPI's constant; removed from PyPI in 2024 (-32601 in pypi-today mode).",
        NOT_FOUND,
    ),
    (
        "system.methodSignature",
        ("package_releases",),
        [["array", "string"], ["array", "string", "boolean"]],
        NOT_FOUND,
    ),
    ("system.methodSignature", ("changelog_last_serial",), [["int"]], NOT_FOUND),
    ("system.methodSignature", ("browse",), [["array", "array"]], NOT_FOUND),
    ("system.methodSignature", ("search",), [["array", "struct"], ["array", "struct", "string"]], NOT_FOUND),
    (
        "system.methodSignature",
        ("release_downloads",),
        (-32500, "ValueError: No method named 'release_downloads'."),
        NOT_FOUND,
    ),
    (
        "system.multicall",
        ([{"methodName": "package_hosting_mode", "params": ["x"]}],),
        [["pypi-only"]],
        (-32500, "ValueError: MultiCall requests have been deprecated, use individual requests instead."),
    ),
    (
        "system.multicall",
        ([],),
        [],
        (-32500, "ValueError: MultiCall requests have been deprecated, use individual requests instead."),
    ),
]


def _answer(rpc: Rpc, method: str, params: tuple[Any, ...], path: str) -> Any:
    try:
        return rpc(method, *params, path=path)
    except xmlrpc.client.Fault as fault:
        return (fault.faultCode, fault.faultString)


def test_every_method_in_the_table_is_pinned_here() -> None:
    assert {method for method, *_ in PINS} == {spec.name for spec in METHODS}


@pytest.mark.parametrize(("method", "params", "restore", "today"), PINS, ids=[f"{m}{p!r}" for m, p, *_ in PINS])
def test_restore_mode_answers(rpc: Rpc, method: str, params: tuple[Any, ...], restore: Any, today: Any) -> None:
    for path in ("/pypi", "/restore/pypi"):
        assert _answer(rpc, method, params, path) == restore


@pytest.mark.parametrize(("method", "params", "restore", "today"), PINS, ids=[f"{m}{p!r}" for m, p, *_ in PINS])
def test_pypi_today_mode_answers(rpc: Rpc, method: str, params: tuple[Any, ...], restore: Any, today: Any) -> None:
    if today is None:  # the first row for this method pins it; the operator is not checked any more
        today = next(t for m, _, _, t in PINS if m == method and t is not None)
    assert _answer(rpc, method, params, "/today/pypi") == today


@pytest.mark.parametrize("method", sorted({m for m, *_ in PINS}))
def test_removed_mode_answers_404_for_every_method(client: TestClient, method: str) -> None:
    body = xmlrpc.client.dumps((), methodname=method).encode()
    for path in ("/removed/pypi", "/removed/pypi/", "/removed/RPC2", "/removed/", "/removed"):
        response = client.post(path, content=body, headers={"Content-Type": "text/xml"})
        assert (response.status_code, response.text) == (404, "404 Not Found")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [(Mode.RESTORE, "pypi-only"), (Mode.PYPI_TODAY, NOT_FOUND), (Mode.REMOVED, 404)],
)
def test_the_mode_setting_picks_the_default_and_prefixes_still_choose(mode: Mode, expected: Any) -> None:
    body = xmlrpc.client.dumps(("x",), methodname="package_hosting_mode").encode()
    headers = {"Content-Type": "text/xml"}
    with TestClient(create_app(make_settings(mode=mode), transport=httpx.ASGITransport(app=FakeIndex()))) as client:
        response = client.post("/pypi", content=body, headers=headers)
        if expected == 404:
            assert response.status_code == 404
        else:
            try:
                answer: Any = xmlrpc.client.loads(response.content)[0][0]
            except xmlrpc.client.Fault as fault:
                answer = (fault.faultCode, fault.faultString)
            assert answer == expected
        # Whatever the default, the prefixes pick a mode per request.
        restored = client.post("/restore/pypi", content=body, headers=headers)
        assert xmlrpc.client.loads(restored.content)[0][0] == "pypi-only"
        assert client.post("/removed/pypi", content=body, headers=headers).status_code == 404


def test_multicall_answers_each_slot_as_its_own_call(client: TestClient, rpc: Rpc) -> None:
    calls = [
        {"methodName": "package_hosting_mode", "params": ["a"]},
        {"methodName": "multipassssss", "params": []},
        {"methodName": "package_roles", "params": [5]},
        {"methodName": "top_packages", "params": []},
        {"methodName": "system.multicall", "params": [[]]},
    ]
    assert rpc("system.multicall", calls) == [
        ["pypi-only"],
        {"faultCode": -32601, "faultString": "server error; requested method not found"},
        {"faultCode": -32602, "faultString": "client error; package_name: Input should be a valid string"},
        {"faultCode": BIGQUERY[0], "faultString": BIGQUERY[1]},
        {
            "faultCode": -32500,
            "faultString": "ValueError: system.multicall cannot be called from inside system.multicall.",
        },
    ]
    # Each sub-call counts as a call of its own (rate limits and metrics read these counts).
    counted = client.app.state.dispatcher.calls  # type: ignore[attr-defined]
    assert counted["system.multicall"] == 2 and counted["package_hosting_mode"] == 1 and counted["top_packages"] == 1
    assert "multipassssss" not in counted  # unknown methods are not calls


def test_multicall_takes_at_most_100_calls(rpc: Rpc) -> None:
    one = {"methodName": "package_hosting_mode", "params": ["x"]}
    assert rpc("system.multicall", [one] * 100) == [["pypi-only"]] * 100
    assert _answer(rpc, "system.multicall", ([one] * 101,), "/pypi") == (
        -32602,
        "client error; args: List should have at most 100 items after validation, not 101",
    )


@pytest.mark.parametrize(
    ("args", "string"),
    [
        ("x", "client error; args: Input should be a valid list"),
        ([{"params": []}], "client error; args: Field required"),
        ([{"methodName": 1, "params": []}], "client error; args: Input should be a valid string"),
        ([{"methodName": "a", "params": "b"}], "client error; args: Input should be a valid list"),
        (["not a struct"], "client error; args: Input should be a valid dictionary"),
    ],
)
def test_malformed_multicall_lists_are_client_errors(rpc: Rpc, args: Any, string: str) -> None:
    assert _answer(rpc, "system.multicall", (args,), "/pypi") == (-32602, string)
