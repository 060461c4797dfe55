"""The settings of serving clients: where the service listens, its connection guards, the answer mode, request
bounds, rate limits and logging."""

from __future__ import annotations

import importlib.util
from typing import Any

from shim.config import parsers
from shim.config.defaults import (
    PORT,
    default_port,
)
from shim.config.rates import RateLimit
from shim.config.setting import EventLoop, LogLevel, Setting
from shim.modes import Mode

__all__ = ["SERVING"]


def _event_loop(text: str) -> EventLoop:
    loop: EventLoop = parsers.choice(EventLoop)(text)
    if loop is EventLoop.UVLOOP and importlib.util.find_spec("uvloop") is None:
        raise ValueError("uvloop is not installed here (pip install uvloop); `auto` or `asyncio` serve without it")
    return loop


def _rate_limit(text: str) -> RateLimit | None:
    return None if text.strip().lower() in ("off", "none", "0") else RateLimit.parse(text)


def _min_bytes(text: str) -> int | None:
    return None if text.strip().lower() in ("off", "none") else parsers.int_between(0, 2**31 - 1)(text)


SERVING: tuple[Setting[Any], ...] = (
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
        "Processes serving the port, each with its own connections, cache and limits; one of them is elected "
        "to write the catalog's change feed (SHIM_CATALOG_WRITER), the others stand by.",
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
        "log_level",
        parsers.choice(LogLevel),
        "Logging level: debug, info, warning or error.",
        LogLevel.INFO,
        metavar="LEVEL",
    ),
    Setting(
        "event_loop",
        _event_loop,
        "Event loop: `uvloop` (about twice the calls per second of asyncio's own on cache hits; see README, "
        '"Performance"), `asyncio`, or `auto` for uvloop where it is installed (every Linux and macOS CPython), else '
        "asyncio's own.",
        EventLoop.AUTO,
        metavar="LOOP",
    ),
    Setting(
        "access_log",
        parsers.boolean,
        "Log a line per request, in SHIM_LOG_FORMAT, with its request id, XML-RPC method, outcome, upstream requests "
        "and duration (it replaces uvicorn's access line). Off, as gunicorn has it: the line costs about half a "
        'cache-hit call as text, about a whole one as JSON (README, "Performance"); the proxy in front usually logs '
        "them.",
        False,
        metavar="BOOL",
    ),
    Setting(
        "compress_min_bytes",
        _min_bytes,
        "Smallest XML-RPC answer sent compressed, as the client's Accept-Encoding allows "
        "(gzip, deflate); `0` compresses every one, `off` none. About one TCP segment, below which the bytes "
        "saved save no packet; measured, it is also where zlib's time (about 8 µs at 1.4 kB) equals the time the "
        "1.2 kB it saves take on a 1 Gb/s link (on loopback compression never pays; README, Compression).",
        1400,
        metavar="BYTES",
    ),
)
