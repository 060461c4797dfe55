"""Credentials in the upstream URL are used, never shown: every output is searched for a known token.

The token is put into SHIM_UPSTREAM (and PIP_INDEX_URL), then everything the service can show is
collected: `--help`, start-up errors, reprs, the status page, /healthz, fault strings, the log of a whole
session, and the output of a real server process. None may hold the token, plain or URL-encoded.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import xmlrpc.client
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from shim import cli
from shim.app import create_app
from shim.config.settings import Settings, SettingsError
from shim.methods.table import METHODS
from shim.modes import Mode
from shim.upstream.urls import REDACTED, UpstreamURL, redact_url
from shim.web.endpoint import MODE_PREFIXES
from shim.web.live import read_live
from shim.web.status import status_page

from .helpers import on_fake_clock
from .tokens import (
    ENCODED_SECRET,
    MALFORMED_CREDENTIALS,
    REDACTED_FORM,
    TOKEN,
    UPSTREAM_WITH_ENCODED_TOKEN,
    UPSTREAM_WITH_TOKEN,
    assert_no_token,
    assert_none_has_token,
)


@pytest.fixture(params=[UPSTREAM_WITH_TOKEN, UPSTREAM_WITH_ENCODED_TOKEN], ids=["plain", "percent-encoded"])
def secret_settings(request: pytest.FixtureRequest) -> Settings:
    # The test run's state directory (conftest), so that the apps built here write no index at home.
    return Settings.load({"SHIM_UPSTREAM": request.param, "XDG_STATE_HOME": os.environ["XDG_STATE_HOME"]})


# The token is there to be used


def test_the_token_is_kept_for_use() -> None:
    settings = Settings.load({"SHIM_UPSTREAM": UPSTREAM_WITH_TOKEN})
    assert settings.upstream.base == "https://upstream.test/"
    assert settings.upstream.credentials is not None
    assert settings.upstream.credentials.username == "deploy"
    assert settings.upstream.credentials.password.reveal() == TOKEN


def test_a_percent_encoded_token_is_decoded_for_use() -> None:
    settings = Settings.load({"SHIM_UPSTREAM": UPSTREAM_WITH_ENCODED_TOKEN})
    assert settings.upstream.credentials is not None
    assert settings.upstream.credentials.password.reveal() == ENCODED_SECRET


def test_the_token_from_pip_index_url_is_kept_for_use() -> None:
    settings = Settings.load({"PIP_INDEX_URL": UPSTREAM_WITH_TOKEN})
    assert settings.upstream.credentials is not None
    assert settings.upstream.credentials.password.reveal() == TOKEN


# Reprs


def test_reprs_and_strs_hide_the_token(secret_settings: Settings) -> None:
    upstream = secret_settings.upstream
    assert upstream.credentials is not None
    outputs = [
        ("repr(Settings)", repr(secret_settings)),
        ("str(Settings)", str(secret_settings)),
        ("Settings.public()", repr(secret_settings.public())),
        ("asdict(Settings)", repr(dataclasses.asdict(secret_settings))),
        ("repr(UpstreamURL)", repr(upstream)),
        ("str(UpstreamURL)", str(upstream)),
        ("UpstreamURL.base", upstream.base),
        ("repr(Credentials)", repr(upstream.credentials)),
        ("str(Credentials)", str(upstream.credentials)),
        ("repr(Secret)", repr(upstream.credentials.password)),
        ("str(Secret)", str(upstream.credentials.password)),
        ("format(Secret)", f"{upstream.credentials.password}"),
    ]
    assert_none_has_token(outputs)
    assert str(upstream) == "https://deploy:***@upstream.test/"
    assert secret_settings.public()["upstream"] == "https://deploy:***@upstream.test/"


def test_an_upstream_url_parsed_directly_hides_the_token() -> None:
    for given in (UPSTREAM_WITH_TOKEN, UPSTREAM_WITH_ENCODED_TOKEN, f"http://deploy:{TOKEN}@[::1]:8443/"):
        url = UpstreamURL.parse(given)
        assert_none_has_token([("repr", repr(url)), ("str", str(url)), ("base", url.base), ("host", url.host)])
        assert f"deploy:{REDACTED}@" in str(url)


def test_a_token_given_as_the_user_name_alone_is_never_shown() -> None:
    # Some indexes take the token as the user name, with no password (`https://<token>@host/`).
    settings = Settings.load({"SHIM_UPSTREAM": f"https://{TOKEN}@upstream.test/simple/"})
    assert settings.upstream.credentials is not None
    assert settings.upstream.credentials.username == TOKEN  # used as given
    assert str(settings.upstream) == f"https://{REDACTED}@upstream.test/"
    with pytest.raises(SettingsError) as caught:
        Settings.load({"SHIM_UPSTREAM": f"ftp://{TOKEN}@upstream.test/"})
    outputs = [("str", str(settings.upstream)), ("repr", repr(settings)), ("the error", str(caught.value))]
    outputs.append(("repr(Credentials)", repr(settings.upstream.credentials)))
    assert_none_has_token([*outputs, ("redact_url", redact_url(f"https://{TOKEN}@upstream.test/"))])


def test_redact_url_hides_the_token_and_keeps_the_user() -> None:
    text = f"from {UPSTREAM_WITH_TOKEN} and {UPSTREAM_WITH_ENCODED_TOKEN}"
    redacted = redact_url(text)
    assert_no_token(redacted, "redact_url")
    assert redacted.count(REDACTED_FORM) == 2


# --help and start-up errors


BAD_UPSTREAMS_WITH_TOKEN = [
    f"ftp://deploy:{TOKEN}@x",
    f"ftp://deploy:{TOKEN}@upstream.test/simple/",
    f"https://deploy:{TOKEN}@upstream.test/simple/?page=1",
    f"https://deploy:{TOKEN}@upstream.test/simple/#top",
    f"https://deploy:{TOKEN}@upstream.test:99999/",
    f"https://deploy:{TOKEN}@upstream.test:port/",
    f"https://deploy:{TOKEN}@/simple/",
    f"https://deploy:{TOKEN}@[::1/",
    f" https://deploy:{quote(ENCODED_SECRET, safe='')}@upstream.test/?x ",
]


@pytest.mark.parametrize("upstream", BAD_UPSTREAMS_WITH_TOKEN)
def test_a_bad_upstream_is_reported_without_its_token(upstream: str) -> None:
    for environ, options, source in [
        ({"SHIM_UPSTREAM": upstream}, None, "SHIM_UPSTREAM"),
        ({}, {"upstream": upstream}, "--upstream"),
    ]:
        with pytest.raises(SettingsError) as caught:
            Settings.load(environ, options)
        message = str(caught.value)
        assert_no_token(message, f"the error for {source}")
        assert_no_token(repr(caught.value), f"the error's repr for {source}")
        assert message.startswith(f"{source} has value ")
        assert f"deploy:{REDACTED}@" in message


def test_upstream_option_with_a_bad_port_exits_2_without_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.load(["--upstream", f"https://deploy:{TOKEN}@upstream.test:99999/"], environ={})
    assert caught.value.code == 2
    out, err = capsys.readouterr()
    assert "--upstream has value" in err
    assert_none_has_token([("stdout", out), ("stderr", err)])


@pytest.mark.parametrize(
    "upstream", [f"deploy:{TOKEN}@upstream.test/simple/", f"//deploy:{TOKEN}@upstream.test/simple/"]
)
def test_a_scheme_less_upstream_is_reported_without_its_token(upstream: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load({"SHIM_UPSTREAM": upstream})
    assert_no_token(str(caught.value), "the error")


def test_a_bad_upstream_whose_password_holds_an_at_sign_is_reported_without_its_token() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load({"SHIM_UPSTREAM": f"https://deploy:p@{TOKEN}@upstream.test:port/"})
    assert_no_token(str(caught.value), "the error")


@pytest.mark.parametrize("upstream", MALFORMED_CREDENTIALS)
def test_credentials_with_unencoded_characters_are_refused_without_the_token(
    upstream: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError) as parsed:
        UpstreamURL.parse(upstream)
    assert_no_token(str(parsed.value), "the parser's reason")
    assert_no_token(redact_url(upstream), "redact_url")
    for environ, options, source in [
        ({"SHIM_UPSTREAM": upstream}, None, "SHIM_UPSTREAM"),
        ({}, {"upstream": upstream}, "--upstream"),
    ]:
        with pytest.raises(SettingsError) as caught:
            Settings.load(environ, options)
        assert str(caught.value).startswith(f"{source} has value ")
        assert_none_has_token([("the error", str(caught.value)), ("its repr", repr(caught.value))])
    with pytest.raises(SystemExit) as exited:
        cli.load(["--upstream", upstream], environ={})
    out, err = capsys.readouterr()
    assert exited.value.code == 2 and "--upstream has value" in err
    assert_none_has_token([("stdout", out), ("stderr", err)])


# The app: docs page, /healthz, faults, and the log of a session


def fault_string(client: TestClient, method: str, *params: Any, path: str) -> str:
    body = xmlrpc.client.dumps(params, methodname=method, allow_none=True)
    response = client.post(path, content=body.encode(), headers={"Content-Type": "text/xml"})
    assert response.status_code == 200, response.text
    with pytest.raises(xmlrpc.client.Fault) as caught:
        xmlrpc.client.loads(response.content)
    return caught.value.faultString


def session_outputs(client: TestClient) -> list[tuple[str, str]]:
    """Everything a client can get out of the app over a session of calls."""
    outputs: list[tuple[str, str]] = []
    for path in ("/", "/pypi/", "/restore/", "/today/", "/today/pypi/"):
        response = client.get(path)
        assert response.status_code == 200, path
        outputs.append((f"GET {path}", str(response.headers) + response.text))
    health = client.get("/healthz")
    assert health.json()["status"] == "ok"
    outputs.append(("GET /healthz", health.text))
    outputs.append(("GET /pypi", client.get("/pypi").text))
    outputs.append(("GET /pypi as text/xml", client.get("/pypi", headers={"Content-Type": "text/xml"}).text))
    calls = [
        ("search", ({"name": "x"},), "/today/pypi"),
        ("list_packages", (), "/today/pypi"),
        ("changelog", (0,), "/today/pypi"),
        ("list_packages", (), "/pypi"),
        ("package_releases", ("x",), "/pypi"),
        ("no_such_method", (), "/pypi"),
        ("package_releases", (1,), "/pypi"),
    ]
    for method, params, path in calls:
        outputs.append((f"fault of {method} on {path}", fault_string(client, method, *params, path=path)))
    listed = client.post(
        "/pypi",
        content=xmlrpc.client.dumps((), methodname="system.listMethods").encode(),
        headers={"Content-Type": "text/xml"},
    )
    outputs.append(("system.listMethods", listed.text))
    bad = client.post("/pypi", content=b"<not xml", headers={"Content-Type": "text/xml"})
    outputs.append(("unparsable body", bad.text))
    return outputs


def test_docs_page_healthz_and_faults_hide_the_token(secret_settings: Settings) -> None:
    app = create_app(secret_settings)
    on_fake_clock(app)  # the upstream is unreachable: its retries back off on the fake clock
    with TestClient(app) as client:
        outputs = session_outputs(client)
    assert_none_has_token(outputs)
    docs = dict(outputs)["GET /"]
    assert "https://upstream.test/" in docs  # the page does name the upstream, without credentials
    search_fault = dict(outputs)["fault of search on /today/pypi"]
    assert "https://upstream.test/search" in search_fault


@pytest.mark.parametrize("mode", list(Mode))
def test_status_page_of_every_mode_hides_the_token(secret_settings: Settings, mode: Mode) -> None:
    services = create_app(secret_settings).state.services
    page = status_page(
        METHODS, secret_settings, read_live(services), upstream=services.base_url, prefixes=MODE_PREFIXES, here=mode
    )
    assert_no_token(page, f"the status page in {mode}")


def test_the_log_of_a_whole_session_hides_the_token(
    secret_settings: Settings,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # configure_logging (run by `create_app()` without settings) stops propagation; caplog needs it.
    monkeypatch.setattr(logging.getLogger("shim"), "propagate", True)
    caplog.set_level(logging.DEBUG)
    tight = dataclasses.replace(secret_settings, max_body_bytes=1024)
    app = create_app(tight)
    on_fake_clock(app)
    with TestClient(app) as client:
        session_outputs(client)
        big = client.post("/pypi", content=b"x" * 4096, headers={"Content-Type": "text/xml"})
        assert big.status_code == 200
    out, err = capsys.readouterr()
    records = [
        (f"log record {r.name}", f"{r.getMessage()} {r.args!r} {r.exc_text or ''} {r.__dict__!r}")
        for r in caplog.records
    ]
    assert records
    assert_none_has_token([("caplog.text", caplog.text), *records, ("stdout", out), ("stderr", err)])
    assert REDACTED_FORM in caplog.text  # the upstream IS logged, redacted


def test_a_token_in_a_query_string_is_not_quoted_either() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load({"SHIM_UPSTREAM": f"https://upstream.test/?token={TOKEN}"})
    assert "a base URL takes no query or fragment" in str(caught.value)
    assert_no_token(str(caught.value), "the error")


def test_credentials_as_settings_are_used_and_never_shown(capsys: pytest.CaptureFixture[str]) -> None:
    environ = {
        "SHIM_UPSTREAM": "https://upstream.test/",
        "SHIM_UPSTREAM_USER": "deploy",
        "SHIM_UPSTREAM_PASSWORD": TOKEN,
    }
    settings = Settings.load(environ)
    assert settings.upstream.credentials is not None
    assert settings.upstream.credentials.username == "deploy"
    assert settings.upstream.credentials.password.reveal() == TOKEN
    assert_no_token(repr(settings), "the settings")
    assert_no_token(str(settings.public()), "the public settings")
    # A bad value elsewhere: the error names it, and still shows no secret.
    with pytest.raises(SettingsError) as caught:
        Settings.load({**environ, "SHIM_PORT": "nope"})
    assert_no_token(str(caught.value), "the error")


def test_a_password_setting_overrides_the_one_in_the_url() -> None:
    settings = Settings.load({"SHIM_UPSTREAM": "https://deploy:old@upstream.test/", "SHIM_UPSTREAM_PASSWORD": TOKEN})
    assert settings.upstream.credentials is not None
    assert (settings.upstream.credentials.username, settings.upstream.credentials.password.reveal()) == (
        "deploy",
        TOKEN,
    )
