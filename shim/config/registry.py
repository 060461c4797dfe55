"""Every setting of the service, stated once: name, variable, option, default, meaning, validation.

The settings object's defaults, the CLI's options, `--help`, the README's settings table and the docs
page are all built from `REGISTRY`. A default is a value (shown as it is) or, where it depends on the
environment, a function of it (shim.config.defaults) with the words that describe it.
"""

from __future__ import annotations

from typing import Any

from shim.config import parsers
from shim.config.defaults import (
    CATALOG_DOC,
    FORMER_CATALOG,
    PORT,
    default_catalog_path,
    default_port,
)
from shim.config.pip import default_upstream
from shim.config.rates import RateLimit
from shim.config.setting import LogLevel, Setting
from shim.modes import FilesMode, Mode
from shim.upstream.urls import Secret, UpstreamURL

__all__ = ["BY_NAME", "REGISTRY"]


def _rate_limit(text: str) -> RateLimit | None:
    return None if text.strip().lower() in ("off", "none", "0") else RateLimit.parse(text)


REGISTRY: tuple[Setting[Any], ...] = (
    Setting(
        "upstream",
        UpstreamURL.parse,
        "Base URL of a Warehouse-compatible index (JSON `{base}/pypi/<name>/json`, Simple `{base}/simple/`, "
        "RSS `{base}/rss/`). A trailing `/simple` is removed. Credentials in the URL are used, never shown.",
        computed=default_upstream,
        shown="the index pip is configured with, else the public index",
        metavar="URL",
        required=True,
    ),
    Setting(
        "host", parsers.host, "Address to listen on; `0.0.0.0` to serve other machines.", "127.0.0.1", metavar="ADDRESS"
    ),
    Setting(
        "port",
        parsers.int_between(1, 65535),
        "TCP port to listen on.",
        computed=default_port,
        shown=f"`$PORT` when set, else `{PORT}`",
        metavar="PORT",
    ),
    Setting(
        "workers",
        parsers.int_between(1, 256),
        "Processes serving the port, each with its own connections, cache and limits; above 1, "
        "SHIM_CATALOG_WRITER must be false (run `pypi-xmlrpc-shim catalog refresh` beside them).",
        1,
        metavar="COUNT",
    ),
    Setting(
        "header_timeout",
        parsers.seconds(0.1, 600),
        "Seconds a client has, from the first byte of a request, to send the whole request line and headers; "
        "past it the connection is closed.",
        10.0,
        metavar="SECONDS",
    ),
    Setting(
        "idle_timeout",
        parsers.seconds(0.1, 3600),
        "Seconds an open connection may wait without a request, before the first one and between keep-alive "
        "requests; past it the connection is closed. Behind a proxy that reuses idle connections, set it above "
        "the proxy's own idle timeout.",
        30.0,
        metavar="SECONDS",
    ),
    Setting(
        "write_timeout",
        parsers.seconds(0.1, 3600),
        "Seconds a client may leave an answer unread: when the connection's send buffer has not drained within "
        "it, the connection is closed and the answer freed.",
        30.0,
        metavar="SECONDS",
    ),
    Setting(
        "max_connections",
        parsers.int_between(1, 1_000_000),
        "Connections each process keeps open; a new one past it closes the longest-waiting idle connection, or, "
        "when none is idle, is answered 503 and closed at once. Lowered at start to what the open-files limit "
        "allows (with a warning).",
        1000,
        metavar="COUNT",
    ),
    Setting(
        "mode",
        parsers.choice(Mode),
        "Default answer mode: `restore` (the last working behaviour of every method), `pypi-today` "
        "(exactly what PyPI answers now) or `removed` (the XML-RPC endpoint gone: HTTP 404). "
        "The path prefixes `/restore/`, `/today/` and `/removed/` choose a mode per request.",
        Mode.RESTORE,
        metavar="MODE",
    ),
    Setting(
        "max_body_bytes",
        parsers.int_between(1024, 64 * 1024 * 1024),
        "Largest XML-RPC request body accepted, counted after decompression; a larger one is a parse "
        "error fault and is never read further.",
        1024 * 1024,
        metavar="BYTES",
    ),
    Setting(
        "body_timeout",
        parsers.int_between(1, 3600),
        "Seconds a client may take to send its request body.",
        30,
        metavar="SECONDS",
    ),
    Setting(
        "rate_limit",
        _rate_limit,
        "Calls a client may make in a moving window (`N per second|minute|hour|day`, or `off`), counted as "
        "PyPI counts them; past it, PyPI's `HTTPTooManyRequests` fault with the reset hint and RateLimit headers.",
        RateLimit(3600, 60),
        metavar="RATE",
    ),
    Setting(
        "passthrough_rate_limit",
        _rate_limit,
        "GETs of pass-through documents and files a client may make in a moving window, apart from its XML-RPC "
        "calls (`N per second|minute|hour|day`, or `off`); past it, HTTP 429 with Retry-After.",
        RateLimit(36000, 60),
        metavar="RATE",
    ),
    Setting(
        "trusted_proxies",
        parsers.networks,
        "Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For names the client (for "
        "rate limits); from any other peer the header is ignored.",
        (),
        metavar="NETWORKS",
    ),
    Setting(
        "ipv6_prefix",
        parsers.int_between(32, 128),
        "Length of the prefix that makes one IPv6 client (for rate limits): a host is handed a whole /64, so "
        "each of its addresses is not a client of its own.",
        64,
        metavar="BITS",
    ),
    Setting(
        "max_concurrent_calls",
        parsers.int_between(1, 100_000),
        "XML-RPC calls in progress at once; past it a call is refused at once with -32403 and Retry-After.",
        256,
        metavar="COUNT",
    ),
    Setting(
        "call_timeout",
        parsers.seconds(0.1, 3600),
        "Seconds one XML-RPC call may take; past it the call answers -32403.",
        60.0,
        metavar="SECONDS",
    ),
    Setting(
        "allow_i8",
        parsers.boolean,
        "Send integers outside 32 bits as `<i8>`. Off, as on PyPI: such a value is an application error "
        "(Python's and many other clients cannot read `<i8>`).",
        False,
        metavar="BOOL",
    ),
    Setting(
        "upstream_user",
        parsers.optional_text,
        "User name for the upstream (HTTP Basic), instead of one in the upstream URL.",
        metavar="NAME",
    ),
    Setting(
        "upstream_password",
        lambda text: Secret(text) if text else None,
        "Password or token for the upstream; never shown. Prefer the variable: a command line is visible "
        "to other users of the machine.",
        metavar="SECRET",
        secret=True,
    ),
    Setting(
        "upstream_timeout",
        parsers.seconds(0.1, 600),
        "Seconds to wait for the upstream: to connect, and between bytes of an answer.",
        10.0,
        metavar="SECONDS",
    ),
    Setting(
        "upstream_deadline",
        parsers.seconds(0.1, 3600),
        "Seconds a document request may take in all, retries and waits included; past it the call answers "
        "-32403 (or a cached copy, within SHIM_STALE_IF_ERROR).",
        30.0,
        metavar="SECONDS",
    ),
    Setting(
        "upstream_retries",
        parsers.int_between(0, 10),
        "Retries of a document request after a connection failure, a timeout, a 5xx or a 429 (jittered "
        "exponential back-off; a `Retry-After` pauses every caller).",
        2,
        metavar="COUNT",
    ),
    Setting(
        "upstream_concurrency",
        parsers.int_between(1, 1000),
        "Document requests in flight to the upstream at once.",
        20,
        metavar="COUNT",
    ),
    Setting(
        "circuit_threshold",
        parsers.int_between(1, 1000),
        "Consecutive upstream failures that open the circuit: requests then fail at once, without reaching "
        "the upstream, for SHIM_CIRCUIT_COOLDOWN seconds; then one request probes it.",
        5,
        metavar="COUNT",
    ),
    Setting(
        "circuit_cooldown",
        parsers.seconds(0, 3600),
        "Seconds the circuit stays open before the upstream is probed again.",
        30.0,
        metavar="SECONDS",
    ),
    Setting(
        "max_retry_after",
        parsers.seconds(0, 86400),
        "Seconds, at most, that a `Retry-After` from the upstream (seconds or a date) pauses every caller; "
        "a longer one is cut to this, with a warning. 0 ignores `Retry-After`.",
        300.0,
        metavar="SECONDS",
    ),
    Setting(
        "max_document_bytes",
        parsers.int_between(1024, 2**40),
        "Largest upstream document read; a larger one is malformed (never buffered whole, never cached).",
        256 * 1024 * 1024,
        metavar="BYTES",
    ),
    Setting(
        "ca_bundle",
        parsers.ca_file,
        "A PEM file of certificate authorities to trust for the upstream (a corporate proxy's CA). "
        "`HTTPS_PROXY`, `NO_PROXY` and `SSL_CERT_FILE` are honoured as well.",
        shown="the system's",
        metavar="PATH",
    ),
    Setting(
        "cache_soft_ttl",
        parsers.seconds(0, 7 * 86400),
        "Seconds an upstream document is served from the cache before it is revalidated (a conditional "
        "request). A project's documents are dropped as soon as the Simple index shows it changed.",
        300.0,
        metavar="SECONDS",
    ),
    Setting(
        "cache_hard_ttl",
        parsers.seconds(0, 30 * 86400),
        "Seconds after which a cached document is fetched afresh rather than revalidated.",
        86400.0,
        metavar="SECONDS",
    ),
    Setting(
        "stale_if_error",
        parsers.seconds(0, 30 * 86400),
        "Seconds past its soft expiry a cached document may still be served when the upstream fails (logged and "
        "counted); 0 never serves a stale copy.",
        86400.0,
        metavar="SECONDS",
    ),
    Setting(
        "not_found_ttl",
        parsers.seconds(0, 86400),
        "Seconds the upstream's not-found for a project is remembered (dropped sooner when the project "
        "appears in the Simple index).",
        60.0,
        metavar="SECONDS",
    ),
    Setting(
        "cache_max_bytes",
        parsers.int_between(0, 64 * 1024**3),
        "Memory the document cache may use, counted as bytes of documents and their parsed forms.",
        256 * 1024 * 1024,
        metavar="BYTES",
    ),
    Setting(
        "index_refresh",
        parsers.seconds(1, 86400),
        "Seconds between conditional refreshes of the Simple index held in memory.",
        300.0,
        metavar="SECONDS",
    ),
    Setting(
        "catalog_path",
        parsers.file_path,
        "The catalog (SQLite): serials seen, the change rows, and what was read of each project. Created "
        "when missing; a file SQLite calls corrupt is moved aside and rebuilt, one the service cannot open or write is "
        "left as it is and named (log, /healthz, the feed's faults); a file at the former default "
        f"(`{FORMER_CATALOG}` beside it) is adopted.",
        computed=default_catalog_path,
        shown=CATALOG_DOC,
        metavar="PATH",
        former=("index_path",),
    ),
    Setting(
        "catalog_writer",
        parsers.boolean,
        "Run the catalog's one writer (the refresher) in this process. With several processes or replicas, "
        "set it false everywhere and run `pypi-xmlrpc-shim catalog refresh` once, beside them.",
        True,
        metavar="BOOL",
        former=("index_writer",),
    ),
    Setting(
        "crawl_rate",
        parsers.seconds(0, 1000),
        "Requests a second the crawler may make to read every project's JSON into the catalog (for "
        "search and exact change rows); 0 turns it off.",
        0.0,
        note="off",
        metavar="PER_SECOND",
    ),
    Setting(
        "search_fill_timeout",
        parsers.seconds(0, 60),
        "Seconds search may spend reading the JSON of its best name matches whose summary and version the "
        "catalog lacks (a hit still unknown then is left out).",
        5.0,
        metavar="SECONDS",
    ),
    Setting(
        "files",
        parsers.choice(FilesMode),
        "File URLs in passed-through documents: `direct` leaves them pointing at the upstream's files host "
        "(and `/packages/` answers 404, so a public deployment is no open file proxy); `proxy` rewrites them "
        "to `<service>/packages/...` and streams the files.",
        FilesMode.DIRECT,
        metavar="MODE",
    ),
    Setting(
        "files_upstream",
        lambda text: UpstreamURL.parse(text) if text.strip() else None,
        "Base URL of the upstream's files host (`{base}packages/...`): besides the upstream itself, the only "
        "host file URLs in documents may name for the service to fetch core metadata (and, with "
        "`SHIM_FILES=proxy`, files) from. Unset, it is learnt from the first file URL a document names, never "
        "an address outside the public internet.",
        shown="learnt from the upstream's documents",
        metavar="URL",
    ),
    Setting(
        "public_url",
        parsers.public_url,
        "The service's public base URL, as clients reach it (`https://mirror.example/shim/`): proxied file URLs and "
        "redirects are built from it. Unset, they are built from each request's Host, and only a few rewritten "
        "copies of a document are kept.",
        shown="from the request",
        metavar="URL",
    ),
    Setting(
        "max_file_bytes",
        parsers.int_between(0, 2**50),
        "Largest file streamed with `SHIM_FILES=proxy`; a larger one answers 403.",
        4 * 1024**3,
        metavar="BYTES",
    ),
    Setting(
        "log_level",
        parsers.choice(LogLevel),
        "Logging level: debug, info, warning or error.",
        LogLevel.INFO,
        metavar="LEVEL",
    ),
)

BY_NAME: dict[str, Setting[Any]] = {setting.name: setting for setting in REGISTRY}
