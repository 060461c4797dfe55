"""The upstream's address: how an operator's URL is normalised and its credentials split off, and which index is
the default when SHIM_UPSTREAM is not set (pip's configured index, else the public one as pypi-simple gives it)."""

from __future__ import annotations

import os

import pytest
from pypi_simple import PYPI_SIMPLE_ENDPOINT

from shim.config.pip import default_upstream, pip_config
from shim.upstream.urls import UpstreamURL

# UpstreamURL

NORMALISED = [
    ("https://upstream.test", "https://upstream.test/"),
    ("https://upstream.test/", "https://upstream.test/"),
    ("https://upstream.test//", "https://upstream.test/"),
    ("  https://upstream.test/  ", "https://upstream.test/"),
    ("https://upstream.test/simple", "https://upstream.test/"),
    ("https://upstream.test/simple/", "https://upstream.test/"),
    ("https://upstream.test/repo/pypi/simple/", "https://upstream.test/repo/pypi/"),
    ("https://upstream.test/repo", "https://upstream.test/repo/"),
    ("https://upstream.test/simplex/", "https://upstream.test/simplex/"),
    ("http://upstream.test:8080/simple/", "http://upstream.test:8080/"),
    ("https://[::1]/simple/", "https://[::1]/"),
    ("https://[2001:db8::1]:8443/simple", "https://[2001:db8::1]:8443/"),
    ("https://deploy:tok@upstream.test:8443/simple/", "https://upstream.test:8443/"),
    ("https://deploy@upstream.test/", "https://upstream.test/"),
]


@pytest.mark.parametrize(("given", "base"), NORMALISED)
def test_upstream_base_is_normalised(given: str, base: str) -> None:
    url = UpstreamURL.parse(given)
    assert url.base == base
    assert "@" not in url.base


def test_upstream_host_of_ipv6_and_port() -> None:
    assert UpstreamURL.parse("https://[2001:db8::1]:8443/").host == "2001:db8::1"
    assert UpstreamURL.parse("http://upstream.test:8080/").host == "upstream.test"


def test_upstream_without_credentials_shows_its_base() -> None:
    url = UpstreamURL.parse("https://upstream.test/simple/")
    assert url.credentials is None
    assert str(url) == "https://upstream.test/"


def test_upstream_credentials_are_split_off_and_decoded() -> None:
    url = UpstreamURL.parse("https://de%40ploy:p%2Fss%3Aw0rd@upstream.test/simple/")
    assert url.base == "https://upstream.test/"
    assert url.credentials is not None
    assert url.credentials.username == "de@ploy"
    assert url.credentials.password.reveal() == "p/ss:w0rd"
    assert str(url) == "https://de@ploy:***@upstream.test/"


def test_upstream_with_a_user_name_only_has_an_empty_password() -> None:
    url = UpstreamURL.parse("https://deploy@upstream.test/")
    assert url.credentials is not None
    assert url.credentials.username == "deploy"
    assert url.credentials.password.reveal() == ""


# default_upstream


class FakePipConfig:
    """Stands in for `pip config list`: the given keys, and how often it was read."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.reads = 0

    def __call__(self) -> dict[str, str]:
        self.reads += 1
        return self.values


def no_pip_config() -> dict[str, str]:
    raise AssertionError("pip's configuration must not be read when PIP_INDEX_URL is set")


def test_pip_index_url_wins_without_reading_pip_config() -> None:
    url = default_upstream({"PIP_INDEX_URL": "https://env.test/simple/"}, pip_config=no_pip_config)
    assert url.base == "https://env.test/"


def test_pip_index_url_takes_the_first_of_several() -> None:
    url = default_upstream({"PIP_INDEX_URL": " https://one.test/simple/  https://two.test/simple/"}, no_pip_config)
    assert url.base == "https://one.test/"


def test_pip_index_url_credentials_are_kept_apart() -> None:
    url = default_upstream({"PIP_INDEX_URL": "https://deploy:tok@env.test/simple/"}, no_pip_config)
    assert url.base == "https://env.test/"
    assert url.credentials is not None
    assert url.credentials.password.reveal() == "tok"


PIP_KEYS = {
    ":env:.index-url": "https://pipenv.test/simple/",
    "install.index-url": "https://install.test/simple/",
    "global.index-url": "https://global.test/simple/",
}


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        ([":env:.index-url", "install.index-url", "global.index-url"], "https://pipenv.test/"),
        (["install.index-url", "global.index-url"], "https://install.test/"),
        (["global.index-url"], "https://global.test/"),
    ],
)
def test_pip_config_keys_in_order(present: list[str], expected: str) -> None:
    config = FakePipConfig({key: PIP_KEYS[key] for key in present})
    assert default_upstream({}, pip_config=config).base == expected


def test_a_file_index_in_pip_config_is_skipped() -> None:
    config = FakePipConfig(
        {"install.index-url": "file:///srv/index/simple", "global.index-url": PIP_KEYS["global.index-url"]}
    )
    assert default_upstream({}, pip_config=config).base == "https://global.test/"


def test_a_file_pip_index_url_falls_back_to_the_public_index() -> None:
    assert default_upstream({"PIP_INDEX_URL": "file:///srv/index/simple"}, no_pip_config) == UpstreamURL.parse(
        PYPI_SIMPLE_ENDPOINT
    )


def test_other_pip_keys_are_ignored() -> None:
    config = FakePipConfig(
        {"global.extra-index-url": "https://extra.test/simple/", "global.find-links": "https://links.test/"}
    )
    assert default_upstream({}, pip_config=config) == UpstreamURL.parse(PYPI_SIMPLE_ENDPOINT)


def test_nothing_configured_means_the_public_index() -> None:
    config = FakePipConfig({})
    assert default_upstream({}, pip_config=config) == UpstreamURL.parse(PYPI_SIMPLE_ENDPOINT)
    assert config.reads == 1


def test_empty_pip_index_url_reads_pip_config() -> None:
    config = FakePipConfig({"global.index-url": "https://global.test/simple/"})
    assert default_upstream({"PIP_INDEX_URL": ""}, pip_config=config).base == "https://global.test/"


@pytest.mark.e2e
def test_real_pip_config_list_output_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    # `pip_config` runs `python -m pip config list`, which inherits this environment and prints
    # `:env:.index-url='https://mirror.test/simple/'`.
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.test/simple/")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    config = pip_config()
    assert config[":env:.index-url"] == "https://mirror.test/simple/"
    assert default_upstream({}).base == "https://mirror.test/"
