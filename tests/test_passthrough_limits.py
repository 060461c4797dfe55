"""What pass-through costs the upstream: a name the Simple index does not list is answered 404 without asking it
(while the index is fresh), and pass-through GETs count against a limit of their own, answered HTTP 429."""

from __future__ import annotations

import ipaddress
import xmlrpc.client

import httpx
import pytest
from starlette.testclient import TestClient

from shim.app import create_app
from shim.config.rates import RateLimit
from shim.config.settings import Settings, SettingsError
from testkit.fakeindex import FakeIndex

from .clock import FakeClock
from .helpers import make_settings, refresh_index, served, upstream_paths

JUNK_PATHS = [
    "/pypi/{}/json",
    "/pypi/{}/1.0/json",
    "/simple/{}/",
    "/rss/project/{}/releases.xml",
    "/today/pypi/{}/json",
]


@pytest.mark.heavy  # a volume of names: a second or more
def test_names_the_simple_index_does_not_list_are_404_without_asking_the_upstream() -> None:
    fake = FakeIndex()
    with served(fake) as client:
        refresh_index(client)
        answers = [client.get(shape.format(f"junk-{i}")) for i in range(100) for shape in JUNK_PATHS]
        listed = client.get("/pypi/roundup/json")
    assert {a.status_code for a in answers} == {404}
    assert answers[0].json() == {"message": "Not Found"} and answers[2].text == "404 Not Found"
    assert listed.status_code == 200
    assert upstream_paths(fake) == ["/pypi/roundup/json"]


def test_a_new_project_is_asked_for_once_the_simple_index_is_overdue() -> None:
    fake = FakeIndex()
    clock = FakeClock()
    app = create_app(make_settings(index_refresh=300), transport=httpx.ASGITransport(app=fake))
    app.state.services.index.clock = clock
    with TestClient(app) as client:
        refresh_index(client)
        fake.add_release("brand-new", "0.1", files=[])  # created upstream after the index was read
        unseen = client.get("/pypi/brand-new/json")
        clock.advance(600)  # two refresh intervals without a refresh: the copy is no guide any more
        asked = client.get("/pypi/brand-new/json")
    assert unseen.status_code == 404
    assert asked.status_code == 200
    assert upstream_paths(fake) == ["/pypi/brand-new/json"]


def test_while_the_simple_index_cannot_be_loaded_the_upstream_is_asked() -> None:
    fake = FakeIndex()
    fake.fail("/simple/", status=503)  # nothing says which names exist
    with served(fake, upstream_retries=0) as client:
        missing = client.get("/pypi/no-such-project/json")
        present = client.get("/pypi/roundup/json")
    assert (missing.status_code, present.status_code) == (404, 200)
    assert upstream_paths(fake) == ["/pypi/no-such-project/json", "/pypi/roundup/json"]


def behind_proxy(fake: FakeIndex, **settings: object) -> TestClient:
    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    app = create_app(make_settings(trusted_proxies=trusted, **settings), transport=httpx.ASGITransport(app=fake))
    return TestClient(app, client=("10.0.0.9", 50000))


def test_a_burst_of_pass_through_gets_past_the_limit_is_answered_429() -> None:
    fake = FakeIndex()
    limit = RateLimit(5, 3600)
    with behind_proxy(fake, passthrough_rate_limit=limit, rate_limit=RateLimit(100, 3600)) as client:
        one = {"X-Forwarded-For": "198.51.100.7"}
        burst = [client.get(path, headers=one) for path in ["/pypi/roundup/json", "/simple/", "/simple/junk/"] * 3]
        other = client.get("/pypi/roundup/json", headers={"X-Forwarded-For": "198.51.100.8"})
        body = xmlrpc.client.dumps(("roundup",), methodname="package_releases").encode()
        call = client.post("/pypi", content=body, headers={"Content-Type": "text/xml", **one})
    assert [r.status_code for r in burst[:4]] == [200, 200, 404, 200]  # hit, then test: at most N-1 pass
    refused = burst[4:]
    assert {r.status_code for r in refused} == {429}
    assert 3590 <= int(refused[0].headers["retry-after"]) <= 3600  # the window's oldest hit leaves it then
    assert refused[0].headers["ratelimit-policy"] == '"passthrough";q=5;w=3600;pk=:ip:'
    assert refused[0].text == "429 Too Many Requests: over SHIM_PASSTHROUGH_RATE_LIMIT (5 per hour).\n"
    assert other.status_code == 200  # another client has a window of its own
    assert xmlrpc.client.loads(call.content)[0][0] == ["1.6.1"]  # XML-RPC counts against its own limit
    assert upstream_paths(fake).count("/pypi/roundup/json") == 1


def test_pass_through_rate_limits_can_be_turned_off() -> None:
    fake = FakeIndex()
    with behind_proxy(fake, passthrough_rate_limit=None) as client:
        answers = [client.get("/simple/").status_code for _ in range(30)]
    assert answers == [200] * 30


@pytest.mark.parametrize(("text", "limit"), [("36000 per minute", RateLimit(36000, 60)), ("off", None)])
def test_the_pass_through_rate_is_a_setting(text: str, limit: RateLimit | None) -> None:
    environ = {"SHIM_UPSTREAM": "https://upstream.test/", "SHIM_PASSTHROUGH_RATE_LIMIT": text}
    assert Settings.load(environ).passthrough_rate_limit == limit
    assert Settings.load({"SHIM_UPSTREAM": "https://upstream.test/"}).passthrough_rate_limit == RateLimit(36000, 60)
    with pytest.raises(SettingsError, match=r"SHIM_PASSTHROUGH_RATE_LIMIT has value 'lots': not a rate such as"):
        Settings.load({**environ, "SHIM_PASSTHROUGH_RATE_LIMIT": "lots"})
