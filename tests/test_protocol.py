"""The protocol layer alone: bytes exactly as PyPI renders them, and parsing that refuses what is unsafe."""

from __future__ import annotations

import datetime
import xmlrpc.client
from typing import Any

import pytest

from shim.xmlrpc.protocol import NotWellFormed, Raw, WireError, dump_fault, dump_response, encode_value, parse_call
from shim.xmlrpc.text import clean_for_xml, strip_illegal_xml

from .helpers import stable_id

SAMPLES = [
    "pypi-only",
    "",
    "é<&>\"'",
    0,
    -(2**31),
    2**31 - 1,
    True,
    False,
    None,
    1.5,
    [],
    {},
    ["a", None, 1, [True, {"k": "v"}]],
    ("tuple", "becomes", "array"),
    {"name": "日本語", "nested": {"list": [1, 2], "nil": None}},
    xmlrpc.client.DateTime(datetime.datetime(2018, 7, 13, 11, 30, 36)),
    xmlrpc.client.Binary(b"\x00\x01binary"),
]


@pytest.mark.parametrize("value", SAMPLES, ids=stable_id)
def test_responses_are_byte_for_byte_what_warehouse_renders(value: Any) -> None:
    warehouse = xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True).encode()
    assert dump_response(value) == warehouse


def test_faults_are_byte_for_byte_what_pyramid_rpc_renders() -> None:
    body = dump_fault(-32601, "server error; requested method not found")
    assert (
        body
        == xmlrpc.client.dumps(
            xmlrpc.client.Fault(-32601, "server error; requested method not found"), methodresponse=True
        ).encode()
    )
    # faultCode comes before faultString on the wire: some clients read them by position.
    assert body.index(b"faultCode") < body.index(b"faultString")


@pytest.mark.parametrize(
    ("text", "on_the_wire"),
    [
        ("nul\x00byte", "nulbyte"),
        ("escape\x1b[0m", "escape[0m"),
        # XML readers turn CR into LF, for PyPI's answers as for ours.
        ("tab\tnewline\ncr\r", "tab\tnewline\ncr\n"),
        ("del\x7f and C1\x80\x9f", "del and C1"),
        ("non-characters\ufffe\uffff\U0001fffe", "non-characters"),
        ("lone surrogate \ud800", "lone surrogate "),
        ("kept: é…日本語\U0001f40d", "kept: é…日本語\U0001f40d"),
    ],
)
def test_no_xml_illegal_character_reaches_the_wire(text: str, on_the_wire: str) -> None:
    body = dump_response({"key\x00": [text]})
    (value,), _ = xmlrpc.client.loads(body)
    assert value == {"key": [on_the_wire]}


def test_warehouse_cleaner_turns_non_ascii_into_literal_character_references() -> None:
    # Spec §4.1 case 25, and the literal text a client then reads.
    assert clean_for_xml("Hello…") == "Hello&#8230;"
    assert clean_for_xml("Stripe\x1b") == "Stripe"
    assert clean_for_xml(None) is None
    assert clean_for_xml("") == ""
    (value,), _ = xmlrpc.client.loads(dump_response(clean_for_xml("Hello…")))
    assert value == "Hello&#8230;"
    assert strip_illegal_xml("a\x00b") == "ab"


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, [1, 2**40], {"serial": 2**63}])
def test_integers_beyond_32_bits_are_refused_by_default(value: object) -> None:
    with pytest.raises(WireError):
        dump_response(value)


def test_i8_is_written_only_when_allowed_and_only_where_needed() -> None:
    body = dump_response([1, 2**40], allow_i8=True)
    assert b"<int>1</int>" in body and b"<i8>1099511627776</i8>" in body
    (value,), _ = xmlrpc.client.loads(body)
    assert value == [1, 2**40]
    with pytest.raises(WireError):
        dump_response(2**63, allow_i8=True)


@pytest.mark.parametrize("value", [object(), {1: "key not text"}, float("nan"), float("inf"), {"s": {1, 2}}])
def test_values_xml_rpc_cannot_carry_are_refused_not_leaked(value: object) -> None:
    with pytest.raises(WireError):
        dump_response(value)


def test_recursive_structures_are_refused() -> None:
    loop: dict[str, object] = {}
    loop["self"] = loop
    with pytest.raises(WireError):
        dump_response(loop)


def test_raw_fragments_are_spliced_as_they_are() -> None:
    inner = encode_value(["slot"])
    (value,), _ = xmlrpc.client.loads(dump_response([inner, Raw(encode_value({"a": 1}).xml)]))
    assert value == [["slot"], {"a": 1}]


def test_a_spliced_raw_is_shared_not_copied() -> None:
    big = encode_value([f"project-{i}" for i in range(20_000)])
    slot = encode_value([big])
    assert all(any(part is piece for piece in slot.parts) for part in big.parts)
    body = dump_response([slot, slot])
    value: Any = xmlrpc.client.loads(body)[0][0]
    first = big.parts[0]
    assert isinstance(first, bytes)  # an encoded value's pieces are bytes; only a spliced answer is lazy
    assert body.count(first) == 2 and value[1][0][0] == "project-0"


def test_a_call_is_read_with_its_method_and_params() -> None:
    body = xmlrpc.client.dumps(("roundup", "1.6.0", None), methodname="release_urls", allow_none=True)
    call = parse_call(body.encode())
    assert call.method == "release_urls"
    assert call.params == ("roundup", "1.6.0", None)


def test_values_keep_their_xml_rpc_types_as_warehouse_reads_them() -> None:
    body = xmlrpc.client.dumps((xmlrpc.client.DateTime(), xmlrpc.client.Binary(b"x"), True, 1.0), methodname="m")
    params = parse_call(body.encode()).params
    assert isinstance(params[0], xmlrpc.client.DateTime)
    assert isinstance(params[1], xmlrpc.client.Binary)
    assert params[2] is True and isinstance(params[3], float)


def test_a_response_body_has_no_method_name() -> None:
    body = xmlrpc.client.dumps((1,), methodresponse=True)
    assert parse_call(body.encode()).method is None


BAD_BODIES = {
    "empty": b"",
    "truncated": b"<?xml version='1.0'?><methodCall><methodName>list_packages</methodName><params>",
    "not xml": b"list_packages()",
    "stray end tag": b"<methodCall></struct></methodCall>",
    "bad utf-8": b"<methodCall><methodName>\xff\xfe</methodName></methodCall>",
    "unknown encoding": b"<?xml version='1.0' encoding='klingon'?><methodCall><methodName>a</methodName></methodCall>",
    "int too long to convert": (
        b"<methodCall><methodName>a</methodName><params><param><value><int>"
        + b"9" * 5000
        + b"</int></value></param></params></methodCall>"
    ),
    "not an int": b"<methodCall><methodName>a</methodName><params><param><value><int>x</int></value>"
    b"</param></params></methodCall>",
    "fault instead of call": xmlrpc.client.dumps(xmlrpc.client.Fault(1, "x"), methodresponse=True).encode(),
    "internal entity": b"<?xml version='1.0'?><!DOCTYPE m [<!ENTITY a 'list_packages'>]>"
    b"<methodCall><methodName>&a;</methodName></methodCall>",
    "billion laughs": b"<?xml version='1.0'?><!DOCTYPE l [<!ENTITY l0 'ha'>"
    + b"".join(
        b"<!ENTITY l%d '&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;'>" % ((i,) + (i - 1,) * 10)
        for i in range(1, 10)
    )
    + b"]><methodCall><methodName>&l9;</methodName></methodCall>",
    "external entity": b"<?xml version='1.0'?><!DOCTYPE m [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
    b"<methodCall><methodName>&x;</methodName></methodCall>",
    "external dtd": b"<?xml version='1.0'?><!DOCTYPE m SYSTEM 'http://127.0.0.1:9/evil.dtd'>"
    b"<methodCall><methodName>a</methodName></methodCall>",
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_anything_unreadable_or_unsafe_is_not_well_formed(body: bytes) -> None:
    with pytest.raises(NotWellFormed):
        parse_call(body)
