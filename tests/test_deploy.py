"""The systemd unit starts the command (with its connection guards) with room for the connection cap and a drain."""

from __future__ import annotations

import configparser
from pathlib import Path

from shim.web.server import RESERVED_DESCRIPTORS

from .conftest import make_settings

UNIT = Path(__file__).resolve().parent.parent / "deploy" / "pypi-xmlrpc-shim.service"


def service_section() -> configparser.SectionProxy:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    unit.read_string(UNIT.read_text(encoding="utf-8"))
    return unit["Service"]


def test_the_unit_runs_the_command_with_descriptors_for_the_cap_and_time_for_a_drain() -> None:
    service, defaults = service_section(), make_settings()
    assert service["ExecStart"].endswith("/bin/pypi-xmlrpc-shim")  # never uvicorn itself: it lacks the guards
    assert int(service["LimitNOFILE"]) >= 4 * (defaults.max_connections + RESERVED_DESCRIPTORS)
    drain = defaults.body_timeout + defaults.call_timeout + defaults.write_timeout
    assert int(service["TimeoutStopSec"]) > drain
