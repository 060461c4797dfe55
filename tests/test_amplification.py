"""The work one request can cause is bounded: a multicall answers each whole-index method once and holds one
copy of its answer, and a multicall's answers stop at MULTICALL_MAX_BYTES; a search takes a bounded number of
values, and matches them off the event loop, where the call's deadline can stop it."""

from __future__ import annotations

import asyncio
import re
import time
import tracemalloc
import xmlrpc.client
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from shim.methods.table import METHODS
from testkit.fakeindex import FakeIndex
from testkit.fakeindex.state import IndexState, Project

from .helpers import after_first_pass, call, fault_of, in_app, rpc_for, served

pytestmark = pytest.mark.heavy  # seconds of memory and volume measurement: run after the fast stage


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


# search: its values are bounded, and matched off the event loop


def search_fault(message: str) -> tuple[int, str]:
    return (-32500, f"ValueError: Invalid spec, {message}")


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ({"name": ["a"] * 25_000}, search_fault("'name' must have at most 100 values.")),
        ({"summary": [f"word{i}" for i in range(101)]}, search_fault("'summary' must have at most 100 values.")),
        (
            {"name": ["x"] * 100, "summary": ["y"] * 100, "author": "z"},
            search_fault("must have at most 200 values in all."),
        ),
        (
            {"name": "roundup", "keywords": ["bugs", "b" * 201]},
            search_fault("the values of 'keywords' must be at most 200 characters long."),
        ),
    ],
)
def test_a_search_with_too_many_or_too_long_values_answers_a_fault(
    spec: dict[str, Any], fault: tuple[int, str]
) -> None:
    with served(FakeIndex()) as client:
        assert fault_of(rpc_for(client), "search", spec) == fault


def test_a_search_at_the_limits_is_answered() -> None:
    spec = {"name": ["roundup", *("zz" * 100 for _ in range(99))], "summary": ["y"] * 100, "colour": ["c"] * 1000}
    with served(FakeIndex()) as client:
        assert [hit["name"] for hit in call(client, "search", spec, "or")] == ["roundup"]


def matching_everything(count: int) -> list[str]:
    """`count` different name values, each a part of every name of `many_projects` (or of a fifth of them)."""
    words = ["project-0", *(f"project-0{digit}" for digit in range(5))]
    parts = dict.fromkeys(word[i:j] for word in words for i in range(len(word)) for j in range(i + 2, len(word) + 1))
    return list(parts)[:count]


@pytest.fixture(scope="module")
def big_index() -> FakeIndex:
    return many_projects(50_000)


async def timed_call(http: httpx.AsyncClient, method: str, *params: Any) -> tuple[float, Any]:
    """One XML-RPC round trip on the app's own event loop: how long it took, from its arrival (it waits for its
    turn on the loop, as a request from the network does) to its answer; and the answer."""
    started = time.perf_counter()
    await asyncio.sleep(0)
    body = xmlrpc.client.dumps(params, methodname=method).encode()
    response = await http.post("/pypi", content=body, headers={"Content-Type": "text/xml"})
    return time.perf_counter() - started, xmlrpc.client.loads(response.content)[0][0]


def test_a_big_search_does_not_stall_the_other_calls(big_index: FakeIndex) -> None:
    values = matching_everything(80)
    with served(big_index, rate_limit=None) as client:
        after_first_pass(client)  # the refresher has read the Simple index: only the search runs now

        async def search_and_others() -> tuple[float, list[float]]:
            transport = httpx.ASGITransport(app=client.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://shim.test") as http:
                search = asyncio.create_task(timed_call(http, "search", {"name": values}))
                others = []
                while not search.done():
                    latency, answer = await timed_call(http, "package_hosting_mode", "x")
                    assert answer == "pypi-only"
                    others.append(latency)
                took, hits = await search
            assert hits == []  # the generated projects have no releases: no summary or version to show
            return took, others

        took, others = in_app(client, search_and_others)
    assert max(others) < took / 4, f"a call waited {max(others):.3f} s during a search of {took:.3f} s"


def search_time(fake: FakeIndex, values: list[str], **settings: Any) -> tuple[float, Any]:
    """How long a name search takes a service over `fake` with these settings, and its answer (or fault)."""
    with served(fake, rate_limit=None, **settings) as client:
        after_first_pass(client)  # the refresher has read the Simple index: only the search runs now
        started = time.perf_counter()
        try:
            answer: Any = call(client, "search", {"name": values})
        except xmlrpc.client.Fault as fault:
            answer = (fault.faultCode, fault.faultString)
        return time.perf_counter() - started, answer


def test_a_search_past_the_call_deadline_is_cut_off_at_once(big_index: FakeIndex) -> None:
    values = matching_everything(80)
    full, hits = search_time(big_index, values)
    cut, fault = search_time(big_index, values, call_timeout=0.1)
    assert hits == [] and fault == (-32403, "server error; service unavailable")
    assert cut < full / 2, f"cut off after {cut:.3f} s; the whole search takes {full:.3f} s"
