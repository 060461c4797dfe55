"""The settings registry: names, `--help`, precedence, defaults, validation, upstream URLs and pip's index."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import certifi
import pytest
from pypi_simple import PYPI_SIMPLE_ENDPOINT

from shim import cli
from shim.config.rates import RateLimit
from shim.config.registry import REGISTRY
from shim.config.setting import LogLevel
from shim.config.settings import Settings, SettingsError
from shim.modes import Mode
from shim.upstream.urls import UpstreamURL

from .helpers import run_shim

UPSTREAM = "https://upstream.test/"
BASE_ENV = {"SHIM_UPSTREAM": UPSTREAM}
SUBPROCESS_TIMEOUT = 30


def by_name(name: str) -> Any:
    return next(s for s in REGISTRY if s.name == name)


def one_line(text: str) -> str:
    """argparse wraps help text at the terminal width: compare with all white space collapsed."""
    return " ".join(text.split())


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without anything that configures the shim or pip's index."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIM_", "PIP_INDEX_URL")) and k not in ("PORT",)}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def load_error(environ: dict[str, str], options: dict[str, str | None] | None = None) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ, options)
    return caught.value


# Names


def test_every_setting_has_one_entry_matching_a_settings_field() -> None:
    names = [s.name for s in REGISTRY]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(f.name for f in dataclasses.fields(Settings))


@pytest.mark.parametrize("setting", REGISTRY, ids=lambda s: s.name)
def test_env_var_and_option_derive_from_the_name(setting: Any) -> None:
    assert setting.env == "SHIM_" + setting.name.upper()
    assert setting.option == "--" + setting.name.replace("_", "-")
    assert setting.meaning
    assert setting.default_doc


def test_parser_has_one_option_per_setting_and_none_when_not_given() -> None:
    # Absent options are left out, so that the variable or the default decides.
    assert vars(cli.build_parser().parse_args([])) == {"command": None}
    given = vars(cli.build_parser().parse_args(["--port", "9000", "index", "refresh", "--host", "::1"]))
    assert {s.name: given[s.name] for s in REGISTRY if s.name in given} == {"port": "9000", "host": "::1"}


# --help


def assert_help_lists_every_setting(text: str) -> None:
    flat = one_line(text)
    for setting in REGISTRY:
        assert setting.option in flat, setting.name
        assert setting.env in flat, setting.name
        assert one_line(setting.default_doc) in flat, setting.name


def test_help_lists_every_option_env_var_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert_help_lists_every_setting(cli.build_parser().format_help())


@pytest.mark.e2e
def test_help_of_python_dash_m_shim_lists_every_setting() -> None:
    done = run_shim("--help", env=clean_env())
    assert done.returncode == 0, done.stderr
    assert_help_lists_every_setting(done.stdout)


@pytest.mark.e2e
def test_help_of_the_console_script_lists_every_setting() -> None:
    script = Path(sys.executable).with_name("pypi-xmlrpc-shim")
    if not script.exists():
        pytest.skip("the console script is not installed beside this interpreter")
    done = subprocess.run(
        [str(script), "--help"], env=clean_env(), capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: pypi-xmlrpc-shim")
    assert_help_lists_every_setting(done.stdout)


# Defaults and precedence


def test_every_default() -> None:
    settings = Settings.load(BASE_ENV)
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.mode is Mode.RESTORE
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.body_timeout == 30
    assert settings.allow_i8 is False
    assert settings.upstream_timeout == 10.0
    assert settings.ca_bundle is None
    assert settings.cache_soft_ttl == 300.0
    assert settings.cache_hard_ttl == 86400.0
    assert settings.not_found_ttl == 60.0
    assert settings.cache_max_bytes == 256 * 1024 * 1024
    assert settings.index_refresh == 300.0
    assert settings.log_level is LogLevel.INFO


def test_registry_defaults_agree_with_the_dataclass_defaults() -> None:
    loaded = Settings.load({**BASE_ENV, "XDG_STATE_HOME": os.environ["XDG_STATE_HOME"]})
    direct = Settings(upstream=UpstreamURL.parse(UPSTREAM))
    assert loaded == direct


def test_upstream_defaults_to_pip_index_url() -> None:
    settings = Settings.load({"PIP_INDEX_URL": "https://mirror.test/simple/"})
    assert settings.upstream.base == "https://mirror.test/"


@pytest.mark.e2e
def test_upstream_defaults_to_the_public_index_when_pip_names_none(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real `pip config list` runs, with no configuration file and no index in the environment.
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    assert Settings.load({}).upstream == UpstreamURL.parse(PYPI_SIMPLE_ENDPOINT)


# name, option value, env value, default, and what the option and env values become
PRECEDENCE = [
    ("host", "0.0.0.0", "::1", "127.0.0.1", "0.0.0.0", "::1"),
    ("port", "9001", "9002", 8000, 9001, 9002),
    ("mode", "removed", "pypi-today", Mode.RESTORE, Mode.REMOVED, Mode.PYPI_TODAY),
    ("max_body_bytes", "2048", "4096", 1024 * 1024, 2048, 4096),
    ("body_timeout", "5", "6", 30, 5, 6),
    ("allow_i8", "true", "yes", False, True, True),
    ("log_level", "debug", "warning", LogLevel.INFO, LogLevel.DEBUG, LogLevel.WARNING),
]


@pytest.mark.parametrize(("name", "option", "env", "default", "from_option", "from_env"), PRECEDENCE)
def test_option_beats_env_beats_default(
    name: str, option: str, env: str, default: Any, from_option: Any, from_env: Any
) -> None:
    variable = by_name(name).env
    assert getattr(Settings.load(BASE_ENV), name) == default
    assert getattr(Settings.load({**BASE_ENV, variable: env}), name) == from_env
    assert getattr(Settings.load({**BASE_ENV, variable: env}, {name: option}), name) == from_option
    assert getattr(Settings.load({**BASE_ENV, variable: env}, {name: None}), name) == from_env
    assert getattr(Settings.load(BASE_ENV, {name: option}), name) == from_option


def test_upstream_option_beats_env_beats_pip() -> None:
    environ = {"PIP_INDEX_URL": "https://pip.test/simple/", "SHIM_UPSTREAM": "https://env.test/"}
    assert Settings.load(environ).upstream.base == "https://env.test/"
    assert Settings.load(environ, {"upstream": "https://option.test/"}).upstream.base == "https://option.test/"


def test_cli_options_reach_the_settings() -> None:
    settings = cli.load(["--port", "9100", "--mode", "pypi-today", "--allow-i8", "on"], environ={"SHIM_PORT": "9200"})
    assert settings.port == 9100
    assert settings.mode is Mode.PYPI_TODAY
    assert settings.allow_i8 is True


def test_port_is_honoured_when_shim_port_is_unset() -> None:
    assert Settings.load({**BASE_ENV, "PORT": "9300"}).port == 9300


def test_shim_port_beats_port() -> None:
    assert Settings.load({**BASE_ENV, "PORT": "9300", "SHIM_PORT": "9301"}).port == 9301


def test_port_option_beats_shim_port_and_port() -> None:
    assert Settings.load({**BASE_ENV, "PORT": "9300", "SHIM_PORT": "9301"}, {"port": "9302"}).port == 9302


def test_a_bad_port_is_ignored_when_shim_port_is_set() -> None:
    assert Settings.load({**BASE_ENV, "PORT": "nope", "SHIM_PORT": "9301"}).port == 9301


def test_an_empty_port_is_unset() -> None:
    assert Settings.load({**BASE_ENV, "PORT": ""}).port == 8000


def test_a_bad_port_stops_start_up_when_shim_port_is_unset() -> None:
    error = load_error({**BASE_ENV, "PORT": "nope"})
    assert "SHIM_PORT" in str(error)


def test_a_bad_port_is_reported_by_its_name_and_value() -> None:
    error = load_error({**BASE_ENV, "PORT": "nope"})
    assert "PORT has value 'nope'" in str(error)


# Accepted spellings

GOOD_VALUES = [
    ("host", "localhost", "localhost"),
    ("host", " 0.0.0.0 ", "0.0.0.0"),
    ("host", "::1", "::1"),
    ("host", "[::1]", "[::1]"),
    ("port", "1", 1),
    ("port", "65535", 65535),
    ("port", " 8080 ", 8080),
    ("port", "8_080", 8080),
    ("mode", "RESTORE", Mode.RESTORE),
    ("mode", " pypi-today ", Mode.PYPI_TODAY),
    ("mode", "removed", Mode.REMOVED),
    ("max_body_bytes", "1024", 1024),
    ("max_body_bytes", str(64 * 1024 * 1024), 64 * 1024 * 1024),
    ("body_timeout", "1", 1),
    ("body_timeout", "3600", 3600),
    *[("allow_i8", text, True) for text in ("1", "true", "TRUE", "yes", "on", " On ")],
    *[("allow_i8", text, False) for text in ("0", "false", "False", "no", "off")],
    *[("log_level", text, LogLevel(text.strip().lower())) for text in ("debug", "INFO", "Warning", "error ")],
    ("upstream_timeout", "2.5", 2.5),
    ("upstream_timeout", "600", 600.0),
    ("ca_bundle", certifi.where(), certifi.where()),
    ("ca_bundle", "", None),
    ("cache_soft_ttl", "0", 0.0),
    ("cache_hard_ttl", "3600", 3600.0),
    ("not_found_ttl", "0.5", 0.5),
    ("cache_max_bytes", "0", 0),
    ("cache_max_bytes", "1_000_000", 1_000_000),
    ("index_refresh", "1", 1.0),
]


@pytest.mark.parametrize(("name", "text", "value"), GOOD_VALUES)
def test_accepted_values(name: str, text: str, value: Any) -> None:
    assert getattr(Settings.load({**BASE_ENV, by_name(name).env: text}), name) == value


# Bad values: each names its source and quotes the value

BAD_VALUES = [
    ("host", "", "not a host name or IP address"),
    ("host", "   ", "not a host name or IP address"),
    ("host", "bad host", "not a host name or IP address"),
    ("host", "a/b", "not a host name or IP address"),
    ("host", "höst", "not a host name or IP address"),
    ("port", "nope", "not a whole number"),
    ("port", "", "not a whole number"),
    ("port", "80.5", "not a whole number"),
    ("port", "0", "must be between 1 and 65535"),
    ("port", "-1", "must be between 1 and 65535"),
    ("port", "65536", "must be between 1 and 65535"),
    ("mode", "fast", "must be one of restore, pypi-today, removed"),
    ("mode", "", "must be one of restore, pypi-today, removed"),
    ("mode", "pypi_today", "must be one of restore, pypi-today, removed"),
    ("max_body_bytes", "1MiB", "not a whole number"),
    ("max_body_bytes", "1023", "must be between 1024 and 67108864"),
    ("max_body_bytes", str(64 * 1024 * 1024 + 1), "must be between 1024 and 67108864"),
    ("body_timeout", "ten", "not a whole number"),
    ("body_timeout", "0", "must be between 1 and 3600"),
    ("body_timeout", "3601", "must be between 1 and 3600"),
    ("allow_i8", "maybe", "must be true or false"),
    ("allow_i8", "2", "must be true or false"),
    ("allow_i8", "", "must be true or false"),
    ("log_level", "verbose", "must be one of debug, info, warning, error"),
    ("log_level", "critical", "must be one of debug, info, warning, error"),
    ("log_level", "10", "must be one of debug, info, warning, error"),
    ("upstream", "ftp://upstream.test/", "the scheme must be http or https"),
    ("upstream", "file:///srv/index/simple", "the scheme must be http or https"),
    ("upstream", "upstream.test/simple", "the scheme must be http or https"),
    ("upstream", "garbage", "the scheme must be http or https"),
    ("upstream", "", "the scheme must be http or https"),
    ("upstream", "https:///simple/", "the URL has no host"),
    ("upstream", "https://", "the URL has no host"),
    ("upstream", "https://upstream.test/simple/#x", "a base URL takes no query or fragment"),
    ("upstream", "https://upstream.test/#top", "a base URL takes no query or fragment"),
    ("upstream", "https://upstream.test:99999/", "not a valid URL"),
    ("upstream", "https://upstream.test:port/", "not a valid URL"),
    ("upstream", "https://[::1/", "not a valid URL"),
    ("upstream_timeout", "soon", "not a number of seconds"),
    ("upstream_timeout", "0", "must be between 0.1 and 600 seconds"),
    ("upstream_timeout", "601", "must be between 0.1 and 600 seconds"),
    ("ca_bundle", "/no/such/ca.pem", "no such file"),
    ("ca_bundle", __file__, "not a PEM file of certificates"),
    ("cache_soft_ttl", "-1", "must be between 0 and 604800 seconds"),
    ("cache_hard_ttl", "forever", "not a number of seconds"),
    ("not_found_ttl", "86401", "must be between 0 and 86400 seconds"),
    ("cache_max_bytes", "1GB", "not a whole number"),
    ("cache_max_bytes", "-1", "must be between 0 and 68719476736"),
    ("index_refresh", "0", "must be between 1 and 86400 seconds"),
]


@pytest.mark.parametrize(("name", "text", "reason"), BAD_VALUES)
def test_a_bad_env_value_is_reported_by_variable_and_quoted(name: str, text: str, reason: str) -> None:
    env = by_name(name).env
    error = load_error({**BASE_ENV, env: text})
    assert error.problems == [str(error)]
    assert str(error).startswith(f"{env} has value {text!r}: ")
    assert reason in str(error)


@pytest.mark.parametrize(("name", "text", "reason"), BAD_VALUES)
def test_a_bad_option_value_is_reported_by_option_and_quoted(name: str, text: str, reason: str) -> None:
    setting = by_name(name)
    error = load_error(BASE_ENV, {name: text})
    assert str(error).startswith(f"{setting.option} has value {text!r}: ")
    assert setting.env not in str(error)
    assert reason in str(error)


def test_a_good_option_hides_a_bad_env_value() -> None:
    assert Settings.load({**BASE_ENV, "SHIM_PORT": "nope"}, {"port": "9000"}).port == 9000


def test_every_bad_value_is_reported_at_once() -> None:
    error = load_error(
        {"SHIM_UPSTREAM": "ftp://upstream.test/", "SHIM_PORT": "nope", "SHIM_MODE": "fast", "SHIM_HOST": "good.test"},
        {"log_level": "loud", "allow_i8": None},
    )
    assert len(error.problems) == 4
    text = str(error)
    assert "SHIM_UPSTREAM has value 'ftp://upstream.test/'" in text
    assert "SHIM_PORT has value 'nope'" in text
    assert "SHIM_MODE has value 'fast'" in text
    assert "--log-level has value 'loud'" in text
    assert "SHIM_HOST" not in text


def test_a_bad_value_on_the_command_line_exits_2_with_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.load(["--port", "nope", "--mode", "fast"], environ=BASE_ENV)
    assert caught.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "cannot start" in err
    assert "--port has value 'nope': not a whole number." in err
    assert "--mode has value 'fast'" in err


@pytest.mark.e2e
def test_python_dash_m_shim_with_a_bad_port_exits_2_without_serving() -> None:
    done = run_shim(env=clean_env(SHIM_UPSTREAM=UPSTREAM, SHIM_PORT="nope"))
    assert done.returncode == 2
    assert done.stdout == ""
    assert "SHIM_PORT has value 'nope': not a whole number." in done.stderr
    assert "Uvicorn running" not in done.stderr
    assert "Started server" not in done.stderr


def test_an_upstream_with_white_space_inside_is_refused() -> None:
    error = load_error({"SHIM_UPSTREAM": "https://u.test/ https://other.test/"})
    assert "SHIM_UPSTREAM has value 'https://u.test/ https://other.test/': a URL has no white space in it." in str(
        error
    )


@pytest.mark.parametrize("text", ["3600 per minute", "20 per 5 minutes", "100 per second", "7 per 2 days"])
def test_a_rate_limit_is_shown_in_the_notation_it_was_given_in(text: str) -> None:
    assert str(RateLimit.parse(text)) == text
