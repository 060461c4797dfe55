"""The methods PyPI switched off in 2024, and those it still serves, answered from the fake index exactly as
PyPI's last implementation answered them (spec §1.1-§1.2, §4.2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testkit.fakeindex import FIXTURES, FakeIndex

from .helpers import Rpc, call, fault_of, rpc_for, served, upstream_paths
from .seed import ROUNDUP_160_DATA, ROUNDUP_160_URLS


def _fixture_projects() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(FIXTURES).glob("*.json"))]


# The seed example and the struct shapes


def test_release_urls_gives_the_seed_example_field_for_field(rpc: Rpc) -> None:
    answer = rpc("release_urls", "roundup", "1.6.0")
    assert answer == ROUNDUP_160_URLS
    assert list(answer[0]) == list(ROUNDUP_160_URLS[0])  # Warehouse's 14 keys, in its order


def test_release_data_gives_the_33_keys_in_warehouses_order(rpc: Rpc) -> None:
    answer = rpc("release_data", "roundup", "1.6.0")
    assert answer == ROUNDUP_160_DATA
    assert list(answer) == list(ROUNDUP_160_DATA) and len(answer) == 33


# package_releases


@pytest.mark.parametrize(
    ("name", "latest"),
    [("roundup", ["1.6.1"]), ("oddversions", ["3.0.0"]), ("Zope.Interface_Demo", ["4.0"]), ("no-such", [])],
)
def test_package_releases_gives_the_latest_version(rpc: Rpc, name: str, latest: list[str]) -> None:
    assert rpc("package_releases", name) == latest
    assert rpc("package_releases", name, False) == latest


def test_package_releases_is_empty_when_every_release_is_yanked(rpc: Rpc) -> None:
    # Spec §0.2: the JSON API then names a yanked release; PyPI's XML-RPC answered [].
    assert rpc("package_releases", "all-yanked") == []
    assert rpc("package_releases", "all-yanked", True) == ["4.0.dev0", "3.0", "2.0", "1.0"]


def test_show_hidden_gives_every_version_highest_first_in_legacy_order(rpc: Rpc) -> None:
    # packaging-legacy: pre-releases below their release, `1.0-beta` is 1.0b0, `2004d` (legacy) lowest of all.
    assert rpc("package_releases", "oddversions", True) == [
        "3.0.0",
        "2.0rc1",
        "2.0.dev3",
        "1.0",
        "1.0-beta",
        "0.9.8-r1",
        "2004d",
    ]


def test_show_hidden_includes_releases_without_files(rpc: Rpc) -> None:
    assert rpc("package_releases", "nofiles", True) == ["1.0", "0.1"]


def test_a_project_without_releases_has_none(rpc: Rpc) -> None:
    assert rpc("package_releases", "empty-project") == []
    assert rpc("package_releases", "empty-project", True) == []


@pytest.mark.parametrize("spelling", ["zope-interface-demo", "Zope.Interface_Demo", "ZOPE__interface.DEMO"])
def test_names_are_normalised_before_asking_so_no_redirect_is_needed(
    rpc: Rpc, fake_index: FakeIndex, spelling: str
) -> None:
    assert rpc("package_releases", spelling) == ["4.0"]
    assert upstream_paths(fake_index) == ["/pypi/zope-interface-demo/json"]


# release_urls and release_data: exactly the version string asked


@pytest.mark.parametrize("method", ["release_urls", "release_data"])
def test_a_version_is_matched_exactly_not_by_pep_440(rpc: Rpc, fake_index: FakeIndex, method: str) -> None:
    # The project has 3.0.0; PyPI's XML-RPC compared strings, while the JSON API would serve 3.0.0 for 3.0.
    assert rpc(method, "oddversions", "3.0") == ({} if method == "release_data" else [])
    assert rpc(method, "oddversions", "3.00") == ({} if method == "release_data" else [])
    # A version the project document does not list is answered without asking the upstream again.
    assert upstream_paths(fake_index) == ["/pypi/oddversions/json"]
    assert rpc(method, "oddversions", "3.0.0") not in ({}, [])


@pytest.mark.parametrize("method", ["release_urls", "release_data"])
def test_unknown_projects_and_versions_answer_empty(rpc: Rpc, method: str) -> None:
    empty: dict[str, Any] | list[Any] = {} if method == "release_data" else []
    assert rpc(method, "no-such-project", "1.0") == empty
    assert rpc(method, "roundup", "9.9") == empty


def test_a_release_without_files_has_no_urls_but_has_data(rpc: Rpc) -> None:
    assert rpc("release_urls", "nofiles", "0.1") == []
    data = rpc("release_data", "nofiles", "0.1")
    assert (data["version"], data["summary"], data["_pypi_ordering"]) == ("0.1", "Release without files.", 0)


def test_yanked_releases_are_still_served(rpc: Rpc) -> None:
    assert [f["filename"] for f in rpc("release_urls", "all-yanked", "3.0")] != []
    assert rpc("release_data", "all-yanked", "3.0")["version"] == "3.0"


def test_relative_file_urls_become_absolute(rpc: Rpc) -> None:
    (file,) = rpc("release_urls", "relative-urls", "1.0")
    assert file["url"] == "https://upstream.test/packages/ab/cd/relative_urls-1.0.tar.gz"


def test_pre_releases_and_legacy_versions_are_served_by_their_exact_string(rpc: Rpc) -> None:
    for version in ("2.0rc1", "1.0-beta", "2004d", "0.9.8-r1"):
        assert rpc("release_data", "oddversions", version)["version"] == version
    ordering = {v: rpc("release_data", "oddversions", v)["_pypi_ordering"] for v in ("2004d", "1.0-beta", "3.0.0")}
    assert ordering == {"2004d": 0, "1.0-beta": 2, "3.0.0": 6}


def test_text_is_cleaned_where_pypi_cleaned_it(rpc: Rpc) -> None:
    data = rpc("release_data", "unicode-chaos", "1.0")
    # Non-ASCII as literal character references, control characters gone, TAB kept (spec §0.2).
    assert data["summary"] == "Hello&#8230; &#26085;&#26412;&#35486; [31mred[0m tab\there"
    assert data["author"] == "Zo&#235; &#220;n&#239;code"
    assert data["description"] == "D&#233;j&#224; vu&#8230;\n&#26085;&#26412;&#35486; end"


def test_release_urls_values_are_raw_as_pypi_sent_them(rpc: Rpc, fake_index: FakeIndex) -> None:
    fake_index.add_release(
        "unicode-chaos",
        "2.0",
        files=[
            {
                "filename": "unicode_chaos-2.0.tar.gz",
                "packagetype": "sdist",
                "python_version": "source",
                "size": 10,
                "digests": {"blake2b_256": "ab" * 32, "md5": "0" * 32, "sha256": "1" * 64},
                "upload_time": "2024-01-01T00:00:00Z",
                "comment_text": "Déjà vu",
                "path": "ab/ab/" + "ab" * 30 + "/unicode_chaos-2.0.tar.gz",
            }
        ],
    )
    (file,) = rpc("release_urls", "unicode-chaos", "2.0")
    # No field of release_urls went through the cleaner: non-ASCII stays as it is.
    assert file["comment_text"] == "Déjà vu"
    assert file["upload_time"] == "2024-01-01T00:00:00Z"


# Core metadata for the six fields the JSON API lacks


def _wheel_with_metadata(version: str, metadata: str) -> dict[str, Any]:
    name = f"meta_demo-{version}-py3-none-any.whl"
    return {
        "filename": name,
        "packagetype": "bdist_wheel",
        "python_version": "py3",
        "size": 100,
        "digests": {"blake2b_256": "cd" * 32, "md5": "2" * 32, "sha256": "3" * 64},
        "upload_time": "2024-02-01T00:00:00Z",
        "comment_text": None,
        "path": "cd/cd/" + "cd" * 30 + "/" + name,
        "core_metadata_sha256": "4" * 64,
        "metadata": metadata,
    }


METADATA = """Metadata-Version: 1.2
Name: meta-demo
Version: {version}
Summary: Metadata from the file
Requires: os.path
Provides: meta_demo
Obsoletes: old_demo
Requires-Dist: requests>=2
Provides-Dist: meta-demo-extra
Obsoletes-Dist: older-demo
Requires-External: libxml2
Project-URL: Docs, https://docs.upstream.test/
"""


def test_release_data_reads_the_fields_the_json_api_lacks_from_core_metadata(rpc: Rpc, fake_index: FakeIndex) -> None:
    fake_index.add_release(
        "meta-demo",
        "1.0",
        info={"summary": "Metadata from the file", "requires_dist": ["requests>=2"]},
        files=[_wheel_with_metadata("1.0", METADATA.format(version="1.0"))],
    )
    data = rpc("release_data", "meta-demo", "1.0")
    assert {k: data[k] for k in ("requires", "provides", "obsoletes", "provides_dist", "obsoletes_dist")} == {
        "requires": ["os.path"],
        "provides": ["meta_demo"],
        "obsoletes": ["old_demo"],
        "provides_dist": ["meta-demo-extra"],
        "obsoletes_dist": ["older-demo"],
    }
    assert data["requires_external"] == ["libxml2"]
    assert data["requires_dist"] == ["requests>=2"]


def test_without_per_release_json_an_older_release_comes_from_its_core_metadata() -> None:
    fake = FakeIndex(per_version_json=False)
    fake.add_release("meta-demo", "1.0", files=[_wheel_with_metadata("1.0", METADATA.format(version="1.0"))])
    fake.add_release("meta-demo", "2.0", info={"summary": "Latest"}, files=[])
    with served(fake) as client:
        old = call(client, "release_data", "meta-demo", "1.0")
        latest = call(client, "release_data", "meta-demo", "2.0")
    assert (old["version"], old["summary"], old["requires"]) == ("1.0", "Metadata from the file", ["os.path"])
    assert old["project_url"] == ["Docs, https://docs.upstream.test/"]
    assert (latest["version"], latest["summary"]) == ("2.0", "Latest")
    # The missing route was learnt once, the miss confirmed by a probe on the latest release (which the route
    # has if it exists); the latest release came from the project document alone.
    assert [p for p in upstream_paths(fake) if p.endswith("/json")] == [
        "/pypi/meta-demo/json",
        "/pypi/meta-demo/1.0/json",
        "/pypi/meta-demo/2.0/json",
    ]


def test_without_per_release_json_or_metadata_release_data_says_why() -> None:
    fake = FakeIndex(per_version_json=False)
    with served(fake) as client:
        assert fault_of(rpc_for(client), "release_data", "roundup", "1.5.1") == (
            -32500,
            "RuntimeError: The upstream offers no metadata for roundup 1.5.1: "
            "no per-release JSON and no core metadata file.",
        )
        # What the project document holds is still exact.
        assert call(client, "release_data", "roundup", "1.6.1")["version"] == "1.6.1"
        assert call(client, "release_urls", "roundup", "1.6.0") == ROUNDUP_160_URLS


# list_packages, list_packages_with_serial, changelog_last_serial: the Simple index


def test_list_packages_with_serial_maps_display_names_to_serials(rpc: Rpc) -> None:
    expected = {p["name"]: p["last_serial"] for p in _fixture_projects()}
    assert rpc("list_packages_with_serial") == expected
    assert rpc("list_packages_with_serial", path="/today/pypi") == expected


def test_list_packages_gives_every_display_name(rpc: Rpc) -> None:
    names = rpc("list_packages")
    assert sorted(names) == sorted(p["name"] for p in _fixture_projects())
    assert "Zope.Interface_Demo" in names and "empty-project" in names


def test_changelog_last_serial_is_the_index_serial(rpc: Rpc) -> None:
    assert rpc("changelog_last_serial") == max(p["last_serial"] for p in _fixture_projects())


def test_a_mirror_with_an_html_only_simple_index() -> None:
    fake = FakeIndex(json_simple=False)
    with served(fake) as client:
        assert sorted(call(client, "list_packages")) == sorted(p["name"] for p in _fixture_projects())
        # The serial comes from the index's X-PyPI-Last-Serial header.
        assert call(client, "changelog_last_serial") == 42691247
        assert fault_of(rpc_for(client), "list_packages_with_serial") == (
            -32500,
            "RuntimeError: The upstream's Simple index gives no per-project serials (it is HTML only); "
            "use list_packages.",
        )


def test_a_mirror_without_serials() -> None:
    fake = FakeIndex(json_simple=False, serial_headers=False)
    with served(fake) as client:
        assert fault_of(rpc_for(client), "changelog_last_serial") == (
            -32500,
            "RuntimeError: The upstream index publishes no serials, so there is no last serial to give; it needs "
            "X-PyPI-Last-Serial on its Simple index, or a JSON Simple index (PEP 691) with _last-serial.",
        )


def test_an_empty_index_has_a_nil_last_serial() -> None:
    from testkit.fakeindex import IndexState

    with served(FakeIndex(IndexState())) as client:
        assert call(client, "changelog_last_serial") is None
        assert call(client, "list_packages") == []
        assert call(client, "list_packages_with_serial") == {}


# package_roles


def test_package_roles_puts_owners_first_then_users_case_insensitively(rpc: Rpc) -> None:
    assert rpc("package_roles", "case-owners") == [
        ["Owner", "Alice"],
        ["Owner", "alice"],
        ["Owner", "bob"],
        ["Maintainer", "alice"],
        ["Maintainer", "Bob"],
        ["Maintainer", "Zed"],
    ]
    assert rpc("package_roles", "roundup") == [["Owner", "richard"], ["Maintainer", "rouilj"]]
    assert rpc("package_roles", "no-such-project") == []


def test_package_roles_without_ownership_in_the_json_api_says_so() -> None:
    with served(FakeIndex(ownership=False)) as client:
        assert fault_of(rpc_for(client), "package_roles", "roundup") == (
            -32500,
            "RuntimeError: The upstream's JSON API does not publish project roles (no `ownership`).",
        )
