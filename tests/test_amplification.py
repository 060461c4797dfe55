"""The work one request can cause is bounded: a multicall holds one copy of a whole-index answer."""

from __future__ import annotations

import tracemalloc
import xmlrpc.client
from typing import Any

from starlette.testclient import TestClient

from testkit.fakeindex import FakeIndex
from testkit.fakeindex.state import IndexState, Project

from .conftest import after_first_pass, served


def many_projects(count: int) -> FakeIndex:
    """A fake index of `count` generated projects without releases: a big Simple index, nothing else."""
    return FakeIndex(IndexState(Project(f"project-{i:06d}", last_serial=i + 1, created=None) for i in range(count)))


def post(client: TestClient, method: str, *params: Any) -> bytes:
    body = xmlrpc.client.dumps(params, methodname=method, allow_none=True).encode()
    response = client.post("/pypi", content=body, headers={"Content-Type": "text/xml"})
    assert response.status_code == 200
    content: bytes = response.content
    return content


def answer_of(body: bytes) -> Any:
    return xmlrpc.client.loads(body)[0][0]


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
