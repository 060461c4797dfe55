"""Answers built from a project document are encoded once while that document is the cache's copy, and follow it
when it changes."""

from __future__ import annotations

from typing import Any

import pytest

from shim.methods import reading
from shim.xmlrpc.protocol import Raw, encode_value
from testkit.fakeindex import FakeIndex

from .helpers import refresh_index, rpc_for, served


@pytest.fixture
def encodings(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    encoded: list[Any] = []

    def counted(value: Any, *, allow_i8: bool = False) -> Raw:
        encoded.append(value)
        return encode_value(value, allow_i8=allow_i8)

    monkeypatch.setattr(reading, "encode_value", counted)
    return encoded


def test_a_cache_hit_answers_the_answer_encoded_at_the_first_call(encodings: list[Any]) -> None:
    with served(FakeIndex(), cache_soft_ttl=3600) as client:
        rpc = rpc_for(client)
        answers = [rpc("package_releases", "roundup") for _ in range(3)]
        hidden = [rpc("package_releases", "roundup", True) for _ in range(2)]
        files = [rpc("release_urls", "roundup", "1.6.1") for _ in range(2)]
    assert answers == [["1.6.1"]] * 3 and hidden[0] == hidden[1] and files[0] == files[1]
    assert len(hidden[0]) > 1 and files[0] and files[0][0]["filename"].startswith("roundup-1.6.1")
    assert encodings == [["1.6.1"], hidden[0], files[0]]  # one encoding per answer, none per hit


def test_an_answer_follows_the_document_when_the_index_shows_it_changed(encodings: list[Any]) -> None:
    fake = FakeIndex()
    with served(fake, cache_soft_ttl=3600) as client:
        rpc = rpc_for(client)
        assert rpc("package_releases", "roundup") == ["1.6.1"]
        fake.add_release("roundup", "1.7.0", files=[])
        refresh_index(client)
        assert rpc("package_releases", "roundup") == ["1.7.0"]
        assert rpc("package_releases", "roundup") == ["1.7.0"]
    assert encodings == [["1.6.1"], ["1.7.0"]]
