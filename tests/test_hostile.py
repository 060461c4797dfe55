"""Hostile and broken input (the corpus in tests/hostile_corpus.py): every request gets the right fault or HTTP
status, memory stays bounded, and the upstream is never asked for anything outside the documented shapes. Then
property-based checks of the protocol: every value round-trips, and no body gets anything but a well-formed answer."""

from __future__ import annotations

import math
import re
import tracemalloc
import xmlrpc.client
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from shim.app import create_app
from shim.xmlrpc.protocol import Call, NotWellFormed, dump_response, parse_call
from testkit.fakeindex import FakeIndex

from .helpers import make_settings
from .hostile_corpus import CORPUS, XML, Case

pytestmark = pytest.mark.heavy  # seconds of memory and volume measurement: run after the fast stage


def _expect(case: Case, response: httpx.Response) -> None:
    if isinstance(case.expect, int):
        assert response.status_code == case.expect, response.text[:200]
        return
    assert response.status_code == 200, response.text[:200]
    assert response.headers["content-type"] == "text/xml; charset=UTF-8"
    assert b"X-Injected" not in b"".join(f"{k}: {v}".encode() for k, v in response.headers.items())
    try:
        value: Any = xmlrpc.client.loads(response.content, use_builtin_types=True)[0][0]
    except xmlrpc.client.Fault as fault:
        value = (fault.faultCode, fault.faultString)
    if callable(case.expect):
        assert case.expect(value), value
    else:
        assert value == case.expect


@pytest.fixture(scope="module")
def corpus_app() -> Iterator[tuple[TestClient, FakeIndex]]:
    fake = FakeIndex()
    settings = make_settings(max_body_bytes=256 * 1024, rate_limit=None, upstream_retries=0)
    with TestClient(create_app(settings, transport=httpx.ASGITransport(app=fake))) as client:
        yield client, fake


def test_the_corpus_is_large_and_varied() -> None:
    assert len(CORPUS) >= 80 and len({case.name for case in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_each_bad_request_gets_the_right_answer(corpus_app: tuple[TestClient, FakeIndex], case: Case) -> None:
    client, _ = corpus_app
    body = case.body() if callable(case.body) else case.body
    headers = XML if case.headers is None else case.headers
    response = client.request(case.method, case.path, content=body, headers=headers)
    _expect(case, response)


def test_the_whole_corpus_runs_in_bounded_memory_and_asks_only_documented_shapes(
    corpus_app: tuple[TestClient, FakeIndex],
) -> None:
    client, fake = corpus_app
    fake.requests.clear()
    tracemalloc.start()
    try:
        for case in CORPUS:
            body = case.body() if callable(case.body) else case.body
            client.request(case.method, case.path, content=body, headers=XML if case.headers is None else case.headers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The gzip bomb alone would be 50 MB; the biggest legitimate body is capped at 256 KiB.
    assert peak < 40 * 1024 * 1024, peak
    allowed = (
        r"/simple/",
        r"/pypi/[a-z0-9-]+/json",
        r"/pypi/[a-z0-9-]+/[A-Za-z0-9.!+_-]+/json",
        r"/rss/[a-z/0-9-]+\.xml",
    )
    for request in fake.requests:
        assert request.host == "upstream.test"
        assert any(re.fullmatch(pattern, request.path) for pattern in allowed), request.path


# Properties

# mypy gives a tuple display no item context from a Collection[...] parameter (python/mypy#21541).
xml_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=40)  # type: ignore[arg-type]
leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**31), max_value=2**31 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | xml_text
)
values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(xml_text, children, max_size=5),
    max_leaves=30,
)


def _legal(value: Any) -> Any:
    """What a client reads back: XML-illegal characters are never sent."""
    from shim.xmlrpc.text import strip_illegal_xml

    if isinstance(value, str):
        return strip_illegal_xml(value)
    if isinstance(value, list):
        return [_legal(v) for v in value]
    if isinstance(value, dict):
        legal: dict[str, Any] = {}
        for k, v in value.items():
            legal[strip_illegal_xml(k)] = _legal(v)
        return legal
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


@settings(max_examples=200, deadline=None)
@given(values)
def test_every_value_round_trips(value: Any) -> None:
    (back,), _ = xmlrpc.client.loads(dump_response(value), use_builtin_types=True)
    expected = _legal(value)
    if isinstance(expected, dict) and len(expected) < len(value):  # keys that differed only by illegal chars
        return
    assert _same(back, expected)


xmlish = st.lists(
    st.sampled_from(
        [
            "<methodCall>",
            "</methodCall>",
            "<methodName>",
            "</methodName>",
            "list_packages",
            "package_roles",
            "<params>",
            "</params>",
            "<param>",
            "</param>",
            "<value>",
            "</value>",
            "<string>",
            "</string>",
            "roundup",
            "<int>",
            "</int>",
            "7",
            "<array>",
            "</array>",
            "<data>",
            "</data>",
            "<struct>",
            "</struct>",
            "<member>",
            "</member>",
            "<name>",
            "</name>",
            "<nil/>",
            "<boolean>",
            "</boolean>",
            "1",
            "&amp;",
            "&#0;",
            "<!DOCTYPE x>",
        ]
    ),
    max_size=40,
).map(lambda parts: "".join(parts).encode())
# Real calls, as a client writes them: any method name, any values.
calls = st.builds(
    lambda params, method: xmlrpc.client.dumps(tuple(params), methodname=method, allow_none=True).encode(),
    st.lists(values, max_size=3),
    st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="<&>"), min_size=1, max_size=20),
)
# What defusedxml refuses on purpose, where the standard library's own parser would read on.
DEFUSED = ("DTDForbidden:", "EntitiesForbidden:", "ExternalReferenceForbidden:")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000) | st.text(max_size=500).map(str.encode) | xmlish | calls)
def test_no_body_makes_the_parser_raise_anything_but_not_well_formed(body: bytes) -> None:
    # The reference: what the standard library reads from the same body (params, method name), if anything.
    try:
        expected: tuple[Any, ...] | None = xmlrpc.client.loads(body, use_builtin_types=False)
    except Exception:
        expected = None
    try:
        parsed = parse_call(body)
    except NotWellFormed as exc:  # anything else the parser raises fails the test
        assert type(exc) is NotWellFormed
        # Refused: the standard library cannot read it either, or it is what defusedxml refuses.
        assert expected is None or str(exc).startswith(DEFUSED), (body, expected, exc)
        return
    assert isinstance(parsed, Call) and (parsed.method is None or isinstance(parsed.method, str))
    assert expected is not None, (body, parsed)  # read only what the standard library reads
    assert (parsed.params, parsed.method) == expected, body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=500) | xmlish | calls)
def test_every_answer_is_well_formed_xml_rpc(corpus_app: tuple[TestClient, FakeIndex], body: bytes) -> None:
    client, _ = corpus_app
    response = client.post("/pypi", content=body, headers=XML)
    assert response.status_code == 200 and response.headers["content-type"] == "text/xml; charset=UTF-8"
    try:
        xmlrpc.client.loads(response.content)
    except xmlrpc.client.Fault as fault:
        assert fault.faultCode in (-32700, -32601, -32602, -32500, -32403)
