"""A fake index of 223 projects with known summaries, for pinning search's ranking: 33 written by hand (HTTP
clients, XML, testing, web frameworks) and 190 fillers made from a seeded word list (their words are common: they
give `python`, `library` and `simple` the low weight common words have on a real index, and match nothing else);
and a catalog connection without FTS5, whose search table is scanned instead."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

from shim.catalog.schema import open_sqlite
from testkit.fakeindex import FakeIndex

# name: (summary, other info fields)
PROJECTS: dict[str, tuple[str, dict[str, Any]]] = {
    "requests": ("Python HTTP for Humans.", {"keywords": "http requests"}),
    "requests-oauthlib": ("OAuthlib authentication support for Requests.", {}),
    "grequests": ("Requests + Gevent", {}),
    "urllib3": ("HTTP library with thread-safe connection pooling, file post, and more.", {}),
    "httpx": ("The next generation HTTP client.", {}),
    "aiohttp": ("Async http client/server framework (asyncio)", {}),
    "httplib2": ("A comprehensive HTTP client library.", {}),
    "http-client-tools": ("Tools for HTTP clients and HTTP client testing", {}),
    "client-sdk": ("A client SDK for the Example service", {}),
    "treq": ("High-level Twisted HTTP Client API", {}),
    "pycurl": ("PycURL -- A Python Interface To The cURL library", {"description": "Fetch over HTTP with libcurl."}),
    "lxml": ("Powerful and Pythonic XML processing library combining libxml2/libxslt with the ElementTree API.", {}),
    "defusedxml": ("XML bomb protection for Python stdlib modules", {"keywords": "xml bomb DoS"}),
    "xmltodict": ("Makes working with XML feel like you are working with JSON", {}),
    "untangle": ("Converts XML to Python objects", {}),
    "bomb-squad": ("Defuse things", {"keywords": "bomb"}),
    "pytest": ("pytest: simple powerful testing with Python", {"keywords": "test unittest"}),
    "nose": ("nose extends unittest to make testing easier", {}),
    "hypothesis": ("A library for property-based testing", {}),
    "pytest-httpx": ("Send responses to httpx.", {}),
    "tox": ("tox is a generic virtualenv management and test command line tool", {}),
    "flask": ("A simple framework for building complex web applications.", {"author": "Armin Ronacher"}),
    "django": (
        "A high-level Python web framework that encourages rapid development and clean, pragmatic design.",
        {"license": "BSD-3-Clause"},
    ),
    "starlette": ("The little ASGI library that shines.", {"license": "BSD-3-Clause"}),
    "jinja2": ("A very fast and expressive template engine.", {"author": "Armin Ronacher"}),
    "markupsafe": ("Safely add untrusted strings to HTML/XML markup.", {"author": "Armin Ronacher"}),
    "parsel": ("Parsel is a library to extract data from HTML and XML", {"description": "A parser of parsers."}),
    "html-parser": ("A parser for HTML", {}),
    "parser-tools": ("Tools", {"description": "Parser combinators: a parser, a parser, a parser."}),
    "yaml-parser": ("A YAML parser and emitter", {}),
    "the-end": ("The end of the list", {}),
    "tools": ("Miscellany", {}),
    "pyyaml": ("YAML parser and emitter for Python", {"keywords": "yaml parser"}),
}

FILLER_WORDS = (
    "python", "library", "simple", "fast", "tools", "data", "utilities", "helpers", "widgets", "gadgets",
    "toolkit", "modern", "small", "pure", "package", "module", "support", "wrapper", "bindings", "extension",
)  # fmt: skip


def fillers(count: int = 190, seed: int = 14) -> dict[str, str]:
    """`count` projects named filler-000 on, each summary four to seven of FILLER_WORDS."""
    chosen = random.Random(seed)
    return {f"filler-{i:03d}": " ".join(chosen.sample(FILLER_WORDS, chosen.randint(4, 7))) for i in range(count)}


def ranking_index() -> FakeIndex:
    fake = FakeIndex(fixtures=None)
    for name, (summary, info) in PROJECTS.items():
        fake.add_release(name, "2.0", info={"summary": summary, **info}, files=[])
    for name, summary in fillers().items():
        fake.add_release(name, "1.0", info={"summary": summary}, files=[])
    return fake


def without_fts5(path: Path) -> sqlite3.Connection:
    """A real SQLite connection that refuses FTS5 tables, as an SQLite built without FTS5 does."""
    connection = open_sqlite(path)

    def authorize(action: int, table: str | None, module: str | None, database: str | None, via: str | None) -> int:
        if action == sqlite3.SQLITE_CREATE_VTABLE and module == "fts5":
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    connection.set_authorizer(authorize)
    return connection
