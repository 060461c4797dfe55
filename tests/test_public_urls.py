"""The URLs the service gives its clients (file URLs in documents, redirects): built from SHIM_PUBLIC_URL when it
is set, else from the request; the copies of a document rewritten for each base URL are bounded and counted
against the cache's byte budget, whatever Host headers clients send."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from shim.config.settings import Settings, SettingsError
from shim.modes import FilesMode
from shim.upstream.cache import Entry, MemoryStorage
from testkit.fakeindex import FakeIndex

from .helpers import in_app, served

SEED_FILE = "packages/77/13/25df55a3d0dc26067bd61407896a5cc09ccdc545b85f88413ccee07fd1fb/roundup-1.6.1.tar.gz"
PUBLIC = "https://mirror.test/shim/"
BUDGET = 1024 * 1024


def storage_of(client: TestClient) -> MemoryStorage:
    storage: MemoryStorage = client.app.state.services.store.cache.storage  # type: ignore[attr-defined]
    return storage


def cached(client: TestClient, key: str) -> Entry:
    async def get() -> Entry | None:
        return await storage_of(client).get(key)

    entry = in_app(client, get)
    assert entry is not None, key
    return entry


def file_urls_for_hosts(client: TestClient, hosts: int) -> set[str]:
    return {
        client.get("/pypi/roundup/json", headers={"Host": f"h{i}.test"}).json()["urls"][0]["url"] for i in range(hosts)
    }


@pytest.mark.heavy
def test_a_thousand_host_values_keep_few_copies_all_counted_by_the_cache() -> None:
    with served(FakeIndex(), files=FilesMode.PROXY, cache_max_bytes=BUDGET) as client:
        urls = file_urls_for_hosts(client, 1000)
        entry = cached(client, "project:roundup")
        used = storage_of(client).bytes_used
    assert urls == {f"http://h{i}.test/{SEED_FILE}" for i in range(1000)}  # each client is told its own host
    assert len(entry.variants) <= 4
    held = len(entry.body) + sum(len(body) for body in entry.variants.values())
    assert held <= used <= BUDGET  # every copy is counted, and the budget holds


def test_copies_that_would_pass_the_budget_push_documents_out_instead() -> None:
    tight = 40 * 1024  # the project document and its parsed form, and about one rewritten copy
    with served(FakeIndex(), files=FilesMode.PROXY, cache_max_bytes=tight) as client:
        urls = file_urls_for_hosts(client, 20)
        used = storage_of(client).bytes_used
    assert urls == {f"http://h{i}.test/{SEED_FILE}" for i in range(20)}
    assert used <= tight


def test_with_a_public_url_every_file_url_and_redirect_uses_it_whatever_the_host() -> None:
    with served(FakeIndex(), files=FilesMode.PROXY, public_url=PUBLIC) as client:
        urls = file_urls_for_hosts(client, 50)
        entry = cached(client, "project:roundup")
        moved = client.get("/pypi/Roundup/json?x=1", headers={"Host": "evil.test"}, follow_redirects=False)
    assert urls == {PUBLIC + SEED_FILE}
    assert len(entry.variants) == 1
    assert (moved.status_code, moved.headers["location"]) == (301, PUBLIC + "pypi/roundup/json?x=1")


def test_without_a_public_url_a_redirect_names_the_validated_request_host() -> None:
    with served(FakeIndex()) as client:
        moved = client.get("/simple/Roundup/", headers={"Host": "shim.test:8080"}, follow_redirects=False)
        odd = client.get("/simple/Roundup/", headers={"Host": "evil.test/<x>"}, follow_redirects=False)
    assert moved.headers["location"] == "http://shim.test:8080/simple/roundup/"
    assert odd.headers["location"] == "http://testserver/simple/roundup/"  # not a host: the server's own name


def test_in_direct_mode_file_urls_do_not_depend_on_the_host_and_one_copy_is_kept() -> None:
    with served(FakeIndex(), cache_max_bytes=BUDGET) as client:
        urls = file_urls_for_hosts(client, 100)
        entry = cached(client, "project:roundup")
    assert urls == {f"https://files.upstream.test/{SEED_FILE}"}
    assert len(entry.variants) <= 1


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("mirror.test", "the scheme must be http or https"),
        ("ftp://mirror.test/", "the scheme must be http or https"),
        ("https:///path/", "the URL has no host"),
        ("https://mirror.test/?x=1", "a public URL takes no query or fragment"),
        ("https://user:pw@mirror.test/", "a public URL takes no user name or password"),
        ("https://mirror.test:99999/", "not a valid URL"),
    ],
)
def test_a_bad_public_url_names_the_setting(text: str, reason: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load({"SHIM_UPSTREAM": "https://upstream.test/", "SHIM_PUBLIC_URL": text})
    assert str(caught.value).startswith("SHIM_PUBLIC_URL has value ")
    assert reason in str(caught.value)
    assert "pw" not in str(caught.value)


def test_a_public_url_is_normalised_to_end_with_a_slash() -> None:
    settings = Settings.load({"SHIM_UPSTREAM": "https://upstream.test/", "SHIM_PUBLIC_URL": "https://mirror.test/shim"})
    assert settings.public_url == PUBLIC
