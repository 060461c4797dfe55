"""Calls in the common shape are read without an XML parser, and read exactly as the parser reads them."""

from __future__ import annotations

import random
import xmlrpc.client
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.xmlrpc.fastcall import read_simple_call
from shim.xmlrpc.protocol import Call, NotWellFormed, parse_call, parse_with_expat

scalars = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    st.booleans(),
)
names = st.text(st.sampled_from("abcxyz_.0129ABZ"), min_size=1, max_size=25)


def _read(parse: Callable[[bytes], Call], body: bytes) -> Call | None:
    try:
        return parse(body)
    except NotWellFormed:
        return None


def _expat(body: bytes) -> Call | None:
    return _read(parse_with_expat, body)


def _layouts(params: tuple[Any, ...], method: str) -> list[bytes]:
    """The call as xmlrpc.client writes it, and as other clients lay it out (compact, double quotes, CRLF)."""
    written = xmlrpc.client.dumps(params, methodname=method).encode()
    return [
        written,
        written.replace(b"\n", b""),
        written.replace(b"<?xml version='1.0'?>", b'<?xml version="1.0" encoding="UTF-8"?>'),
        written.replace(b"\n", b"\r\n"),
        written.replace(b"<value><string>", b"<value>").replace(b"</string></value>", b"</value>"),
        written.replace(b"<int>", b"<i4>").replace(b"</int>", b"</i4>"),
        written.removeprefix(b"<?xml version='1.0'?>\n"),
    ]


@pytest.mark.heavy  # a second of generated bodies: with the end-to-end stage
@settings(max_examples=150, deadline=None)
@given(st.lists(scalars, max_size=4).map(tuple), names)
def test_a_call_of_scalars_reads_as_the_parser_reads_it_in_every_layout(params: tuple[Any, ...], method: str) -> None:
    for body in _layouts(params, method):
        fast = read_simple_call(body)
        if fast is not None:
            assert Call(*fast) == _expat(body), body
        assert _read(parse_call, body) == _expat(body)


@pytest.mark.heavy
@settings(max_examples=150, deadline=None)
@given(st.lists(scalars, max_size=3).map(tuple), names, st.randoms(use_true_random=False))
def test_a_mutated_call_is_read_as_the_parser_reads_it_or_left_to_the_parser(
    params: tuple[Any, ...], method: str, rng: random.Random
) -> None:
    body = bytearray(xmlrpc.client.dumps(params, methodname=method).encode())
    for _ in range(rng.randint(1, 4)):  # a byte changed, dropped or added, anywhere
        at = rng.randrange(len(body))
        action = rng.choice(("change", "drop", "add"))
        if action == "drop":
            del body[at]
        else:
            byte = rng.choice(b"<>/&;#\r\n\x00\x1f\x7f\xc3\xa9\xef\xbf\xbe]x0-'\" ")
            body[at : at + (action == "change")] = bytes([byte])
    fast = read_simple_call(bytes(body))
    if fast is not None:
        assert Call(*fast) == _expat(bytes(body)), bytes(body)


def test_the_calls_legacy_clients_send_most_are_read_without_the_parser() -> None:
    for params, method in [
        (("httpx",), "package_releases"),
        (("httpx", True), "package_releases"),
        (("httpx", "0.28.1"), "release_urls"),
        (("httpx", "0.28.1"), "release_data"),
        ((12345,), "changelog_since_serial"),
        ((), "changelog_last_serial"),
        (("Frédéric & <co>",), "user_packages"),
    ]:
        body = xmlrpc.client.dumps(params, methodname=method).encode()
        assert read_simple_call(body) == (method, params)


def test_markup_references_and_structures_are_left_to_the_parser() -> None:
    left = [
        xmlrpc.client.dumps(({"name": "x"},), methodname="search").encode(),  # a struct
        xmlrpc.client.dumps((["a"],), methodname="m").encode(),  # an array
        xmlrpc.client.dumps((None,), methodname="m", allow_none=True).encode(),  # nil
        b"<?xml version='1.0' encoding='latin-1'?><methodCall><methodName>m</methodName></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param><value>&#65;</value></param></params></methodCall>",
        b"<!DOCTYPE x><methodCall><methodName>m</methodName></methodCall>",
    ]
    for body in left:
        assert read_simple_call(body) is None, body
