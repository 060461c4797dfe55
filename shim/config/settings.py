"""The validated settings. Every default comes from the registry: nothing here restates one.

A value is taken from the command line, else from `SHIM_<NAME>`, else from a former name of the setting
(with a warning naming the new one), else the default; a bad value stops start-up with a message that
names where it came from and quotes it (credentials redacted).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from shim.catalog.seed import Seed
from shim.config.defaults import default_catalog_path
from shim.config.parsers import Network
from shim.config.rates import RateLimit
from shim.config.registry import BY_NAME, REGISTRY
from shim.config.setting import EventLoop, LogClient, LogFormat, LogLevel, Setting
from shim.modes import FilesMode, Mode
from shim.shared.address import RedisURL
from shim.upstream.urls import REDACTED, Credentials, Secret, UpstreamURL, redact_url

__all__ = ["Settings", "SettingsError", "warn"]


class SettingsError(ValueError):
    """One or more settings have bad values; the message names each one and its value."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def _default(name: str) -> Any:
    """The registry's default of `name`, for a settings object built without it."""
    setting = BY_NAME[name]
    return dataclasses.field(default_factory=lambda: setting.default_for(os.environ))


def warn(message: str) -> None:
    """Tell the operator, on standard error, of something that does not stop start-up."""
    print(f"pypi-xmlrpc-shim: warning: {message}", file=sys.stderr)


def _given(
    setting: Setting[Any], environ: Mapping[str, str], options: Mapping[str, str | None], warn: Callable[[str], None]
) -> tuple[str, str] | None:
    """(where from, text) of the value given for `setting`, if any: an option (under its name, then a former one)
    beats a variable (likewise); a former name is read with a warning naming the new one."""
    names = [setting, *(dataclasses.replace(setting, name=former) for former in setting.former)]
    for named in names:
        if options.get(named.name) is not None:
            if named is not setting:
                warn(f"{named.option} is a former name: use {setting.option}")
            return named.option, str(options[named.name])
    for named in names:
        if environ.get(named.env) is not None:
            if named is not setting:
                warn(f"{named.env} is a former name: use {setting.env}")
            return named.env, environ[named.env]
    return None


@dataclass(frozen=True)
class Settings:
    """The validated settings; build with `Settings.load()`, or directly (in tests) with the defaults."""

    upstream: UpstreamURL
    host: str = _default("host")
    port: int = _default("port")
    workers: int = _default("workers")
    header_timeout: float = _default("header_timeout")
    idle_timeout: float = _default("idle_timeout")
    write_timeout: float = _default("write_timeout")
    max_connections: int = _default("max_connections")
    mode: Mode = _default("mode")
    max_body_bytes: int = _default("max_body_bytes")
    body_timeout: int = _default("body_timeout")
    rate_limit: RateLimit | None = _default("rate_limit")
    passthrough_rate_limit: RateLimit | None = _default("passthrough_rate_limit")
    trusted_proxies: tuple[Network, ...] = _default("trusted_proxies")
    ipv6_prefix: int = _default("ipv6_prefix")
    max_concurrent_calls: int = _default("max_concurrent_calls")
    call_timeout: float = _default("call_timeout")
    allow_i8: bool = _default("allow_i8")
    upstream_user: str | None = _default("upstream_user")
    upstream_password: Secret | None = _default("upstream_password")
    upstream_timeout: float = _default("upstream_timeout")
    probe_interval: float = _default("probe_interval")
    upstream_deadline: float = _default("upstream_deadline")
    upstream_retries: int = _default("upstream_retries")
    upstream_concurrency: int = _default("upstream_concurrency")
    circuit_threshold: int = _default("circuit_threshold")
    circuit_cooldown: float = _default("circuit_cooldown")
    max_retry_after: float = _default("max_retry_after")
    max_document_bytes: int = _default("max_document_bytes")
    max_archive_bytes: int = _default("max_archive_bytes")
    ca_bundle: str | None = _default("ca_bundle")
    cache_soft_ttl: float = _default("cache_soft_ttl")
    cache_hard_ttl: float = _default("cache_hard_ttl")
    stale_if_error: float = _default("stale_if_error")
    not_found_ttl: float = _default("not_found_ttl")
    cache_max_bytes: int = _default("cache_max_bytes")
    index_refresh: float = _default("index_refresh")
    catalog_path: Path = _default("catalog_path")
    catalog_writer: bool = _default("catalog_writer")
    crawl_rate: float = _default("crawl_rate")
    search_fill_timeout: float = _default("search_fill_timeout")
    files: FilesMode = _default("files")
    files_upstream: UpstreamURL | None = _default("files_upstream")
    public_url: str | None = _default("public_url")
    max_file_bytes: int = _default("max_file_bytes")
    catalog_seed: Seed | None = _default("catalog_seed")
    snapshot_max_bytes: int = _default("snapshot_max_bytes")
    seed_timeout: float = _default("seed_timeout")
    catalog_takeover: float = _default("catalog_takeover")
    feed_poll: float = _default("feed_poll")
    log_level: LogLevel = _default("log_level")
    event_loop: EventLoop = _default("event_loop")
    access_log: bool = _default("access_log")
    compress_min_bytes: int | None = _default("compress_min_bytes")
    cache_url: RedisURL | None = _default("cache_url")
    cache_password: Secret | None = _default("cache_password")
    cache_timeout: float = _default("cache_timeout")
    cache_required: bool = _default("cache_required")
    metrics: bool = _default("metrics")
    metrics_token: Secret | None = _default("metrics_token")
    metrics_dir: Path | None = _default("metrics_dir")
    log_format: LogFormat = _default("log_format")
    log_client: LogClient = _default("log_client")

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        options: Mapping[str, str | None] | None = None,
        *,
        warn: Callable[[str], None] = warn,
    ) -> Settings:
        """Read every setting from `options` (CLI, by setting name), else `environ`, else its default."""
        environ = os.environ if environ is None else environ
        options = options or {}
        values: dict[str, Any] = {}
        problems: list[str] = []
        for setting in REGISTRY:
            given = _given(setting, environ, options, warn)
            if given is None:
                try:
                    values[setting.name] = setting.default_for(environ)
                except ValueError as exc:
                    problems.append(f"the default of {setting.env} could not be used: {exc}")
                continue
            source, text = given
            try:
                values[setting.name] = setting.parse(text)
            except ValueError as exc:
                shown = REDACTED if setting.secret else redact_url(text)
                problems.append(f"{source} has value {shown!r}: {exc}.")
        if problems:
            raise SettingsError(problems)
        if values["catalog_path"] is None:  # its default is the upstream's own: known only now
            values["catalog_path"] = default_catalog_path(environ, values["upstream"])
        return cls(**values)

    def __post_init__(self) -> None:
        # Built directly (tests) without a path, the field holds the registry's None: the upstream's own default.
        if cast(Path | None, self.catalog_path) is None:
            object.__setattr__(self, "catalog_path", default_catalog_path(os.environ, self.upstream))
        # Credentials given as settings win over those in the upstream URL.
        if self.upstream_user is not None or self.upstream_password is not None:
            given = self.upstream.credentials
            credentials = Credentials(
                self.upstream_user if self.upstream_user is not None else (given.username if given else ""),
                self.upstream_password or (given.password if given else Secret("")),
            )
            object.__setattr__(self, "upstream", UpstreamURL(self.upstream.base, credentials))
        # SHIM_CACHE_PASSWORD wins over a password in SHIM_CACHE_URL.
        if self.cache_url is not None and self.cache_password is not None:
            object.__setattr__(self, "cache_url", self.cache_url.with_password(self.cache_password))

    def public(self) -> dict[str, str]:
        """Every setting as it may be shown: credentials redacted."""
        return {f.name: str(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def __repr__(self) -> str:
        return "Settings(" + json.dumps(self.public()) + ")"
