"""What the upstream offers is learnt from signals one stray 404 cannot fake, rechecked after SHIM_PROBE_INTERVAL,
and shown on /healthz: per-release JSON, core metadata files, `ownership`, and the Simple index's JSON and serials."""

from __future__ import annotations

from typing import Any

from testkit.fakeindex import FakeIndex
from testkit.wheels import wheel_file

from .clock import FakeClock
from .helpers import call, fault_of, rpc_for, served, upstream_paths
from .transports import Undeclared

DAY = 86400.0


def asked(fake: FakeIndex, suffix: str) -> list[str]:
    return [p for p in upstream_paths(fake) if p.endswith(suffix)]


def capability(client: Any, name: str) -> dict[str, Any]:
    found: dict[str, Any] = client.get("/healthz").json()["capabilities"][name]
    return found


def test_one_missing_per_release_document_never_switches_the_route_off() -> None:
    fake = FakeIndex()
    fake.fail("/pypi/roundup/1.5.1/json", status=404)  # this one document is missing, the route is there
    with served(fake, clock=FakeClock()) as client:
        # Nothing else has that release's metadata: the fault says so, as pinned in test_release_methods.
        assert fault_of(rpc_for(client), "release_data", "roundup", "1.5.1")[0] == -32500
        assert capability(client, "per_version_json") | {"at": None} == {
            "offered": True,
            "learnt": "probe",  # the miss was checked on the latest release, which has its document
            "at": None,
            "misses_in_a_row": 0,
        }
        assert call(client, "release_data", "roundup", "1.6.0")["version"] == "1.6.0"
    assert asked(fake, "/1.6.0/json") == ["/pypi/roundup/1.6.0/json"]  # still asked: the route stays on


def test_a_missing_route_is_learnt_from_a_probe_and_rechecked_after_the_probe_interval() -> None:
    fake = FakeIndex(per_version_json=False)
    clock = FakeClock()
    with served(fake, clock=clock) as client:
        call(client, "release_urls", "roundup", "1.5.1")  # the project document answers: no per-release JSON asked
        for version in ("1.5.1", "1.6.0", "1.5.1"):  # no metadata for them anywhere: faults, pinned elsewhere
            assert fault_of(rpc_for(client), "release_data", "roundup", version)[0] == -32500
        assert capability(client, "per_version_json")["offered"] is False
        assert capability(client, "per_version_json")["learnt"] == "probe"
        # The miss, then its probe on the latest release; after that, never asked while the route is known missing.
        assert [p for p in upstream_paths(fake) if p.count("/") == 4 and p.endswith("/json")] == [
            "/pypi/roundup/1.5.1/json",
            "/pypi/roundup/1.6.1/json",
        ]
        clock.advance(3601)  # past SHIM_PROBE_INTERVAL's default: the next call asks again
        fake.per_version_json = True  # the mirror has grown the route
        assert call(client, "release_data", "roundup", "1.6.0")["version"] == "1.6.0"
        assert capability(client, "per_version_json")["offered"] is True
    assert asked(fake, "/1.6.0/json") == ["/pypi/roundup/1.6.0/json"]


def test_misses_in_a_row_on_distinct_releases_switch_off_a_route_that_had_answered() -> None:
    fake = FakeIndex()
    for version in ("0.1", "0.2", "0.3", "0.4", "0.5"):
        fake.add_release("many", version, files=[wheel_file("many", version)])
    with served(fake, clock=FakeClock()) as client:
        assert call(client, "release_data", "many", "0.1")["version"] == "0.1"  # the route answers
        fake.per_version_json = False  # and then stops
        for version in ("0.2", "0.2", "0.3"):
            assert fault_of(rpc_for(client), "release_data", "many", version)[0] == -32500  # nothing else has it
        assert capability(client, "per_version_json")["offered"] is True  # two distinct misses: not yet
        fault_of(rpc_for(client), "release_data", "many", "0.4")
        assert capability(client, "per_version_json") | {"at": None} == {
            "offered": False,
            "learnt": "misses",
            "at": None,
            "misses_in_a_row": 0,
        }


def test_core_metadata_of_undeclared_wheels_is_no_longer_asked_for_once_three_are_missing() -> None:
    fake = FakeIndex()
    for version in ("0.1", "0.2", "0.3", "0.4", "0.5"):
        fake.add_release("bare", version, files=[wheel_file("bare", version)])
    # A mirror whose JSON says nothing of core metadata, and serves none.
    with served(fake, Undeclared(fake), clock=FakeClock()) as client:
        for version in ("0.1", "0.2", "0.3", "0.4", "0.5"):
            assert call(client, "release_data", "bare", version)["version"] == version
        assert capability(client, "core_metadata")["offered"] is False
    assert len(asked(fake, ".metadata")) == 3


def test_healthz_shows_what_the_upstream_offers() -> None:
    fake = FakeIndex()
    with served(fake) as client:
        call(client, "package_roles", "roundup")
        shown = client.get("/healthz").json()["capabilities"]
    assert shown["json_simple"] is True and shown["serials"] is True
    assert shown["ownership"]["offered"] is True and shown["per_version_json"]["offered"] is None
