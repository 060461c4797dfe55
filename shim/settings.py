"""Every setting of the service, in one registry: name, variable, option, default, meaning, validation.

The CLI's options, `--help`, the README's settings table and the docs page are all built from
`REGISTRY`. A value is taken from the command line, else from `SHIM_<NAME>`, else the default; a bad
value stops start-up with a message that names where it came from and quotes it (credentials redacted).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import ssl
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, TypeVar

from shim.ratelimit import RateLimit
from shim.table import Mode
from shim.urls import REDACTED, Credentials, Secret, UpstreamURL, redact_url

__all__ = ["REGISTRY", "FilesMode", "LogLevel", "Mode", "Setting", "Settings", "SettingsError", "default_upstream"]

T = TypeVar("T")


class FilesMode(StrEnum):
    DIRECT = "direct"  # file URLs keep pointing at the upstream's files host; /packages/ is 404
    PROXY = "proxy"  # file URLs are rewritten to <service>/packages/..., streamed from the files host


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class SettingsError(ValueError):
    """One or more settings have bad values; the message names each one and its value."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Setting(Generic[T]):
    name: str
    parse: Callable[[str], T]
    default: Callable[[Mapping[str, str]], T]
    default_doc: str
    meaning: str
    metavar: str = "VALUE"
    secret: bool = False  # never quoted back, not even in an error

    @property
    def env(self) -> str:
        return "SHIM_" + self.name.upper()

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


N = TypeVar("N", int, float)


def _show(number: float) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


def _between(kind: type[N], low: N, high: N, *, what: str, unit: str = "") -> Callable[[str], N]:
    def parse(text: str) -> N:
        try:
            value = kind(text.strip().replace("_", ""))
        except ValueError:
            raise ValueError(f"not {what}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {_show(low)} and {_show(high)}{unit}")
        return value

    return parse


def _int_between(low: int, high: int) -> Callable[[str], int]:
    return _between(int, low, high, what="a whole number")


def _seconds(low: float, high: float) -> Callable[[str], float]:
    return _between(float, low, high, what="a number of seconds", unit=" seconds")


def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError(f"not addresses or networks ({exc})") from None


def _ca_file(text: str) -> str | None:
    path = text.strip()
    if not path:
        return None
    if not os.path.isfile(path):
        raise ValueError("no such file")
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ValueError(f"not a PEM file of certificates ({exc})") from None
    return path


def _choice(enum: type[StrEnum]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return enum(text.strip().lower())
        except ValueError:
            raise ValueError("must be one of " + ", ".join(m.value for m in enum)) from None

    return parse


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false (also 1/0, yes/no, on/off)")


def _host(text: str) -> str:
    value = text.strip()
    if not value or not re.fullmatch(r"[A-Za-z0-9.:_\-\[\]%]+", value):
        raise ValueError("not a host name or IP address")
    return value


def _pip_config() -> Mapping[str, str]:
    """pip's merged configuration, read through its supported interface (`pip config list`)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    values: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, sep, raw = line.partition("=")
        if sep:
            values[key.strip()] = raw.strip().strip("'\"")
    return values


def default_upstream(
    environ: Mapping[str, str], pip_config: Callable[[], Mapping[str, str]] = _pip_config
) -> UpstreamURL:
    """The index pip is configured with, else the public index as pypi-simple publishes it."""
    candidates = [environ.get("PIP_INDEX_URL", "")]
    if not candidates[0]:
        config = pip_config()
        candidates += [config.get(k, "") for k in (":env:.index-url", "install.index-url", "global.index-url")]
    for candidate in candidates:
        # pip allows several URLs separated by white space in PIP_INDEX_URL's siblings; take the first.
        first = candidate.split()[0] if candidate.split() else ""
        if first:
            try:
                return UpstreamURL.parse(first)
            except ValueError:
                continue  # a file:// or odd index pip can use but we cannot: fall through
    from pypi_simple import PYPI_SIMPLE_ENDPOINT

    return UpstreamURL.parse(PYPI_SIMPLE_ENDPOINT)


def _default_port(environ: Mapping[str, str]) -> int:
    # Platforms such as Heroku or Cloud Run hand the port over in PORT.
    port = environ.get("PORT", "").strip()
    if port:
        try:
            return _int_between(1, 65535)(port)
        except ValueError as exc:
            raise ValueError(f"PORT has value {environ['PORT']!r}: {exc}") from None
    return 8000


def _default_index_path(environ: Mapping[str, str]) -> Path:
    state = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "pypi-xmlrpc-shim" / "index.sqlite3"


def _index_path(text: str) -> Path:
    path = Path(text.strip()).expanduser()
    if not text.strip() or path.is_dir():
        raise ValueError("not a file path")
    return path


def _const(value: T) -> Callable[[Mapping[str, str]], T]:
    return lambda environ: value


REGISTRY: tuple[Setting[Any], ...] = (
    Setting(
        "host",
        _host,
        _const("127.0.0.1"),
        "`127.0.0.1`",
        "Address to listen on; `0.0.0.0` to serve other machines.",
        "ADDRESS",
    ),
    Setting(
        "port",
        _int_between(1, 65535),
        _default_port,
        "`$PORT` when set, else `8000`",
        "TCP port to listen on.",
        "PORT",
    ),
    Setting(
        "upstream",
        UpstreamURL.parse,
        default_upstream,
        "the index pip is configured with, else the public index",
        "Base URL of a Warehouse-compatible index (JSON `{base}/pypi/<name>/json`, Simple `{base}/simple/`, "
        "RSS `{base}/rss/`). A trailing `/simple` is removed. Credentials in the URL are used, never shown.",
        "URL",
    ),
    Setting(
        "mode",
        _choice(Mode),
        _const(Mode.RESTORE),
        "`restore`",
        "Default answer mode: `restore` (the last working behaviour of every method), `pypi-today` "
        "(exactly what PyPI answers now) or `removed` (the XML-RPC endpoint gone: HTTP 404). "
        "The path prefixes `/restore/`, `/today/` and `/removed/` choose a mode per request.",
        "MODE",
    ),
    Setting(
        "max_body_bytes",
        _int_between(1024, 64 * 1024 * 1024),
        _const(1024 * 1024),
        "`1048576` (1 MiB)",
        "Largest XML-RPC request body accepted, counted after decompression; a larger one is a parse "
        "error fault and is never read further.",
        "BYTES",
    ),
    Setting(
        "body_timeout",
        _int_between(1, 3600),
        _const(30),
        "`30`",
        "Seconds a client may take to send its request body.",
        "SECONDS",
    ),
    Setting(
        "rate_limit",
        lambda text: None if text.strip().lower() in ("off", "none", "0") else RateLimit.parse(text),
        lambda environ: RateLimit(3600, 60),
        "`3600 per minute`",
        "Calls a client may make in a moving window (`N per second|minute|hour|day`, or `off`), counted as "
        "PyPI counts them; past it, PyPI's `HTTPTooManyRequests` fault with the reset hint and RateLimit headers.",
        "RATE",
    ),
    Setting(
        "trusted_proxies",
        _networks,
        _const(()),
        "none",
        "Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For names the client (for "
        "rate limits); from any other peer the header is ignored.",
        "NETWORKS",
    ),
    Setting(
        "max_concurrent_calls",
        _int_between(1, 100_000),
        _const(256),
        "`256`",
        "XML-RPC calls in progress at once; past it a call is refused at once with -32403 and Retry-After.",
        "COUNT",
    ),
    Setting(
        "call_timeout",
        _seconds(0.1, 3600),
        _const(60.0),
        "`60`",
        "Seconds one XML-RPC call may take; past it the call answers -32403.",
        "SECONDS",
    ),
    Setting(
        "allow_i8",
        _bool,
        _const(False),
        "`false`",
        "Send integers outside 32 bits as `<i8>`. Off, as on PyPI: such a value is an application error "
        "(Python's and many other clients cannot read `<i8>`).",
        "BOOL",
    ),
    Setting(
        "upstream_user",
        lambda text: text.strip() or None,
        _const(None),
        "none",
        "User name for the upstream (HTTP Basic), instead of one in the upstream URL.",
        "NAME",
    ),
    Setting(
        "upstream_password",
        lambda text: Secret(text) if text else None,
        _const(None),
        "none",
        "Password or token for the upstream; never shown. Prefer the variable: a command line is visible "
        "to other users of the machine.",
        "SECRET",
        secret=True,
    ),
    Setting(
        "upstream_timeout",
        _seconds(0.1, 600),
        _const(10.0),
        "`10`",
        "Seconds to wait for the upstream: to connect, and between bytes of an answer.",
        "SECONDS",
    ),
    Setting(
        "upstream_deadline",
        _seconds(0.1, 3600),
        _const(30.0),
        "`30`",
        "Seconds a document request may take in all, retries and waits included; past it the call answers "
        "-32403 (or a cached copy, within SHIM_STALE_IF_ERROR).",
        "SECONDS",
    ),
    Setting(
        "upstream_retries",
        _int_between(0, 10),
        _const(2),
        "`2`",
        "Retries of a document request after a connection failure, a timeout, a 5xx or a 429 (jittered "
        "exponential back-off; a `Retry-After` pauses every caller).",
        "COUNT",
    ),
    Setting(
        "upstream_concurrency",
        _int_between(1, 1000),
        _const(20),
        "`20`",
        "Document requests in flight to the upstream at once.",
        "COUNT",
    ),
    Setting(
        "circuit_threshold",
        _int_between(1, 1000),
        _const(5),
        "`5`",
        "Consecutive upstream failures that open the circuit: requests then fail at once, without reaching "
        "the upstream, for SHIM_CIRCUIT_COOLDOWN seconds; then one request probes it.",
        "COUNT",
    ),
    Setting(
        "circuit_cooldown",
        _seconds(0, 3600),
        _const(30.0),
        "`30`",
        "Seconds the circuit stays open before the upstream is probed again.",
        "SECONDS",
    ),
    Setting(
        "max_document_bytes",
        _int_between(1024, 2**40),
        _const(256 * 1024 * 1024),
        "`268435456` (256 MiB)",
        "Largest upstream document read; a larger one is malformed (never buffered whole, never cached).",
        "BYTES",
    ),
    Setting(
        "ca_bundle",
        _ca_file,
        _const(None),
        "the system's",
        "A PEM file of certificate authorities to trust for the upstream (a corporate proxy's CA). "
        "`HTTPS_PROXY`, `NO_PROXY` and `SSL_CERT_FILE` are honoured as well.",
        "PATH",
    ),
    Setting(
        "cache_soft_ttl",
        _seconds(0, 7 * 86400),
        _const(300.0),
        "`300`",
        "Seconds an upstream document is served from the cache before it is revalidated (a conditional "
        "request). A project's documents are dropped as soon as the Simple index shows it changed.",
        "SECONDS",
    ),
    Setting(
        "cache_hard_ttl",
        _seconds(0, 30 * 86400),
        _const(86400.0),
        "`86400`",
        "Seconds after which a cached document is fetched afresh rather than revalidated.",
        "SECONDS",
    ),
    Setting(
        "stale_if_error",
        _seconds(0, 30 * 86400),
        _const(86400.0),
        "`86400`",
        "Seconds past its soft expiry a cached document may still be served when the upstream fails (logged and "
        "counted); 0 never serves a stale copy.",
        "SECONDS",
    ),
    Setting(
        "not_found_ttl",
        _seconds(0, 86400),
        _const(60.0),
        "`60`",
        "Seconds the upstream's not-found for a project is remembered (dropped sooner when the project "
        "appears in the Simple index).",
        "SECONDS",
    ),
    Setting(
        "cache_max_bytes",
        _int_between(0, 64 * 1024**3),
        _const(256 * 1024 * 1024),
        "`268435456` (256 MiB)",
        "Memory the document cache may use, counted as bytes of documents and their parsed forms.",
        "BYTES",
    ),
    Setting(
        "index_refresh",
        _seconds(1, 86400),
        _const(300.0),
        "`300`",
        "Seconds between conditional refreshes of the Simple index held in memory.",
        "SECONDS",
    ),
    Setting(
        "index_path",
        _index_path,
        _default_index_path,
        "`$XDG_STATE_HOME/pypi-xmlrpc-shim/index.sqlite3`",
        "The metadata index (SQLite): serials seen, the change rows, and what was read of each project. Created "
        "when missing; a corrupt file is moved aside and rebuilt.",
        "PATH",
    ),
    Setting(
        "index_writer",
        _bool,
        _const(True),
        "`true`",
        "Run the index refresher (the metadata index's one writer) in this process. With several processes or "
        "replicas, set it false everywhere and run `pypi-xmlrpc-shim index refresh` once, beside them.",
        "BOOL",
    ),
    Setting(
        "crawl_rate",
        _seconds(0, 1000),
        _const(0.0),
        "`0` (off)",
        "Requests a second the crawler may make to read every project's JSON into the metadata index (for "
        "search and exact change rows); 0 turns it off.",
        "PER_SECOND",
    ),
    Setting(
        "search_fill_timeout",
        _seconds(0, 60),
        _const(5.0),
        "`5`",
        "Seconds search may spend reading the JSON of its best name matches whose summary and version the "
        "metadata index lacks (a hit still unknown then is left out).",
        "SECONDS",
    ),
    Setting(
        "files",
        _choice(FilesMode),
        _const(FilesMode.DIRECT),
        "`direct`",
        "File URLs in passed-through documents: `direct` leaves them pointing at the upstream's files host "
        "(and `/packages/` answers 404, so a public deployment is no open file proxy); `proxy` rewrites them "
        "to `<service>/packages/...` and streams the files.",
        "MODE",
    ),
    Setting(
        "files_upstream",
        lambda text: UpstreamURL.parse(text) if text.strip() else None,
        _const(None),
        "learnt from the upstream's documents",
        "Base URL of the upstream's files host (`{base}packages/...`), for `SHIM_FILES=proxy`.",
        "URL",
    ),
    Setting(
        "max_file_bytes",
        _int_between(0, 2**50),
        _const(4 * 1024**3),
        "`4294967296` (4 GiB)",
        "Largest file streamed with `SHIM_FILES=proxy`; a larger one answers 403.",
        "BYTES",
    ),
    Setting(
        "log_level",
        _choice(LogLevel),
        _const(LogLevel.INFO),
        "`info`",
        "Logging level: debug, info, warning or error.",
        "LEVEL",
    ),
)


@dataclass(frozen=True)
class Settings:
    """The validated settings; build with `Settings.load()` or directly in tests."""

    upstream: UpstreamURL
    host: str = "127.0.0.1"
    port: int = 8000
    mode: Mode = Mode.RESTORE
    max_body_bytes: int = 1024 * 1024
    body_timeout: int = 30
    rate_limit: RateLimit | None = dataclasses.field(default_factory=lambda: RateLimit(3600, 60))
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    max_concurrent_calls: int = 256
    call_timeout: float = 60.0
    allow_i8: bool = False
    upstream_user: str | None = None
    upstream_password: Secret | None = None
    upstream_timeout: float = 10.0
    upstream_deadline: float = 30.0
    upstream_retries: int = 2
    upstream_concurrency: int = 20
    circuit_threshold: int = 5
    circuit_cooldown: float = 30.0
    max_document_bytes: int = 256 * 1024 * 1024
    ca_bundle: str | None = None
    cache_soft_ttl: float = 300.0
    cache_hard_ttl: float = 86400.0
    stale_if_error: float = 86400.0
    not_found_ttl: float = 60.0
    cache_max_bytes: int = 256 * 1024 * 1024
    index_refresh: float = 300.0
    index_path: Path = dataclasses.field(default_factory=lambda: _default_index_path(os.environ))
    index_writer: bool = True
    crawl_rate: float = 0.0
    search_fill_timeout: float = 5.0
    files: FilesMode = FilesMode.DIRECT
    files_upstream: UpstreamURL | None = None
    max_file_bytes: int = 4 * 1024**3
    log_level: LogLevel = LogLevel.INFO

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        options: Mapping[str, str | None] | None = None,
    ) -> Settings:
        """Read every setting from `options` (CLI, by setting name), else `environ`, else its default."""
        environ = os.environ if environ is None else environ
        options = options or {}
        values: dict[str, Any] = {}
        problems: list[str] = []
        for setting in REGISTRY:
            given = options.get(setting.name)
            if given is not None:
                source, text = setting.option, given
            elif environ.get(setting.env) is not None:
                source, text = setting.env, environ[setting.env]
            else:
                try:
                    values[setting.name] = setting.default(environ)
                except ValueError as exc:
                    problems.append(f"the default of {setting.env} could not be used: {exc}")
                continue
            try:
                values[setting.name] = setting.parse(text)
            except ValueError as exc:
                shown = REDACTED if setting.secret else redact_url(text)
                problems.append(f"{source} has value {shown!r}: {exc}.")
        if problems:
            raise SettingsError(problems)
        return cls(**values)

    def __post_init__(self) -> None:
        # Credentials given as settings win over those in the upstream URL.
        if self.upstream_user is not None or self.upstream_password is not None:
            given = self.upstream.credentials
            credentials = Credentials(
                self.upstream_user if self.upstream_user is not None else (given.username if given else ""),
                self.upstream_password or (given.password if given else Secret("")),
            )
            object.__setattr__(self, "upstream", UpstreamURL(self.upstream.base, credentials))

    def public(self) -> dict[str, str]:
        """Every setting as it may be shown: credentials redacted."""
        return {f.name: str(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def __repr__(self) -> str:
        return "Settings(" + json.dumps(self.public()) + ")"
