"""The work one request can cause is bounded: a multicall answers each whole-index method once and holds one
copy of its answer, and a multicall's answers stop at MULTICALL_MAX_BYTES."""

from __future__ import annotations

import re
import tracemalloc
import xmlrpc.client
from typing import Any

from starlette.testclient import TestClient

from shim.methods.table import METHODS
from testkit.fakeindex import FakeIndex
from testkit.fakeindex.state import IndexState, Project

from .conftest import after_first_pass, call, served


def many_projects(count: int) -> FakeIndex:
    """A fake index of `count` generated projects without releases: a big Simple index, nothing else."""
    return FakeIndex(IndexState(Project(f"project-{i:06d}", last_serial=i + 1, created=None) for i in range(count)))


def once_only(method: str) -> dict[str, Any]:
    return {
        "faultCode": -32500,
        "faultString": f"ValueError: {method} answers the whole index and may appear only once in a "
        "system.multicall; use individual requests instead.",
    }


def post(client: TestClient, method: str, *params: Any) -> bytes:
    body = xmlrpc.client.dumps(params, methodname=method, allow_none=True).encode()
    response = client.post("/pypi", content=body, headers={"Content-Type": "text/xml"})
    assert response.status_code == 200
    content: bytes = response.content
    return content


def answer_of(body: bytes) -> Any:
    return xmlrpc.client.loads(body)[0][0]


def test_a_multicall_answers_each_whole_index_method_once() -> None:
    with served(FakeIndex()) as client:
        after_first_pass(client)
        names = call(client, "list_packages")
        serials = call(client, "list_packages_with_serial")
        rows = call(client, "changelog_since_serial", 0)
        slots = [
            {"methodName": "list_packages", "params": []},
            {"methodName": "list_packages_with_serial", "params": []},
            {"methodName": "list_packages", "params": []},
            {"methodName": "changelog_since_serial", "params": [0]},
            {"methodName": "package_hosting_mode", "params": ["roundup"]},
            {"methodName": "list_packages_with_serial", "params": []},
            {"methodName": "changelog_since_serial", "params": [10**6]},
            {"methodName": "browse", "params": [["Programming Language :: Python"]]},
            {"methodName": "browse", "params": [[]]},
            {"methodName": "changelog", "params": [0]},
            {"methodName": "changelog", "params": [0, True]},
        ]
        answers = call(client, "system.multicall", slots)
    assert answers[:5] == [[names], [serials], once_only("list_packages"), [rows], ["pypi-only"]]
    assert answers[5:7] == [once_only("list_packages_with_serial"), once_only("changelog_since_serial")]
    assert answers[8] == once_only("browse") and answers[10] == once_only("changelog")
    assert isinstance(answers[7][0], list) and isinstance(answers[9][0], list)


def multicall_in_memory(client: TestClient, slots: list[dict[str, Any]]) -> tuple[bytes, int]:
    """The multicall's response body, and the most memory the process held above its start while answering it."""
    tracemalloc.start()
    try:
        body = post(client, "system.multicall", slots)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return body, peak


def whole_index_answer(client: TestClient) -> bytes:
    """list_packages_with_serial's answer, which also builds the encoded answer the index snapshot keeps."""
    after_first_pass(client)  # the refresher's first look at the Simple index is over: the snapshot stays
    return post(client, "list_packages_with_serial")


WITH_SERIAL = {"methodName": "list_packages_with_serial", "params": []}


def test_a_multicall_splices_a_whole_index_answer_without_copying_it() -> None:
    with served(many_projects(20_000)) as client:
        one = whole_index_answer(client)
        body, peak = multicall_in_memory(
            client, [WITH_SERIAL] + [{"methodName": "package_hosting_mode", "params": ["x"]}] * 99
        )
    assert peak < 2 * len(one), f"{peak} bytes at the peak for an answer of {len(one)}"
    answers = answer_of(body)
    assert len(answers[0][0]) == 20_000 and answers[1:] == [["pypi-only"]] * 99


def test_a_multicall_of_100_whole_index_calls_holds_one_answer_in_memory() -> None:
    with served(many_projects(20_000)) as client:
        one = whole_index_answer(client)
        body, peak = multicall_in_memory(client, [WITH_SERIAL] * 100)
    assert peak < 2 * len(one), f"{peak} bytes at the peak for an answer of {len(one)}"
    assert len(body) < len(one) + 100 * 400  # one answer and 99 faults
    answers = answer_of(body)
    assert len(answers[0][0]) == 20_000
    assert answers[1:] == [once_only("list_packages_with_serial")] * 99


def test_the_multicall_help_names_every_whole_index_method() -> None:
    with served(FakeIndex()) as client:
        text = call(client, "system.methodHelp", "system.multicall")
    listed = re.search(r"the whole-index methods \(([^)]*)\) once each", text)
    assert listed is not None, text
    assert set(listed.group(1).split(", ")) == {spec.name for spec in METHODS if spec.whole_index}


def test_a_multicall_stops_answering_past_its_byte_cap() -> None:
    slots = [
        {"methodName": "list_packages", "params": []},
        {"methodName": "release_data", "params": ["roundup", "1.6.0"]},  # 3 kB: past the 2 kB cap
        {"methodName": "package_hosting_mode", "params": ["roundup"]},
    ]
    too_big = {
        "faultCode": -32500,
        "faultString": "ValueError: The answers of this system.multicall would pass 2048 bytes; "
        "use individual requests instead.",
    }
    with served(FakeIndex()) as client:
        client.app.state.dispatcher.max_multicall_bytes = 2048  # type: ignore[attr-defined]  # MULTICALL_MAX_BYTES
        names = call(client, "list_packages")
        assert call(client, "system.multicall", slots) == [[names], too_big, too_big]
        counted = client.app.state.dispatcher.calls  # type: ignore[attr-defined]
    assert counted["release_data"] == 1 and "package_hosting_mode" not in counted  # past the cap, never called
