"""Rate limiting as PyPI does it (spec §0.2, §2.2, §4 cases 8-10), trusted proxies, and the caps on calls in
progress and on a call's duration."""

from __future__ import annotations

import asyncio
import xmlrpc.client
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from shim.app import create_app
from shim.config.parsers import Network, networks
from shim.config.rates import RateLimit
from shim.config.settings import Settings
from shim.xmlrpc.ratelimit import RateLimiter
from testkit.fakeindex import FakeIndex
from testkit.servers import serve_in_thread

from .clock import FakeClock
from .helpers import make_settings
from .rate_calls import CALL, REFUSAL, post
from .transports import Gate


def limited(amount: int, clock: FakeClock | None = None, **settings: Any) -> TestClient:
    """A service limited to `amount` calls an hour; its limiter's window runs on `clock` when given."""
    fake = FakeIndex()
    config = make_settings(rate_limit=RateLimit(amount, 3600), **settings)
    app = create_app(config, transport=httpx.ASGITransport(app=fake))
    if clock is not None:
        app.state.dispatcher.limiter = RateLimiter(RateLimit(amount, 3600), clock=clock)
    return TestClient(app)


def test_the_nth_call_in_the_window_is_refused_with_pypis_fault_and_headers() -> None:
    clock = FakeClock()
    with limited(5, clock) as client:
        answers = [post(client) for _ in range(5)]
        clock.advance(3600)  # the window has moved past every hit
        again, _ = post(client)
    assert [value for value, _ in answers[:4]] == ["pypi-only"] * 4  # hit, then test: at most N-1 succeed
    for n, (_, response) in enumerate(answers[:4], 1):
        assert response.headers["ratelimit"] == f'"xmlrpc.client";r={5 - n};t=3600'
    (code, string), refused = answers[4]
    assert (code, string) == (
        -32500,
        "HTTPTooManyRequests: The action could not be performed because there were too many requests by the "
        "client. Limit may reset in 3600 seconds.",
    )
    assert REFUSAL.fullmatch(string)
    assert refused.status_code == 200
    assert refused.headers["ratelimit-policy"] == '"xmlrpc.client";q=5;w=3600;pk=:ip:'
    assert refused.headers["ratelimit"] == '"xmlrpc.client";r=0;t=3600'
    assert refused.headers["retry-after"] == "3600"
    assert again == "pypi-only"


@pytest.mark.anyio
async def test_the_reset_hint_is_whole_seconds_and_at_least_one() -> None:
    now = [0.0]
    limiter = RateLimiter(RateLimit(2, 666), clock=lambda: now[0])
    await limiter.hit("a")
    now[0] = 0.1
    verdict = await limiter.hit("a")
    assert not verdict.allowed and limiter.refusal(verdict).endswith("Limit may reset in 665 seconds.")
    now[0] = 665.95
    assert limiter.refusal(await limiter.hit("a")).endswith("Limit may reset in 1 seconds.")  # sic, as PyPI
    now[0] = 2000
    assert (await limiter.hit("a")).allowed  # the window moved on
    assert (await limiter.hit("b")).allowed  # another client has a window of its own


@pytest.mark.anyio
async def test_calls_refused_past_the_nth_are_not_kept_in_the_window() -> None:
    # As Warehouse's `limits` counts: the N-th hit is kept (and refused), hits past it are refused and not kept, so
    # the window frees as its first N hits leave it, however hard the client pressed meanwhile.
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(5, 60), clock=clock)
    first = [(await limiter.hit("a")).allowed for _ in range(5)]
    clock.advance(30)
    pressed = [(await limiter.hit("a")).allowed for _ in range(100)]
    clock.advance(30)  # the first five leave the window; the hundred refused meanwhile were never in it
    again = await limiter.hit("a")
    assert first == [True] * 4 + [False] and pressed == [False] * 100
    assert (again.allowed, again.remaining) == (True, 4)


@pytest.mark.anyio
async def test_the_in_process_windows_stay_bounded_under_a_flood_of_distinct_clients() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(5, 60), clock=clock, max_clients=100)
    for i in range(1000):
        await limiter.hit(f"203.0.{i // 256}.{i % 256}")
    assert len(limiter.memory) == 100  # the clients seen least recently are forgotten first
    clock.advance(60)
    await limiter.hit("198.51.100.7")
    assert len(limiter.memory) == 1  # a client not seen for a whole window is forgotten
    for _ in range(50):
        await limiter.hit("198.51.100.7")
    assert limiter.memory.entries() == 5  # a window holds at most its limit's entries, however hard it is hammered


def test_faulting_calls_count_unknown_methods_do_not() -> None:
    unknown = xmlrpc.client.dumps((), methodname="multipassssss").encode()
    bad = xmlrpc.client.dumps((), methodname="package_releases").encode()
    with limited(3) as client:
        for _ in range(5):
            assert post(client, unknown)[0] == (-32601, "server error; requested method not found")
        assert post(client, bad)[0][0] == -32602  # counted: 1
        assert post(client)[0] == "pypi-only"  # 2
        assert REFUSAL.fullmatch(post(client)[0][1])  # 3: refused


def test_multicall_sub_calls_count_as_calls() -> None:
    calls = [{"methodName": "package_hosting_mode", "params": ["x"]}] * 3
    body = xmlrpc.client.dumps((calls,), methodname="system.multicall").encode()
    with limited(5) as client:
        slots, _ = post(client, body)  # the multicall and its first three sub-calls: 4 hits
        assert slots == [["pypi-only"]] * 3
        (code, string), _ = post(client)
    assert code == -32500 and REFUSAL.fullmatch(string)


def test_rate_limits_can_be_turned_off() -> None:
    with TestClient(create_app(make_settings(rate_limit=None), transport=httpx.ASGITransport(app=FakeIndex()))) as c:
        answers = [post(c) for _ in range(50)]
    assert all(value == "pypi-only" for value, _ in answers)
    assert "ratelimit" not in answers[0][1].headers


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("3600 per hour", RateLimit(3600, 3600)),
        ("20 per 2 minutes", RateLimit(20, 120)),
        ("100/second", RateLimit(100, 1)),
    ],
)
def test_rates_are_written_as_the_limits_library_writes_them(text: str, limit: RateLimit) -> None:
    assert Settings.load({"SHIM_UPSTREAM": "https://upstream.test/", "SHIM_RATE_LIMIT": text}).rate_limit == limit


def test_a_bad_rate_names_the_setting() -> None:
    from shim.config.settings import SettingsError

    with pytest.raises(SettingsError, match=r"SHIM_RATE_LIMIT has value 'lots': not a rate such as"):
        Settings.load({"SHIM_UPSTREAM": "https://upstream.test/", "SHIM_RATE_LIMIT": "lots"})


def test_x_forwarded_for_counts_only_from_a_trusted_proxy() -> None:
    fake = FakeIndex()
    for trusted, separate in (((), False), (("127.0.0.1/32",), True)):
        settings = make_settings(rate_limit=RateLimit(3, 3600), trusted_proxies=_networks(trusted))
        app = create_app(settings, transport=httpx.ASGITransport(app=fake))
        with serve_in_thread(app, lifespan="on") as url, httpx.Client(base_url=url) as client:
            for address in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
                post(client, **{"X-Forwarded-For": f"{address}, 10.0.0.9"})
            value, _ = post(client, **{"X-Forwarded-For": "203.0.113.4"})
        # Trusted: each forwarded client has a window of its own. Untrusted: all share the proxy's.
        assert (value == "pypi-only") is separate


def _networks(texts: tuple[str, ...]) -> tuple[Network, ...]:
    """SHIM_TRUSTED_PROXIES's value, parsed as the setting parses it."""
    return networks(",".join(texts))


# Behind a trusted proxy (the peer 10.0.0.9), each of these sends 40 calls that all come from one client: a limit
# of 20 lets 19 through, whatever the client writes into the header or however the proxy writes it.
ONE_CLIENT_FORTY_WAYS: dict[str, Callable[[int], list[str]]] = {
    # The client's own header line, then the proxy's own line naming the client: both lines are read.
    "a second header line": lambda i: [f"203.0.113.{i}", "198.51.100.7"],
    "a second header line after a list": lambda i: [f"203.0.113.{i}, 203.0.113.{i + 1}", "198.51.100.7"],
    "ip:port entries": lambda i: [f"198.51.100.7:{1000 + i}"],
    "[ipv6]:port entries": lambda i: [f"[2001:db8::7]:{1000 + i}"],
    "bracketed ipv6 entries": lambda i: ["[2001:db8::7]"] if i % 2 else ["2001:db8::7"],
    "addresses of one ipv6 /64": lambda i: [f"2001:db8:0:1:{i:x}::{i + 1:x}"],
    "an ipv4-mapped ipv6 entry": lambda i: ["::ffff:198.51.100.7"] if i % 2 else ["198.51.100.7"],
    # Garbage is never a client: the hop that passed it on is (here the proxy itself).
    "garbage entries": lambda i: [f"client-{i}"],
    "garbage right of the spoofed entries": lambda i: [f"203.0.113.{i}, unknown"],
    "garbage ports": lambda i: [f"198.51.100.{i}:http"],
    "an over-long garbage entry": lambda i: ["x" * 4000 + str(i)],
}


def behind_proxy(amount: int, **settings: Any) -> TestClient:
    """A service limited to `amount` calls an hour, reached through the trusted proxy 10.0.0.9."""
    config = make_settings(rate_limit=RateLimit(amount, 3600), trusted_proxies=_networks(("10.0.0.0/8",)), **settings)
    app = create_app(config, transport=httpx.ASGITransport(app=FakeIndex()))
    return TestClient(app, client=("10.0.0.9", 50000))


def post_forwarded(client: TestClient, lines: list[str]) -> Any:
    headers = [("Content-Type", "text/xml"), *(("X-Forwarded-For", line) for line in lines)]
    response = client.post("/pypi", content=CALL, headers=headers)
    try:
        return xmlrpc.client.loads(response.content)[0][0]
    except xmlrpc.client.Fault as fault:
        return fault.faultCode


@pytest.mark.parametrize("forwarded", ONE_CLIENT_FORTY_WAYS.values(), ids=ONE_CLIENT_FORTY_WAYS.keys())
def test_one_client_behind_a_trusted_proxy_is_one_client(forwarded: Callable[[int], list[str]]) -> None:
    with behind_proxy(20) as client:
        answers = [post_forwarded(client, forwarded(i)) for i in range(40)]
    assert answers.count("pypi-only") == 19
    assert answers[19:] == [-32500] * 21


def test_clients_of_other_ipv6_prefixes_have_windows_of_their_own() -> None:
    with behind_proxy(3) as client:
        first = [post_forwarded(client, [f"2001:db8:0:{i:x}::1"]) for i in range(6)]
    assert first == ["pypi-only"] * 6


def test_the_ipv6_prefix_is_a_setting() -> None:
    with behind_proxy(3, ipv6_prefix=128) as client:
        answers = [post_forwarded(client, [f"2001:db8::{i:x}"]) for i in range(6)]
    assert answers == ["pypi-only"] * 6  # /128: every address is a client of its own


def test_the_right_most_untrusted_entry_is_the_client() -> None:
    # The client spoofs entries on the left; the proxies (10.x, trusted) append what they saw on the right.
    with behind_proxy(3) as client:
        answers = [post_forwarded(client, [f"203.0.113.{i}, 198.51.100.7:443, 10.0.0.5"]) for i in range(3)]
        other = post_forwarded(client, ["203.0.113.1, 198.51.100.8, 10.0.0.5"])
    assert answers == ["pypi-only", "pypi-only", -32500]
    assert other == "pypi-only"


@pytest.mark.parametrize("text", ["31", "129", "sixty-four"])
def test_a_bad_ipv6_prefix_names_the_setting(text: str) -> None:
    from shim.config.settings import SettingsError

    with pytest.raises(SettingsError, match=rf"SHIM_IPV6_PREFIX has value '{text}': "):
        Settings.load({"SHIM_UPSTREAM": "https://upstream.test/", "SHIM_IPV6_PREFIX": text})


@pytest.mark.anyio
async def test_calls_past_the_cap_on_calls_in_progress_are_refused_at_once() -> None:
    gate = Gate(FakeIndex(), holding=True, path="/pypi/roundup/json")
    app = create_app(make_settings(max_concurrent_calls=1), transport=gate)
    slow = xmlrpc.client.dumps(("roundup",), methodname="package_releases").encode()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shim.test") as client:
        headers = {"Content-Type": "text/xml"}
        first = asyncio.create_task(client.post("/pypi", content=slow, headers=headers))
        await gate.arrived.wait()  # the first call is in progress, held upstream
        second = await client.post("/pypi", content=CALL, headers=headers)
        gate.opened.set()
        assert xmlrpc.client.loads((await first).content)[0][0] == ["1.6.1"]
    with pytest.raises(xmlrpc.client.Fault) as caught:
        xmlrpc.client.loads(second.content)
    assert (caught.value.faultCode, caught.value.faultString) == (-32403, "server error; service unavailable")
    assert second.headers["retry-after"] == "1"


def test_a_call_past_its_time_answers_unavailable() -> None:
    fake = FakeIndex()
    fake.slow("/pypi/roundup/json", 3)
    settings = make_settings(call_timeout=0.3, upstream_retries=0)
    with TestClient(create_app(settings, transport=httpx.ASGITransport(app=fake))) as client:
        body = xmlrpc.client.dumps(("roundup",), methodname="package_releases").encode()
        value, _ = post(client, body)
    assert value == (-32403, "server error; service unavailable")
