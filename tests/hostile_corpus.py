"""The hostile-input corpus, kept as data: bad requests (bodies, encodings, methods, arguments, names) and the
fault or HTTP status each must get. tests/test_hostile.py sends them."""

from __future__ import annotations

import gzip
import xmlrpc.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

XML = {"Content-Type": "text/xml"}
PARSE = (-32700, "parse error; not well formed")
NOT_FOUND = (-32601, "server error; requested method not found")
APPLICATION = (-32500, "application error")


def call(method: str, *params: Any) -> bytes:
    return xmlrpc.client.dumps(params, methodname=method, allow_none=True).encode()


def raw_call(method: str, params_xml: str) -> bytes:
    head = f"<?xml version='1.0'?><methodCall><methodName>{method}</methodName>"
    return f"{head}<params>{params_xml}</params></methodCall>".encode()


def param(value_xml: str) -> str:
    return f"<param><value>{value_xml}</value></param>"


def nested_array(depth: int) -> str:
    return "<array><data><value>" * depth + "<string>x</string>" + "</value></data></array>" * depth


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes | Callable[[], Iterator[bytes]] = b""
    expect: Any = PARSE  # a (code, string) fault, a value, an int HTTP status, or a predicate
    method: str = "POST"
    path: str = "/pypi"
    headers: dict[str, str] | None = None


def invalid_params(*details: str) -> tuple[int, str]:
    return (-32602, "client error; " + "; ".join(details))


STRING = "Input should be a valid string"
INT = "Input should be a valid integer"
BILLION_LAUGHS = (
    "<?xml version='1.0'?><!DOCTYPE l [<!ENTITY l0 'ha'>"
    + "".join(f"<!ENTITY l{i} '{('&l' + str(i - 1) + ';') * 10}'>" for i in range(1, 10))
    + "]><methodCall><methodName>&l9;</methodName></methodCall>"
).encode()
QUADRATIC = (
    "<?xml version='1.0'?><!DOCTYPE q [<!ENTITY a '"
    + "x" * 50_000
    + "'>]><methodCall><methodName>"
    + "&a;" * 1_000
    + "</methodName></methodCall>"
).encode()


def chunks(data: bytes, size: int = 4096) -> Callable[[], Iterator[bytes]]:
    def generate() -> Iterator[bytes]:
        for start in range(0, len(data), size):
            yield data[start : start + size]

    return generate


OVERSIZED = call("package_releases", "x" * 300_000)  # the corpus app caps bodies at 256 KiB

CORPUS: list[Case] = [
    # XXE and external DTDs
    Case(
        "xxe file",
        raw_call("x", param("<string>&x;</string>")).replace(
            b"<?xml version='1.0'?>", b"<?xml version='1.0'?><!DOCTYPE m [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
        ),
    ),
    Case(
        "xxe http",
        b"<?xml version='1.0'?><!DOCTYPE m [<!ENTITY x SYSTEM 'http://127.0.0.1:9/x'>]>"
        b"<methodCall><methodName>&x;</methodName></methodCall>",
    ),
    Case(
        "parameter entity",
        b"<?xml version='1.0'?><!DOCTYPE m [<!ENTITY % p SYSTEM 'http://127.0.0.1:9/p'> %p;]>"
        b"<methodCall><methodName>a</methodName></methodCall>",
    ),
    Case(
        "external dtd",
        b"<?xml version='1.0'?><!DOCTYPE methodCall SYSTEM 'http://127.0.0.1:9/x.dtd'>"
        b"<methodCall><methodName>list_packages</methodName></methodCall>",
    ),
    Case(
        "public dtd",
        b'<?xml version="1.0"?><!DOCTYPE m PUBLIC "-//X//EN" "file:///etc/passwd">'
        b"<methodCall><methodName>a</methodName></methodCall>",
    ),
    Case(
        "internal entity",
        b"<?xml version='1.0'?><!DOCTYPE m [<!ENTITY a 'list_packages'>]>"
        b"<methodCall><methodName>&a;</methodName></methodCall>",
    ),
    Case("empty doctype", b"<?xml version='1.0'?><!DOCTYPE m []><methodCall><methodName>a</methodName></methodCall>"),
    Case(
        "xinclude",
        b"<?xml version='1.0'?><methodCall xmlns:xi='http://www.w3.org/2001/XInclude'><methodName>"
        b"<xi:include href='file:///etc/passwd' parse='text'/></methodName></methodCall>",
        NOT_FOUND,
    ),
    Case("billion laughs", BILLION_LAUGHS),
    Case("quadratic blow-up", QUADRATIC),
    # Deep nesting, huge strings, structs and arrays (within the size cap)
    Case(
        "deep array, typed list",
        raw_call("browse", param(nested_array(5_000))),
        invalid_params(f"classifiers: {STRING}"),
    ),
    Case(
        "deep array, untyped",
        raw_call("package_data", param(nested_array(5_000)) + param("<string>1</string>")),
        (
            -32500,
            "RuntimeError: This API has been deprecated. See "
            "https://warehouse.pypa.io/api-reference/xml-rpc.html#deprecated-methods for more information.",
        ),
    ),
    Case(
        "deep array to multicall",
        raw_call("system.multicall", param(nested_array(5_000))),
        invalid_params("args: Input should be a valid dictionary"),
    ),
    Case(
        "deep struct",
        raw_call(
            "search",
            param(
                "<struct><member><name>name</name><value>" * 2_000
                + "<string>x</string>"
                + "</value></member></struct>" * 2_000
            ),
        ),
        lambda v: v[0] == -32602,
    ),
    Case("huge string name", call("package_releases", "x" * 200_000), []),
    Case("huge string version", call("release_urls", "roundup", "1" * 200_000), []),
    Case("huge array", call("browse", ["c"] * 5_000), []),
    Case("huge struct", call("search", {f"k{i}": "v" for i in range(3_000)}), []),
    Case("many params", call("list_packages", *range(5_000)), lambda v: v[0] == -32602),
    Case("long method name", call("a" * 100_000), NOT_FOUND),
    # Bodies past the size cap
    Case("oversized plain", OVERSIZED),
    Case("oversized chunked", chunks(OVERSIZED)),
    Case("oversized gzip", gzip.compress(OVERSIZED), headers={**XML, "Content-Encoding": "gzip"}),
    Case("gzip bomb", gzip.compress(b"<methodCall>" + b" " * 50_000_000), headers={**XML, "Content-Encoding": "gzip"}),
    Case("lying content-length", OVERSIZED[:1000], headers={**XML, "Content-Length": "999999999"}),
    Case("bad gzip", b"\x1f\x8b\x08\x00garbage", headers={**XML, "Content-Encoding": "gzip"}),
    Case("unknown encoding", call("list_packages"), headers={**XML, "Content-Encoding": "zstd"}),
    # Invalid text
    Case("invalid utf-8 name", b"<methodCall><methodName>\xff\xfe</methodName></methodCall>"),
    Case("invalid utf-8 string", raw_call("package_roles", param("<string>XX</string>")).replace(b"XX", b"\xc3\x28")),
    Case(  # XML readers recognise UTF-16 by its first bytes
        "utf-16 without bom", "<methodCall><methodName>a</methodName></methodCall>".encode("utf-16-le"), NOT_FOUND
    ),
    Case(
        "latin-1 declared",
        "<?xml version='1.0' encoding='ISO-8859-1'?><methodCall><methodName>package_roles"
        "</methodName><params><param><value><string>caf\xe9</string></value></param></params></methodCall>".encode(
            "latin-1"
        ),
        [],
    ),
    Case(
        "unknown charset",
        b"<?xml version='1.0' encoding='x-martian'?><methodCall><methodName>a</methodName></methodCall>",
    ),
    Case("nul byte", b"<methodCall><methodName>list_packages\x00</methodName></methodCall>"),
    Case("control character", b"<methodCall><methodName>list\x01packages</methodName></methodCall>"),
    Case("lone surrogate reference", raw_call("package_roles", param("<string>&#xD800;</string>"))),
    # Content types and HTTP methods
    Case("no content type", call("list_packages"), 415, headers={}),
    Case(
        "form content type", call("list_packages"), 415, headers={"Content-Type": "application/x-www-form-urlencoded"}
    ),
    Case("json content type", b'{"method": "list_packages"}', 415, headers={"Content-Type": "application/json"}),
    Case("multipart", call("list_packages"), 415, headers={"Content-Type": "multipart/form-data; boundary=x"}),
    Case("text/plain", call("list_packages"), 415, headers={"Content-Type": "text/plain"}),
    Case("GET with xml", b"", APPLICATION, method="GET"),
    Case("PUT with xml", call("list_packages"), APPLICATION, method="PUT"),
    Case("DELETE with xml", b"", APPLICATION, method="DELETE"),
    Case("PATCH without xml", b"", 405, method="PATCH", headers={}),
    Case("OPTIONS", b"", 405, method="OPTIONS", headers={}),
    Case("GET on /RPC2", b"", 405, method="GET", path="/RPC2", headers={}),
    # Numbers
    Case("nan", raw_call("changelog_since_serial", param("<double>nan</double>")), invalid_params(f"serial: {INT}")),
    Case(
        "infinity",
        raw_call("changelog_since_serial", param("<double>1e999</double>")),
        invalid_params(f"serial: {INT}"),
    ),
    Case(
        "huge int",
        raw_call("changelog_since_serial", param("<int>" + "9" * 4000 + "</int>")),
        lambda v: isinstance(v, list),
    ),
    Case(
        "negative huge int",
        raw_call("changelog_since_serial", param("<i8>-" + "9" * 30 + "</i8>")),
        lambda v: isinstance(v, list),
    ),
    Case("huge since for changelog", raw_call("changelog", param("<i8>" + "9" * 30 + "</i8>")), []),
    Case("int beyond python's limit", raw_call("changelog_since_serial", param("<int>" + "9" * 5000 + "</int>"))),
    Case("not a number", raw_call("changelog_since_serial", param("<int>ten</int>"))),
    Case("float as int", raw_call("changelog_since_serial", param("<int>1.5</int>"))),
    Case("boolean 2", raw_call("package_releases", param("<string>roundup</string>") + param("<boolean>2</boolean>"))),
    Case(
        "bad datetime",
        raw_call("package_roles", param("<dateTime.iso8601>yesterday</dateTime.iso8601>")),
        invalid_params(f"package_name: {STRING}"),
    ),
    Case("bad base64", raw_call("package_roles", param("<base64>!!!notbase64</base64>"))),
    # Unknown value types, empty and truncated bodies, method names that are not strings
    Case(
        "unknown value type",
        raw_call("package_roles", param("<frobnicate>1</frobnicate>")),
    ),
    Case(
        "value without type",
        raw_call("package_roles", param("roundup")),
        [["Owner", "richard"], ["Maintainer", "rouilj"]],
    ),
    Case("empty body", b""),
    Case("whitespace body", b"   \n "),
    Case("truncated", call("package_releases", "roundup")[:-30]),
    Case("only a declaration", b"<?xml version='1.0'?>"),
    Case("not xml", b"package_releases('roundup')"),
    Case("html", b"<html><body>hello</body></html>"),
    Case("no method name", b"<methodCall><params></params></methodCall>", NOT_FOUND),
    Case("empty method name", b"<methodCall><methodName></methodName></methodCall>", NOT_FOUND),
    Case("method name with markup", b"<methodCall><methodName><int>1</int></methodName></methodCall>", NOT_FOUND),
    Case("a response, not a call", xmlrpc.client.dumps(("x",), methodresponse=True).encode(), NOT_FOUND),
    Case("a fault, not a call", xmlrpc.client.dumps(xmlrpc.client.Fault(1, "x"), methodresponse=True).encode()),
    Case("stray end tags", b"<methodCall></value></array></methodCall>"),
    Case("unclosed struct", raw_call("search", param("<struct><member><name>name</name>"))),
    # Multicall abuse
    Case(
        "nested multicall",
        call("system.multicall", [{"methodName": "system.multicall", "params": [[]]}]),
        [
            {
                "faultCode": -32500,
                "faultString": "ValueError: system.multicall cannot be called from inside system.multicall.",
            }
        ],
    ),
    Case(
        "101 sub-calls",
        call("system.multicall", [{"methodName": "list_packages", "params": []}] * 101),
        invalid_params("args: List should have at most 100 items after validation, not 101"),
    ),
    Case(
        "sub-call params not a list",
        call("system.multicall", [{"methodName": "a", "params": "b"}]),
        invalid_params("args: Input should be a valid list"),
    ),
    Case("sub-call without a name", call("system.multicall", [{"params": []}]), invalid_params("args: Field required")),
    Case(
        "multicall of a struct",
        call("system.multicall", {"methodName": "a"}),
        invalid_params("args: Input should be a valid list"),
    ),
    Case(
        "100 unknown sub-calls",
        call("system.multicall", [{"methodName": "nope", "params": []}] * 100),
        [{"faultCode": -32601, "faultString": "server error; requested method not found"}] * 100,
    ),
    # Header and log injection
    Case("crlf in a name", call("package_releases", "roundup\r\nX-Injected: 1"), []),
    Case("crlf in a version", call("release_data", "roundup", "1.6.0\r\nX-Injected: 1"), {}),
    Case("crlf in a user", call("user_packages", "bob\r\nX-Injected: 1"), []),
    Case("crlf in a classifier", call("browse", ["a\r\nX-Injected: 1"]), []),
    Case(
        "crlf in a method name",
        b"<methodCall><methodName>list_packages\r\nX-Injected: 1</methodName></methodCall>",
        NOT_FOUND,
    ),
    # Names, versions, users and classifiers built to reach other URLs
    Case("dot-dot name", call("package_roles", "../../simple"), []),
    Case("encoded slash name", call("package_roles", "roundup%2F..%2Fsimple"), []),
    Case("absolute url name", call("release_urls", "https://evil.test/x", "1.0"), []),
    Case("query name", call("package_releases", "roundup?x=1", True), []),
    Case("fragment name", call("release_data", "roundup#x", "1.6.0"), {}),
    Case("at-sign name", call("package_roles", "user@evil.test"), []),
    Case("unicode lookalike name", call("package_roles", "ｒｏｕｎｄｕｐ"), []),
    Case("dot-dot version", call("release_urls", "roundup", "../../../simple"), []),
    Case("encoded version", call("release_data", "roundup", "1.6.0%2F..%2F..%2Fsimple"), {}),
    Case("absolute url version", call("release_data", "roundup", "https://evil.test/"), {}),
    Case("dot-dot user", call("user_packages", "../../admin"), []),
    Case("url classifier", call("browse", ["https://evil.test/"]), []),
    Case("search with url", call("search", {"name": "https://evil.test/x"}), []),
]
