"""The settings of the upstream: where it is, its credentials, and how it is asked (timeouts, retries, circuit)."""

from __future__ import annotations

from typing import Any

from shim.config import parsers
from shim.config.pip import default_upstream
from shim.config.setting import Setting
from shim.upstream.file_metadata import EXPANSION
from shim.upstream.urls import UpstreamURL

__all__ = ["UPSTREAM"]


UPSTREAM: tuple[Setting[Any], ...] = (
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
        "upstream_user",
        parsers.optional_text,
        "User name for the upstream (HTTP Basic), instead of one in the upstream URL.",
        metavar="NAME",
    ),
    Setting(
        "upstream_password",
        parsers.secret,
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
        "Seconds the circuit stays open before the upstream is probed again; also how long an optional source "
        "that could not be reached (core metadata, RSS) is left alone, its answers given without it.",
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
        "probe_interval",
        parsers.seconds(0, 7 * 86400),
        "Seconds before what the upstream was found not to offer (per-release JSON, core metadata files) is "
        "probed again; meanwhile the fallback answers without asking. One missing document never decides it: "
        "a probe on the project's latest release, or several misses in a row, does.",
        3600.0,
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
        "max_archive_bytes",
        parsers.int_between(0, 2**40),
        "Bytes read, at most, of a release's file for its metadata, where the upstream offers neither per-release "
        "JSON nor core metadata files (a mirror): a wheel's METADATA by range requests, else an sdist's PKG-INFO "
        f"as it streams; decompressed, {EXPANSION} times as many at most. 0 reads none: such releases answer a fault.",
        16 * 1024 * 1024,
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
)
