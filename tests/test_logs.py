"""The logs: each request's id (echoed in X-Request-ID), its access line, and every line as text or as one JSON
object, read from the service's real handlers (caplog sees records, not the lines the formatter writes)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import logging.config
import pickle
import re
import xmlrpc.client
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient
from uvicorn.config import LOGGING_CONFIG

from shim import exchange
from shim.config.setting import LogClient, LogFormat, LogLevel
from shim.config.settings import Settings
from shim.logs import ACCESS_LOGGER, UVICORN_LOGGERS, JsonLines, uvicorn_log_config
from shim.upstream.urls import UpstreamURL
from shim.web.exchanges import HASH_CHARS
from shim.web.server import AppFactory, guarded_config, start_warning
from shim.wiring import configure_logging
from testkit.fakeindex import FakeIndex

from .helpers import call, fault_of, make_settings, on_fake_clock, rpc_for, served, upstream_paths
from .tokens import TOKEN, UPSTREAM_WITH_TOKEN, assert_no_token

FRESH_ID = re.compile(r"[0-9a-f]{16}")
JSON_FIELDS = ["time", "level", "event", "logger"]
REQUEST_FIELDS = ["request_id", "method", "client"]
ACCESS_FIELDS = ["duration", "outcome", "upstream_requests", "status", "path", "http_method"]


LOGGERS = ("shim", ACCESS_LOGGER, *UVICORN_LOGGERS)


def pytests(handler: logging.Handler) -> bool:
    """pytest's own capturing handlers, which it puts on every logger that does not propagate."""
    return type(handler).__module__.startswith("_pytest")


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """Each test configures the logs its own way; the next test in this process finds them as they were."""
    saved = {}
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = ([h for h in logger.handlers if not pytests(h)], logger.propagate, logger.level, logger.disabled)
    yield
    for name, (handlers, propagate, level, disabled) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = [*(h for h in logger.handlers if pytests(h)), *handlers]
        logger.propagate, logger.disabled = propagate, disabled
        logger.setLevel(level)  # which clears what every logger below it cached of its level


@contextlib.contextmanager
def written(settings: Settings) -> Iterator[io.StringIO]:
    """The logs configured for `settings` (as each process of the service does), every line its handlers write
    gathered here: the service's loggers, the access line's and uvicorn's."""
    configure_logging(settings)
    stream = io.StringIO()
    handlers = {h for name in LOGGERS for h in logging.getLogger(name).handlers}
    # pytest's own capturing handlers are on every logger that does not propagate: not the service's.
    ours = [
        h for h in handlers if isinstance(h, logging.StreamHandler) and not type(h).__module__.startswith("_pytest")
    ]
    streams = {h: h.stream for h in ours}
    for handler in streams:
        handler.setStream(stream)
    try:
        yield stream
    finally:
        for handler, previous in streams.items():
            handler.setStream(previous)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = stream.getvalue().splitlines()
    assert lines, "nothing was logged"
    return [json.loads(line) for line in lines]


def access_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in json_lines(stream) if line["logger"] == ACCESS_LOGGER]


def text_access_lines(stream: io.StringIO) -> list[str]:
    """The text access lines (the others are what the app's background work logged meanwhile)."""
    return [line for line in stream.getvalue().splitlines() if ' - "' in line]


def post(client: TestClient, method: str, *params: Any, headers: dict[str, str | bytes] | None = None) -> Any:
    body = xmlrpc.client.dumps(params, methodname=method, allow_none=True).encode()
    return client.post("/pypi", content=body, headers={"Content-Type": "text/xml", **(headers or {})})


# --- the request id ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["req-42", "3f2a9c1e-1d2b-4c3a-9e8f-0a1b2c3d4e5f", "a.b:c_d"])
def test_a_clients_short_safe_request_id_is_echoed_on_the_xmlrpc_fast_path_and_every_other_path(given: str) -> None:
    with served(FakeIndex()) as client:
        assert post(client, "system.listMethods", headers={"X-Request-ID": given}).headers["x-request-id"] == given
        assert client.get("/healthz", headers={"X-Request-ID": given}).headers["x-request-id"] == given
        assert client.get("/pypi/", headers={"X-Request-ID": given}).headers["x-request-id"] == given


@pytest.mark.parametrize("given", [None, "", "x" * 65, "two words", "semi;colon", 'quote"d', "é".encode()])
def test_a_missing_long_or_unsafe_request_id_is_replaced_by_a_fresh_one(given: str | bytes | None) -> None:
    headers = {} if given is None else {"X-Request-ID": given}
    with served(FakeIndex()) as client:
        answered = [
            post(client, "system.listMethods", headers=headers).headers.get_list("x-request-id"),
            client.get("/healthz", headers=headers).headers.get_list("x-request-id"),
        ]
    assert all(len(ids) == 1 and FRESH_ID.fullmatch(ids[0]) for ids in answered), answered
    assert answered[0] != answered[1]


def test_outside_a_request_nothing_is_noted_and_nothing_fails() -> None:
    assert exchange.current() is None
    exchange.note_method("release_data", nested=False)
    exchange.note_outcome(None)
    exchange.upstream_request()
    assert exchange.current() is None


# --- JSON lines -------------------------------------------------------------------------------------------------


def test_a_json_access_line_carries_the_request_its_call_and_the_upstream_requests_made_for_it() -> None:
    fake = FakeIndex()
    with served(fake, access_log=True) as client, written(make_settings(log_format=LogFormat.JSON)) as stream:
        before = len(upstream_paths(fake))
        first = post(client, "package_releases", "roundup", headers={"X-Request-ID": "first-call"})
        asked = len(upstream_paths(fake)) - before
        second = post(client, "package_releases", "roundup")
    assert first.status_code == second.status_code == 200
    assert asked >= 1
    one, two = access_lines(stream)
    assert list(one) == [*JSON_FIELDS, *REQUEST_FIELDS, *ACCESS_FIELDS]
    assert one["level"] == "INFO"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", one["time"])
    assert one["event"] == '"POST /pypi HTTP/1.1" 200'
    assert one["request_id"] == "first-call"
    assert (one["method"], one["outcome"], one["status"], one["path"]) == ("package_releases", "value", 200, "/pypi")
    assert one["client"] == "testclient"
    assert one["upstream_requests"] == asked
    assert isinstance(one["duration"], float) and 0 < one["duration"] < 10
    assert two["request_id"] == second.headers["x-request-id"]
    assert two["upstream_requests"] == 0  # answered from the cache


def test_each_retry_of_an_upstream_request_is_counted_for_the_call() -> None:
    fake = FakeIndex()
    fake.fail("/pypi/roundup/json", status=503, times=2)
    with served(fake, access_log=True) as client, written(make_settings(log_format=LogFormat.JSON)) as stream:
        on_fake_clock(client.app)
        before = fake.count("/pypi/roundup/json")
        assert call(client, "package_releases", "roundup")
        assert fake.count("/pypi/roundup/json") - before == 3
    (line,) = access_lines(stream)
    assert line["upstream_requests"] == 3


@pytest.mark.parametrize(
    ("method", "params", "noted", "outcome"),
    [
        ("no_such_method", (), None, "-32601"),  # an unknown name is never logged: it is the client's text
        ("package_releases", (1,), "package_releases", "-32602"),
        ("changelog", (0, 1, 2, 3), "changelog", "-32602"),
    ],
)
def test_a_faults_code_is_the_outcome(method: str, params: tuple[Any, ...], noted: str | None, outcome: str) -> None:
    with served(FakeIndex(), access_log=True) as client, written(make_settings(log_format=LogFormat.JSON)) as stream:
        code, _ = fault_of(rpc_for(client), method, *params)
    assert str(code) == outcome
    (line,) = access_lines(stream)
    assert (line["method"], line["outcome"]) == (noted, outcome)


def test_an_unparsable_body_is_a_not_well_formed_outcome_with_no_method() -> None:
    with served(FakeIndex(), access_log=True) as client, written(make_settings(log_format=LogFormat.JSON)) as stream:
        client.post("/pypi", content=b"<methodCall><methodName>x", headers={"Content-Type": "text/xml"})
    (line,) = access_lines(stream)
    assert (line["method"], line["outcome"], line["status"]) == (None, "-32700", 200)


def test_a_multicall_names_the_methods_it_called_each_once() -> None:
    calls = [
        {"methodName": "package_releases", "params": ["roundup"]},
        {"methodName": "package_releases", "params": ["roundup"]},
        {"methodName": "no_such_method", "params": []},
        {"methodName": "changelog_last_serial", "params": []},
    ]
    with served(FakeIndex(), access_log=True) as client, written(make_settings(log_format=LogFormat.JSON)) as stream:
        call(client, "system.multicall", calls)
    (line,) = access_lines(stream)
    assert (line["method"], line["outcome"]) == ("system.multicall", "value")
    assert line["multicall"] == ["package_releases", "changelog_last_serial"]


def test_a_request_that_is_no_xmlrpc_call_has_no_method_and_no_outcome() -> None:
    with served(FakeIndex(), access_log=True) as client, written(make_settings(log_format=LogFormat.JSON)) as stream:
        response = client.get("/healthz?verbose=1")
    (line,) = access_lines(stream)
    assert (line["method"], line["outcome"], line["status"]) == (None, None, response.status_code)
    assert (line["path"], line["http_method"]) == ("/healthz", "GET")  # the query string is left out


def test_a_line_logged_during_a_call_carries_its_request_id_method_and_client() -> None:
    fake = FakeIndex()
    fake.fail("/pypi/roundup/json", status=503)
    with served(fake) as client, written(make_settings(log_format=LogFormat.JSON)) as stream:
        on_fake_clock(client.app)
        answer = post(client, "package_releases", "roundup", headers={"X-Request-ID": "failing-one"})
        assert b"<name>faultCode</name>" in answer.content
    (warning,) = [line for line in json_lines(stream) if line["level"] == "WARNING"]
    assert warning["logger"] == "shim.xmlrpc.dispatch"
    assert warning["event"].startswith("package_releases: upstream failed")
    assert list(warning) == [*JSON_FIELDS, *REQUEST_FIELDS]
    assert (warning["request_id"], warning["method"], warning["client"]) == (
        "failing-one",
        "package_releases",
        "testclient",
    )


def test_an_exception_is_one_json_line_with_its_traceback_as_a_field() -> None:
    with written(make_settings(log_format=LogFormat.JSON)) as stream:
        try:
            raise ValueError("broken on purpose")
        except ValueError:
            logging.getLogger("shim.test").exception("it failed")
    (line,) = stream.getvalue().splitlines()
    parsed = json.loads(line)
    assert list(parsed) == [*JSON_FIELDS, "exception"]
    assert parsed["event"] == "it failed"
    assert parsed["exception"].startswith("Traceback (most recent call last):")
    assert parsed["exception"].endswith("ValueError: broken on purpose")


def test_a_line_outside_any_request_has_no_request_fields() -> None:
    with written(make_settings(log_format=LogFormat.JSON)) as stream:
        logging.getLogger("shim.test").info("serving %s", "now")
    (line,) = json_lines(stream)
    assert line == {**line, "level": "INFO", "event": "serving now", "logger": "shim.test"}
    assert list(line) == JSON_FIELDS


@pytest.mark.parametrize("uvicorns", [LOGGING_CONFIG, uvicorn_log_config("info")], ids=["bare uvicorn", "the command"])
def test_uvicorns_own_lines_are_json_too(uvicorns: dict[str, Any]) -> None:
    logging.config.dictConfig(uvicorns)  # as uvicorn configures itself, in every process, before the app loads
    with written(make_settings(log_format=LogFormat.JSON)) as stream:
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 42, extra={"color_message": "\x1b[1m"})
    (line,) = json_lines(stream)
    assert line == {
        "time": line["time"],
        "level": "INFO",
        "event": "Started server process [42]",
        "logger": "uvicorn.error",
    }


def test_json_has_uvicorn_configure_its_loggers_through_the_same_formatter_in_every_process() -> None:
    json_config = guarded_config(
        AppFactory(make_settings(log_format=LogFormat.JSON)), make_settings(log_format=LogFormat.JSON), factory=True
    )
    assert json_config.log_config == uvicorn_log_config("info")
    assert uvicorn_log_config("info")["formatters"]["json"]["()"] is JsonLines
    text_config = guarded_config(AppFactory(make_settings()), make_settings(), factory=True)
    assert text_config.log_config != json_config.log_config  # uvicorn's own text configuration


# --- the access line --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("access_log", [False, True])
def test_uvicorn_never_writes_an_access_line_of_its_own(access_log: bool) -> None:
    settings = make_settings(access_log=access_log)
    assert guarded_config(AppFactory(settings), settings, factory=True).access_log is False


def test_without_the_access_log_no_line_is_written_per_request() -> None:
    with served(FakeIndex()) as client, written(make_settings(log_format=LogFormat.JSON)) as stream:
        call(client, "system.listMethods")
        client.get("/healthz")
    parsed = [json.loads(text) for text in stream.getvalue().splitlines()]  # the background work's, if any
    assert not [line for line in parsed if line["logger"] == ACCESS_LOGGER or "request_id" in line]


def test_the_access_line_is_written_whatever_the_log_level() -> None:
    with served(FakeIndex(), access_log=True) as client, written(make_settings(log_level=LogLevel.ERROR)) as stream:
        call(client, "system.listMethods")
    assert len(text_access_lines(stream)) == 1


def test_a_text_access_line_is_uvicorns_with_the_requests_fields() -> None:
    with served(FakeIndex(), access_log=True) as client, written(make_settings()) as stream:
        post(client, "system.listMethods", headers={"X-Request-ID": "t-1"})
    (line,) = text_access_lines(stream)
    assert re.fullmatch(
        r'INFO:     testclient - "POST /pypi HTTP/1\.1" 200 request_id=t-1 method=system\.listMethods '
        r"outcome=value upstream_requests=0 duration=\d+\.\d{6}",
        line,
    ), line


def test_text_lines_look_as_they_did() -> None:
    with written(make_settings()) as stream:
        logging.getLogger("shim.xmlrpc.dispatch").warning("release_data: upstream failed: %s", "HTTP 503")
    assert stream.getvalue() == "WARNING:     shim.xmlrpc.dispatch: release_data: upstream failed: HTTP 503\n"


# --- the client's name ------------------------------------------------------------------------------------------


def addresses_logged(log_client: LogClient, peers: list[str], key: bytes = b"k" * 32) -> list[str]:
    settings = make_settings(access_log=True, log_client=log_client)
    app = AppFactory(settings)
    app.client_key = key
    names = []
    for peer in peers:
        with TestClient(app(), client=(peer, 40000)) as client, written(settings) as stream:
            call(client, "system.listMethods")
        (line,) = text_access_lines(stream)
        names.append(line.split()[1])
    return names


def test_the_client_is_its_address_by_default() -> None:
    assert addresses_logged(LogClient.ADDRESS, ["203.0.113.7", "2001:db8::1"]) == ["203.0.113.7", "2001:db8::/64"]


def test_a_hashed_client_tells_clients_apart_without_their_address() -> None:
    peers = ["203.0.113.7", "203.0.113.7", "203.0.113.8"]
    first, again, other = addresses_logged(LogClient.HASH, peers)
    assert all(re.fullmatch(f"[0-9a-f]{{{HASH_CHARS}}}", name) for name in (first, other))
    assert first == again != other
    assert addresses_logged(LogClient.HASH, peers[:1], key=b"another key") != [first]  # keyed: not a plain hash


def test_every_worker_of_one_start_hashes_a_client_alike() -> None:
    factory = AppFactory(make_settings(log_client=LogClient.HASH))
    assert pickle.loads(pickle.dumps(factory)).client_key == factory.client_key
    assert AppFactory(make_settings()).client_key != factory.client_key


# --- what is never logged ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("log_format", list(LogFormat))
def test_no_credential_or_request_body_is_ever_logged(log_format: LogFormat) -> None:
    fake = FakeIndex()
    fake.fail("/pypi/*", status=503)
    upstream = UpstreamURL.parse(UPSTREAM_WITH_TOKEN)
    secret_body = f"body-secret-{TOKEN}"
    logged = make_settings(log_format=log_format, log_level=LogLevel.DEBUG, access_log=True)
    with served(fake, upstream=upstream, access_log=True) as client, written(logged) as stream:
        on_fake_clock(client.app)
        for method, params in [
            ("package_releases", ("roundup", secret_body)),  # a call that fails upstream, the secret an argument
            ("release_data", ("roundup", "1.0")),
            (secret_body, ()),  # the secret as the method's name
            ("search", ({"name": secret_body},)),
        ]:
            post(client, method, *params)
        client.post("/pypi", content=f"<methodCall>{secret_body}".encode(), headers={"Content-Type": "text/xml"})
    output = stream.getvalue()
    assert "upstream failed" in output and "unparsable XML-RPC body" in output  # what was logged, was logged
    assert output.count("POST /pypi") == 5
    assert_no_token(output, f"the {log_format.value} logs")


def test_a_warning_at_start_is_a_json_line_in_json_and_the_plain_line_it_was_in_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with written(make_settings(log_format=LogFormat.JSON)) as stream:
        start_warning(make_settings(log_format=LogFormat.JSON))("serving at most 10 connections at once")
    (line,) = json_lines(stream)
    assert (line["level"], line["event"], line["logger"]) == (
        "WARNING",
        "serving at most 10 connections at once",
        "shim.web.server",
    )
    start_warning(make_settings())("serving at most 10 connections at once")
    assert capsys.readouterr().err == "pypi-xmlrpc-shim: warning: serving at most 10 connections at once\n"
