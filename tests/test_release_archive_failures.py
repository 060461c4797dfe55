"""When a release's own files cannot give its metadata: a file that gives none is never read again (its bytes do not
change under its URL), and a files host that cannot be reached is an optional source like the others: logged once,
left alone for a while, and the call answers -32403 (the upstream is unavailable), not that no metadata exists."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from testkit.fakeindex import FakeIndex
from testkit.sdists import build_sdist, sdist_file
from testkit.wheels import build_wheel, wheel_file

from .clock import FakeClock
from .helpers import fault_of, rpc_for, served
from .transports import Unreachable

FILES = "files.upstream.test"
INDEX = "upstream.test"
PKG_INFO = "Metadata-Version: 2.1\nName: arch-demo\nVersion: 1.0\nSummary: Read from the archive\n"
NO_METADATA = (
    -32500,
    "RuntimeError: The upstream offers no metadata for arch-demo 1.0: no per-release JSON and no core metadata file.",
)
UNAVAILABLE = (-32403, "server error; service unavailable")


def mirror(*files: dict[str, Any]) -> FakeIndex:
    """A mirror-like upstream (no per-release JSON, no core metadata files) with `arch-demo` 1.0 and a latest 9.0."""
    fake = FakeIndex(per_version_json=False, core_metadata=False)
    fake.add_release("arch-demo", "1.0", files=list(files))
    fake.add_release("arch-demo", "9.0", files=[])
    return fake


def file_reads(fake: FakeIndex) -> list[str]:
    """The requests for the release's files themselves (not their core metadata files)."""
    return [r.path for r in fake.requests if r.host == FILES and not r.path.endswith(".metadata")]


def good_files() -> list[dict[str, Any]]:
    wheel = build_wheel("arch-demo", "1.0", metadata=PKG_INFO)
    sdist = build_sdist("arch-demo", "1.0", pkg_info=PKG_INFO, suffix="tar.gz")
    return [
        wheel_file("arch-demo", "1.0", content=wheel),
        sdist_file("arch-demo", "1.0", sdist, suffix="tar.gz", upload="2020-01-01T00:00:00Z"),
    ]


def test_a_file_that_gives_no_metadata_is_not_read_again_even_an_hour_later() -> None:
    broken = build_wheel("arch-demo", "1.0", metadata=PKG_INFO)[:-22] + bytes(22)  # no end of central directory
    fake = mirror(wheel_file("arch-demo", "1.0", content=broken))
    clock = FakeClock()
    with served(fake, clock=clock) as client:
        client.app.state.services.store.cache.clock = clock  # type: ignore[attr-defined]
        rpc = rpc_for(client)
        assert fault_of(rpc, "release_data", "arch-demo", "1.0") == NO_METADATA
        read = file_reads(fake)
        assert read == [read[0]]  # its tail, whose end of central directory is missing
        clock.advance(3600)  # well past SHIM_NOT_FOUND_TTL: the cache's not-found has long expired
        assert fault_of(rpc, "release_data", "arch-demo", "1.0") == NO_METADATA
    assert file_reads(fake) == read  # never the file again


def test_a_files_host_that_cannot_be_reached_is_unavailable_logged_once_and_left_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = mirror(*good_files())
    transport = Unreachable(fake, FILES)
    with served(fake, transport, clock=FakeClock()) as client:
        rpc = rpc_for(client)
        for _ in range(3):
            assert fault_of(rpc, "release_data", "arch-demo", "1.0") == UNAVAILABLE
        health = client.get("/healthz").json()
    # The core metadata file once; the wheel's tail in one read (its retries); then the host is left alone, the
    # sdist included, and every call answers at once.
    assert transport.asked[FILES] == 1 + 3
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and FILES in r.getMessage()]
    sources = [m.split(" from ")[0] for m in warned if " cannot be read, answers go without it" in m]
    assert sources == ["core metadata", "release files"]  # each source logged once
    assert (
        health["optional_reads"]["release files"][f"https://{FILES}"]["skipped"] == 1 + 2 * 2
    )  # the sdist after the wheel, then both files of the next two calls
    assert health["origins"][f"https://{INDEX}"]["circuit"] == "closed"
