"""Every fault string of spec §2 that applies, pinned verbatim through a real XML-RPC round trip."""

from __future__ import annotations

import logging
import xmlrpc.client
from typing import Any

import pytest
from starlette.testclient import TestClient

from shim.app import create_app
from shim.errors import Refused
from shim.methods.table import METHODS
from shim.xmlrpc.table import Grade, MethodSpec, MethodTable, Serve

from .helpers import Rpc, call, fault_of, make_settings, stable_id

# Spec §2.3, word for word. Types are checked before anything else, in every mode and for every
# method, retired ones included (spec §0.2).
INVALID_PARAMS = [
    ("package_releases", (), "client error; package_name: Missing required argument"),
    ("package_data", (), "client error; package_name: Missing required argument; version: Missing required argument"),
    ("changelog_last_serial", (1,), "client error; 1: Unexpected positional argument"),
    (
        "list_packages",
        ("one", "two"),
        "client error; 1: Unexpected positional argument; 2: Unexpected positional argument",
    ),
    ("package_roles", ("a", "b"), "client error; 2: Unexpected positional argument"),
    ("changelog_since_serial", ("wrong!",), "client error; serial: Input should be a valid integer"),
    ("changelog_since_serial", (True,), "client error; serial: Input should be a valid integer"),
    ("changelog_since_serial", (1.0,), "client error; serial: Input should be a valid integer"),
    ("changelog_since_serial", (None,), "client error; serial: Input should be a valid integer"),
    (
        "changelog",
        ("wrong!", "also wrong!"),
        "client error; since: Input should be a valid integer; with_ids: Input should be a valid boolean",
    ),
    ("changelog", (0, 1), "client error; with_ids: Input should be a valid boolean"),
    ("package_roles", (5,), "client error; package_name: Input should be a valid string"),
    (
        "release_urls",
        (1, 2),
        "client error; package_name: Input should be a valid string; version: Input should be a valid string",
    ),
    (
        "release_data",
        (1, 2),
        "client error; package_name: Input should be a valid string; version: Input should be a valid string",
    ),
    ("package_roles", (xmlrpc.client.Binary(b"x"),), "client error; package_name: Input should be a valid string"),
    (
        "changelog_since_serial",
        (xmlrpc.client.DateTime(20260102),),
        "client error; serial: Input should be a valid integer",
    ),
    ("package_releases", ("x", 1), "client error; show_hidden: Input should be a valid boolean"),
    ("browse", ("Foo",), "client error; classifiers: Input should be a valid list"),
    (
        "browse",
        (["a", 1, 2],),
        "client error; classifiers: Input should be a valid string; classifiers: Input should be a valid string",
    ),
    ("top_packages", ("x",), "client error; num: Input should be a valid integer"),
    ("search", ("x",), "client error; spec: Input should be a valid dictionary"),
    (
        "search",
        ({"name": 1},),
        "client error; spec: Input should be a valid string; spec: Input should be a valid list",
    ),
    ("search", ({"name": "x"}, 1), "client error; operator: Input should be a valid string"),
    ("system.multicall", (), "client error; args: Missing required argument"),
    ("user_packages", (), "client error; username: Missing required argument"),
]


@pytest.mark.parametrize("path", ["/pypi", "/today/pypi"])
@pytest.mark.parametrize(
    ("method", "params", "string"), INVALID_PARAMS, ids=[f"{m}{stable_id(p)}" for m, p, _ in INVALID_PARAMS]
)
def test_argument_faults_are_warehouses_word_for_word(
    rpc: Rpc, path: str, method: str, params: tuple[Any, ...], string: str
) -> None:
    assert fault_of(rpc, method, *params, path=path) == (-32602, string)


@pytest.mark.parametrize("path", ["/pypi", "/today/pypi"])
def test_unknown_method_is_not_found(rpc: Rpc, path: str) -> None:
    assert fault_of(rpc, "multipassssss", path=path) == (-32601, "server error; requested method not found")


def test_a_body_without_a_method_name_is_not_found(client: TestClient) -> None:
    body = xmlrpc.client.dumps(("x",), methodresponse=True).encode()
    response = client.post("/pypi", content=body, headers={"Content-Type": "text/xml"})
    with pytest.raises(xmlrpc.client.Fault) as caught:
        xmlrpc.client.loads(response.content)
    assert (caught.value.faultCode, caught.value.faultString) == (-32601, "server error; requested method not found")


@pytest.mark.parametrize("body", [b"", b"<methodCall>", b"\x00\x01", b"<?xml version='1.0'?><!DOCTYPE a []><a/>"])
def test_unparsable_bodies_are_parse_errors_with_http_200(client: TestClient, body: bytes) -> None:
    response = client.post("/pypi", content=body, headers={"Content-Type": "text/xml"})
    assert response.status_code == 200
    with pytest.raises(xmlrpc.client.Fault) as caught:
        xmlrpc.client.loads(response.content)
    assert (caught.value.faultCode, caught.value.faultString) == (-32700, "parse error; not well formed")


def _table_with(function: Any, returns: str = "int") -> MethodTable:
    spec = MethodSpec(
        "probe",
        function,
        returns=returns,
        summary="test probe",
        grade=Grade.EXACT,
        note="",
        restore=Serve(),
        today=Serve(),
    )
    return MethodTable((*METHODS.entries, spec))


def _probe(function: Any, **settings: Any) -> Any:
    """Call a one-off method `probe` through the real app; its value, or its fault as (code, string)."""
    table = _table_with(function)
    with TestClient(create_app(make_settings(**settings), methods=table)) as client:
        try:
            return call(client, "probe")
        except xmlrpc.client.Fault as fault:
            return (fault.faultCode, fault.faultString)


def test_an_unexpected_exception_is_an_application_error_logged_and_never_leaked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def probe(context: object) -> None:
        raise KeyError("internal detail /srv/secret/path")

    with caplog.at_level(logging.ERROR, logger="shim"):
        assert _probe(probe) == (-32500, "application error")
    record = next(r for r in caplog.records if r.name == "shim.xmlrpc.dispatch")
    assert record.exc_info is not None and "internal detail" in caplog.text


def test_a_refusal_raised_by_a_method_names_its_exception_class() -> None:
    async def probe(context: object) -> None:
        raise Refused(TypeError("Invalid spec, must be a mapping/dictionary."))

    assert _probe(probe) == (-32500, "TypeError: Invalid spec, must be a mapping/dictionary.")


def test_an_integer_beyond_32_bits_is_an_application_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def probe(context: object) -> int:
        return 2**31

    with caplog.at_level(logging.ERROR, logger="shim"):
        assert _probe(probe) == (-32500, "application error")
    assert "2147483648" in caplog.text


def test_an_integer_beyond_32_bits_goes_out_as_i8_when_the_setting_allows_it() -> None:
    async def probe(context: object) -> int:
        return 2**40

    assert _probe(probe, allow_i8=True) == 2**40


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_another_http_method_on_the_xmlrpc_route_is_an_application_error(client: TestClient, method: str) -> None:
    # Spec §4.1 case 26: Warehouse maps HTTPMethodNotAllowed to XmlRpcApplicationError.
    response = client.request(method, "/pypi", headers={"Content-Type": "text/xml"})
    assert response.status_code == 200
    with pytest.raises(xmlrpc.client.Fault) as caught:
        xmlrpc.client.loads(response.content)
    assert (caught.value.faultCode, caught.value.faultString) == (-32500, "application error")
