"""The systemd unit in deploy/: read as systemd reads it, and checked by `systemd-analyze verify` where it is
installed. With DynamicUser and ProtectSystem=strict, the service may write only its StateDirectory: the
catalog must live there, or it cannot be created at all."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shim.config.settings import Settings
from shim.upstream.urls import UpstreamURL
from shim.web.server import RESERVED_DESCRIPTORS

from .helpers import UPSTREAM

UNIT = Path(__file__).resolve().parent.parent / "deploy" / "pypi-xmlrpc-shim.service"


def unit() -> configparser.ConfigParser:
    # systemd units are INI-like: repeated keys (Environment=) are allowed, `%` is a specifier, keys keep case.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def environment(service: configparser.SectionProxy) -> dict[str, str]:
    return dict(assignment.split("=", 1) for assignment in shlex.split(service.get("Environment", "")))


def test_the_catalog_lives_in_the_units_state_directory() -> None:
    service = unit()["Service"]
    assert (service["DynamicUser"], service["ProtectSystem"]) == ("yes", "strict")  # what makes it necessary
    assert service["StateDirectory"] == "pypi-xmlrpc-shim"
    catalog = environment(service)["SHIM_CATALOG_PATH"]
    assert catalog == f"%S/{service['StateDirectory']}/catalog.sqlite3"  # %S: /var/lib for a system unit
    settings = Settings.load({"SHIM_UPSTREAM": UPSTREAM, "SHIM_CATALOG_PATH": catalog.replace("%S", "/var/lib")})
    assert settings.catalog_path == Path("/var/lib/pypi-xmlrpc-shim/catalog.sqlite3")


def test_the_unit_runs_the_command_with_descriptors_for_the_cap_and_time_for_a_drain() -> None:
    service, defaults = unit()["Service"], Settings(upstream=UpstreamURL.parse(UPSTREAM))
    assert service["ExecStart"].endswith("/bin/pypi-xmlrpc-shim")  # never uvicorn itself: it lacks the guards
    assert int(service["LimitNOFILE"]) >= 4 * (defaults.max_connections + RESERVED_DESCRIPTORS)
    drain = defaults.body_timeout + defaults.call_timeout + defaults.write_timeout
    assert int(service["TimeoutStopSec"]) > drain


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # verify also checks that ExecStart's program exists: point it at one that does, nothing else changed.
    text = UNIT.read_text(encoding="utf-8").replace("/opt/pypi-xmlrpc-shim/venv/bin/pypi-xmlrpc-shim", sys.executable)
    assert text != UNIT.read_text(encoding="utf-8")
    copy = tmp_path / UNIT.name
    copy.write_text(text, encoding="utf-8")
    broken = tmp_path / "broken.service"
    broken.write_text(text.replace("LimitNOFILE=", "LimitNOFILES="), encoding="utf-8")
    verify = ["systemd-analyze", "verify", "--man=no"]
    checked = subprocess.run([*verify, str(copy)], capture_output=True, text=True, timeout=60, check=False)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")
    # ... and it does find a misspelt key: the check above means something.
    misspelt = subprocess.run([*verify, str(broken)], capture_output=True, text=True, timeout=60, check=False)
    assert "'LimitNOFILES'" in misspelt.stderr  # systemd: "Unknown key 'LimitNOFILES' in section [Service]"
