"""`/metrics`: what the service counts, read back as Prometheus reads it, after real XML-RPC round trips."""

from __future__ import annotations

import signal
import threading
import xmlrpc.client
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from shim import __version__
from shim.app import create_app
from shim.config.rates import RateLimit
from shim.metrics.definitions import METRICS
from shim.upstream.urls import Secret
from testkit.fakeindex import FakeIndex
from testkit.redisserver import RedisServer
from testkit.servers import serving

from .helpers import after_first_pass, in_app, make_settings, refresh_index, shared_settings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@contextmanager
def service(fake: FakeIndex | None = None, **settings: Any) -> Iterator[TestClient]:
    app = create_app(make_settings(**settings), transport=httpx.ASGITransport(app=fake or FakeIndex()))
    with TestClient(app) as client:
        yield client


def rpc(client: TestClient, method: str, *params: Any, agent: str = "Python-xmlrpc/3.11") -> Any:
    body = xmlrpc.client.dumps(params, methodname=method, allow_none=True)
    response = client.post("/pypi", content=body.encode(), headers={"Content-Type": "text/xml", "User-Agent": agent})
    try:
        (answer,), _ = xmlrpc.client.loads(response.content)
    except xmlrpc.client.Fault as fault:
        return fault
    return answer


def test_calls_faults_and_durations_are_counted_per_method() -> None:
    with service() as client:
        assert rpc(client, "package_releases", "roundup") == ["1.6.1"]
        assert rpc(client, "package_releases", "roundup") == ["1.6.1"]
        assert rpc(client, "package_releases", 42).faultCode == -32602
        assert rpc(client, "no_such_method_a1b2").faultCode == -32601
        client.post("/pypi", content=b"<methodCall>", headers={"Content-Type": "text/xml"})
        samples = scrape(client)
    assert value(samples, "shim_calls_total", method="package_releases") == 3
    assert value(samples, "shim_faults_total", method="package_releases", code="-32602") == 1
    assert value(samples, "shim_call_duration_seconds_count", method="package_releases") == 3
    assert value(samples, "shim_call_duration_seconds_bucket", method="package_releases", le="+Inf") == 3
    # An unknown name is one bounded label, never a series of its own; an unparsable body has no method at all.
    assert value(samples, "shim_faults_total", method="(unknown)", code="-32601") == 1
    assert value(samples, "shim_faults_total", method="(none)", code="-32700") == 1
    assert not any("no_such_method" in str(labels) for _, labels in samples)
    assert value(samples, "shim_calls_in_progress") == 0
    assert value(samples, "shim_info", version=__version__, mode="restore") == 1


def test_a_multicalls_calls_are_counted_each_under_its_own_method() -> None:
    with service() as client:
        calls = [
            {"methodName": "package_releases", "params": ["roundup"]},
            {"methodName": "list_packages", "params": []},
        ]
        answer = rpc(client, "system.multicall", calls)
        assert len(answer) == 2, answer
        samples = scrape(client)
    assert value(samples, "shim_calls_total", method="system.multicall") == 1
    assert value(samples, "shim_calls_total", method="package_releases") == 1
    assert value(samples, "shim_calls_total", method="list_packages") == 1


def test_clients_are_counted_by_family_never_by_their_header() -> None:
    with service() as client:
        rpc(client, "changelog_last_serial", agent="pip/24.0 {} CPython/3.11")
        rpc(client, "changelog_last_serial", agent="bandersnatch 6.6.0 (cpython 3.11)")
        rpc(client, "changelog_last_serial")
        rpc(client, "changelog_last_serial", agent="<script>alert(1)</script>")
        samples = scrape(client)
    for family in ("pip", "bandersnatch", "python-xmlrpc", "other"):
        assert value(samples, "shim_client_requests_total", client=family) == 1, family
    assert not any("script" in str(labels) for _, labels in samples)


def test_upstream_requests_bytes_and_cache_lookups_are_counted() -> None:
    with service() as client:
        rpc(client, "package_releases", "roundup")  # a miss: the project's JSON is fetched
        rpc(client, "package_releases", "roundup")  # a hit
        rpc(client, "package_releases", "no-such-project")  # a 404, kept as one
        samples = scrape(client)
    origin = "https://upstream.test"
    assert value(samples, "shim_upstream_requests_total", origin=origin, status="2xx") >= 2  # index and project
    assert value(samples, "shim_upstream_requests_total", origin=origin, status="4xx") == 1
    assert value(samples, "shim_upstream_bytes_total", origin=origin) > 0
    assert value(samples, "shim_upstream_circuit", origin=origin) == 0
    assert value(samples, "shim_cache_lookups_total", result="hit") >= 1
    assert value(samples, "shim_cache_lookups_total", result="miss") >= 2


def test_retries_and_an_open_circuit_are_counted() -> None:
    fake = FakeIndex()
    fake.fail("/pypi/*", status=500)
    with service(fake, upstream_retries=1, circuit_threshold=2) as client:
        assert rpc(client, "package_releases", "roundup").faultCode == -32403
        samples = scrape(client)
    origin = "https://upstream.test"
    assert value(samples, "shim_upstream_retries_total", origin=origin) >= 1
    assert value(samples, "shim_upstream_requests_total", origin=origin, status="5xx") >= 2
    assert value(samples, "shim_upstream_circuit", origin=origin) == 2  # open
    assert value(samples, "shim_faults_total", method="package_releases", code="-32403") == 1


def test_rate_limit_refusals_are_counted() -> None:
    with service(rate_limit=RateLimit(3, 3600)) as client:
        answers = [rpc(client, "changelog_last_serial") for _ in range(5)]
        samples = scrape(client)
    refused = [answer for answer in answers if isinstance(answer, xmlrpc.client.Fault)]
    assert len(refused) == 3  # PyPI's rule: the N-th call in the window is the first refused
    assert value(samples, "shim_rate_limited_total", limit="xmlrpc.client") == 3


def test_every_metric_the_table_states_is_exposed_with_its_meaning() -> None:
    with service() as client:
        rpc(client, "changelog_last_serial")
        text = client.get("/metrics").text
    for spec in METRICS:
        if not spec.labels or spec.name in ("shim_info",):
            assert f"# HELP {spec.exposed} {spec.meaning}" in text.replace("\\\\", "\\"), spec.name


def test_metrics_can_be_turned_off_or_require_a_token() -> None:
    with service(metrics=False) as client:
        assert client.get("/metrics").status_code == 404
    with service(metrics_token=Secret("s3cret-token")) as client:
        refused = client.get("/metrics")
        assert (refused.status_code, refused.headers["www-authenticate"]) == (401, "Bearer")
        assert "s3cret-token" not in refused.text
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert value(scrape(client, Authorization="Bearer s3cret-token"), "shim_calls_in_progress") == 0


def test_healthz_answers_while_the_catalog_hangs_and_says_so_once_it_has_answered() -> None:
    release = threading.Event()
    order: list[str] = []
    with service() as client:
        catalog = client.app.state.services.catalog  # type: ignore[attr-defined]
        real = catalog.coverage

        def hanging() -> Any:
            release.wait(10)
            order.append("catalog answered")
            return real()

        catalog.coverage = hanging
        client.app.state.vitals.latest = None  # type: ignore[attr-defined]
        health = client.get("/healthz")
        order.append("healthz answered")
        release.set()
    assert health.status_code == 200
    assert order[0] == "healthz answered"


@pytest.mark.parametrize("path", ["/metrics", "/healthz"])
def test_neither_metrics_nor_health_shows_a_credential(path: str) -> None:
    with service(metrics_token=Secret("s3cret-token")) as client:
        rpc(client, "changelog_last_serial")
        text = client.get(path, headers={"Authorization": "Bearer s3cret-token"}).text
    assert "s3cret-token" not in text


def test_the_catalogs_coverage_feed_lag_and_role_are_sampled_into_gauges() -> None:
    with service() as client:
        after_first_pass(client)
        in_app(client, client.app.state.vitals.sample)  # type: ignore[attr-defined]
        samples = scrape(client)
    assert value(samples, "shim_catalog_projects") == 13  # the fake index's projects, listed by the first pass
    assert value(samples, "shim_catalog_feed_lag_seconds") == 0  # caught up with the index's last serial
    assert value(samples, "shim_catalog_role", role="writer") == 1
    assert value(samples, "shim_catalog_role", role="standby") == 0


def test_the_feed_lag_counts_from_when_the_catalog_was_first_seen_behind() -> None:
    fake = FakeIndex()
    with service(fake) as client:
        after_first_pass(client)
        vitals = client.app.state.vitals  # type: ignore[attr-defined]
        fake.add_release("roundup", "9.0")
        refresh_index(client)  # this process sees the new serial; the catalog has not written it yet
        now = [vitals.services.index.snapshot.fetched_at + 42.0]
        vitals.clock = lambda: now[0]
        catalog = vitals.services.catalog
        catalog.last_serial = lambda: 0  # held back: as a writer that has fallen behind
        in_app(client, vitals.sample)
        first = value(scrape(client), "shim_catalog_feed_lag_seconds")
        assert first == pytest.approx(42.0, abs=1.0)  # behind since that index was fetched (a refresh may follow)
        now[0] += 10
        in_app(client, vitals.sample)
        assert value(scrape(client), "shim_catalog_feed_lag_seconds") == pytest.approx(first + 10)


def test_across_replicas_a_document_one_loaded_is_counted_as_shared_by_the_other_never_twice(redis_url: str) -> None:
    fake = FakeIndex()
    apps = [create_app(shared_settings(redis_url), transport=httpx.ASGITransport(app=fake)) for _ in range(2)]
    with TestClient(apps[0]) as one, TestClient(apps[1]) as other:
        assert rpc(one, "package_releases", "roundup") == ["1.6.1"]
        assert rpc(other, "package_releases", "roundup") == ["1.6.1"]
        first, second = scrape(one), scrape(other)
    assert value(first, "shim_cache_lookups_total", result="miss") >= 1
    assert value(second, "shim_cache_lookups_total", result="shared") == 1
    assert fake.count("/pypi/roundup/json") == 1  # asked once, by the first, which alone counts it a miss
    assert value(second, "shim_cache_lookups_total", result="miss") == 0


def test_healthz_and_metrics_answer_at_once_while_redis_hangs(own_redis: RedisServer) -> None:
    # A Redis that takes connections and never answers (stopped, not gone): every command waits out its bound.
    app = create_app(shared_settings(own_redis.url, cache_timeout=5.0), transport=httpx.ASGITransport(app=FakeIndex()))
    with serving(app, lifespan="on") as served, httpx.Client(base_url=served.url, timeout=2.0) as http:
        assert http.get("/healthz").status_code == 200
        assert own_redis.process is not None
        own_redis.process.send_signal(signal.SIGSTOP)
        try:
            for path in ("/healthz", "/metrics", "/healthz"):
                assert http.get(path).status_code == 200, path  # within 2 s, where a Redis command may take 5
        finally:
            own_redis.process.send_signal(signal.SIGCONT)
