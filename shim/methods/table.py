"""`METHODS`: the table that describes every legacy method, as data.

One entry per method: its function (in the family modules beside this one), what it answers, its fidelity
grade, a note on how it differs from PyPI, and what it does in each mode (answers, a fixed refusal in
PyPI's words, or no such method). Dispatch, introspection, the status page and the README's method table
all read this table.
"""

from __future__ import annotations

from pydantic import StrictInt

from shim.catalog.schema import MAX_ROWS
from shim.methods import discovery, introspection, mirroring, releases, retired, roles
from shim.methods.introspection import MULTICALL_LIMIT
from shim.methods.retired import (
    CHANGELOG_RETIRED,
    DEPRECATED,
    MULTICALL_RETIRED,
    REMOVED_FOR_BIGQUERY,
    SEARCH_RETIRED,
    gone,
)
from shim.xmlrpc.dispatch import MULTICALL_MAX_BYTES, ONCE_PER_MULTICALL, TOO_BIG
from shim.xmlrpc.table import Absent, Argument, Grade, MethodFunction, MethodSpec, MethodTable

__all__ = ["METHODS"]


def _spaced(number: int) -> str:
    """A number as the docs write it: thin groups of three, `50 000`."""
    return f"{number:_}".replace("_", " ")


_NEVER_IMPLEMENTED = "Documented by PyPI until 2024 but never implemented in Warehouse, which answers -32601."


def _deprecated(name: str, *, instead: str) -> MethodSpec:
    """A method PyPI refuses with its deprecation fault in every era, after checking its two arguments."""
    return MethodSpec(
        name,
        None,
        returns="nil",
        summary="PyPI's deprecation fault, after the arguments are checked.",
        grade=Grade.EXACT,
        note=f"PyPI's fault, word for word; use {instead}.",
        restore=DEPRECATED,
        today=DEPRECATED,
        arguments=(Argument("package_name"), Argument("version")),
    )


def _introspection(name: str, function: MethodFunction, returns: str, summary: str) -> MethodSpec:
    """Legacy PyPI's `system.*` introspection: answered from this table; absent from Warehouse (pypi-today)."""
    return MethodSpec(
        name,
        function,
        returns=returns,
        summary=summary,
        grade=Grade.EXACT,
        note="Legacy PyPI's introspection, read from this table; Warehouse answers -32601.",
        today=Absent(),
    )


def _not_a_method(name: str, note: str) -> MethodSpec:
    """A name PyPI once documented that Warehouse never answers: -32601 in every mode."""
    return MethodSpec(
        name,
        None,
        returns="array",
        summary="Not a method: -32601.",
        grade=Grade.UNAVAILABLE,
        note=note,
        restore=Absent(),
        today=Absent(),
    )


METHODS = MethodTable(
    (
        MethodSpec(
            "changelog_last_serial",
            mirroring.changelog_last_serial,
            returns="int",
            summary="The serial of the index's last change (`<nil/>` for an empty index).",
            grade=Grade.EXACT,
            note="The higher of the Simple index's `_last-serial` (or its X-PyPI-Last-Serial header), as of its "
            "last read (SHIM_INDEX_REFRESH, 300 s), and the highest serial the catalog holds, where a release or "
            "project the upstream's RSS feeds show is within SHIM_FEED_POLL (30 s), at its JSON's serial: never "
            "lower after a restart, nor when a CDN node answers an older copy (which is not taken), never above a "
            "serial the upstream gave. Over an upstream without RSS feeds it moves only at the Simple index's "
            "reads. A fault if the upstream publishes no serial.",
        ),
        MethodSpec(
            "changelog_since_serial",
            mirroring.changelog_since_serial,
            returns="array",
            summary=f"`[name, version, timestamp, action, serial]` rows above `serial`, at most {MAX_ROWS:_}.".replace(
                "_", " "
            ),
            grade=Grade.APPROXIMATE,
            note="From the catalog, at real serials (each project's `_last-serial`, or its JSON's): new releases "
            "and projects within SHIM_FEED_POLL (30 s), from the upstream's RSS feeds and each one's JSON; "
            "removals, yanks and files added later within SHIM_INDEX_REFRESH (300 s), from the Simple index, and "
            "so is everything over an upstream without RSS feeds. One row per observed change at least, in "
            "Warehouse's action words where the JSON/RSS show what changed, else `update` with a nil version; "
            "below the first serial seen, one `update` row per project above `serial`. A change recorded below a "
            "serial already given (the Simple index's read, behind the feeds) is also given to callers since a "
            "serial between the two, so a mirror that synced in between does not miss it: unlike PyPI, such rows "
            "may be at or below `serial`. A fault naming what is missing if the Simple index gives no per-project "
            "serials (HTML only).",
            whole_index=True,
        ),
        MethodSpec(
            "list_packages_with_serial",
            mirroring.list_packages_with_serial,
            returns="struct",
            summary="`{display name: last serial}` for every project.",
            grade=Grade.NEAR,
            note="From the Simple index: quarantined projects are missing, members come in its order; a fault if "
            "the index is HTML only (no serials).",
            whole_index=True,
        ),
        MethodSpec(
            "package_roles",
            roles.package_roles,
            returns="array",
            summary="`[role, user]` for a project, Owners first, users case-insensitively.",
            grade=Grade.NEAR,
            note="From the JSON API's `ownership`, re-sorted as PyPI sorted; `[]` for a project without releases; "
            "a fault if the upstream has no `ownership`.",
        ),
        MethodSpec(
            "user_packages",
            roles.user_packages,
            returns="array",
            summary="`[role, project]` for every role a user holds.",
            grade=Grade.APPROXIMATE,
            note="From the ownership roles the catalog has read (every project once the crawler has run; else "
            "those read so far); user matched case-insensitively; role descending, then project.",
        ),
        MethodSpec(
            "browse",
            discovery.browse,
            returns="array",
            summary="`[project, version]` for releases carrying every listed classifier.",
            grade=Grade.APPROXIMATE,
            note="Covers every release whose classifiers the catalog has read: each project's latest release, and "
            "each earlier one that was the latest when the catalog read the project (kept while it exists "
            "upstream); releases older than the catalog's first read are missing (PyPI: every release); exact "
            "classifier strings; empty, unknown or repeated classifiers give `[]`.",
            whole_index=True,
        ),
        MethodSpec(
            "search",
            discovery.search,
            returns="array",
            summary="`{name, summary, version, _pypi_ordering}` for projects matching a spec (pip search).",
            grade=Grade.APPROXIMATE,
            note="Ranked as PyPI's Elasticsearch did: the words of a field ORed, each scored by how often the field "
            "holds it and how rare it is (BM25 without length normalisation), boosts name 10, summary/description/"
            "keywords 5, others 1, fields combined by the operator; the exact name first, equal scores by the "
            "shorter name. Names searched over every project (each word a normalised substring, whole name parts "
            "weighing more); other fields over what the catalog has read, stemmed with stop words dropped as "
            "PyPI's snowball analyzer did; top name matches filled from JSON within SHIM_SEARCH_FILL_TIMEOUT; at "
            f"most {discovery.MAX_VALUES_PER_FIELD} values per field, {discovery.MAX_VALUES} in all, "
            f"{discovery.MAX_VALUE_LENGTH} characters each, else `ValueError: Invalid spec, …`. "
            "PyPI has refused it since 2020.",
            today=SEARCH_RETIRED,
        ),
        MethodSpec(
            "list_packages",
            mirroring.list_packages,
            returns="array",
            summary="Every project's display name.",
            grade=Grade.NEAR,
            note="From the Simple index: quarantined projects are missing, names sorted where PyPI had no order.",
            today=gone("list_packages", "Simple API"),
            whole_index=True,
        ),
        MethodSpec(
            "package_releases",
            releases.package_releases,
            returns="array",
            summary="`[latest version]`, or every version highest first with `show_hidden`.",
            grade=Grade.NEAR,
            note="From the JSON API, ordered with packaging-legacy: quarantined releases are missing, equal "
            "versions (1.0, 1.0.0) keep string order.",
            today=gone("package_releases", "JSON or Simple API"),
        ),
        MethodSpec(
            "release_urls",
            releases.release_urls,
            returns="array",
            summary="The files of the release with exactly that version string.",
            grade=Grade.NEAR,
            note="From the JSON API's `releases`: files in filename order (PyPI gave none), quarantined releases "
            "missing, relative URLs made absolute.",
            today=gone("release_urls", "JSON or Simple API"),
        ),
        MethodSpec(
            "release_data",
            releases.release_data,
            returns="struct",
            summary="The 33-key metadata struct of the release with exactly that version string.",
            grade=Grade.APPROXIMATE,
            note="`project_url` rebuilt from JSON `project_urls`, `_pypi_ordering` from version order; requires, "
            "provides, obsoletes(_dist), requires_external from core metadata when offered, else `[]`; without "
            "per-release JSON, an older release's fields all come from its core metadata file, else from the "
            "release's own files, read once and cached: its first wheel's METADATA by range requests (the zip's "
            "last 66 KiB, the rest of a larger central directory, then the member: about 70 KiB), else its first "
            "sdist's top-level PKG-INFO, streamed until it has passed (setuptools puts it first; hatchling and flit "
            "last, which reads the whole sdist), up to SHIM_MAX_ARCHIVE_BYTES of either; failing both, a fault.",
            today=gone("release_data", "JSON or Simple API"),
        ),
        MethodSpec(
            "changelog",
            mirroring.changelog,
            returns="array",
            summary="`[name, version, timestamp, action(, serial)]` rows newer than a timestamp.",
            grade=Grade.APPROXIMATE,
            note="The same rows as changelog_since_serial, by timestamp (actions not cleaned, as PyPI), as fresh: "
            "releases and projects within SHIM_FEED_POLL from the RSS feeds, the rest (and everything over an "
            "upstream without RSS feeds) within SHIM_INDEX_REFRESH. PyPI has refused it since 2023.",
            today=CHANGELOG_RETIRED,
            whole_index=True,
        ),
        MethodSpec(
            "package_hosting_mode",
            retired.package_hosting_mode,
            returns="string",
            summary='`"pypi-only"`, for any name.',
            grade=Grade.EXACT,
            note="PyPI's constant; removed from PyPI in 2024 (-32601 in pypi-today mode).",
            today=Absent(),
        ),
        _deprecated("package_data", instead="release_data"),
        _deprecated("package_urls", instead="release_urls"),
        MethodSpec(
            "top_packages",
            None,
            returns="nil",
            summary="PyPI's fault pointing to BigQuery, after the arguments are checked.",
            grade=Grade.EXACT,
            note="PyPI's fault, word for word; no upstream API has download counts.",
            restore=REMOVED_FOR_BIGQUERY,
            today=REMOVED_FOR_BIGQUERY,
            arguments=(Argument("num", StrictInt | None, None),),
        ),
        _not_a_method(
            "release_downloads", "Never ported to Warehouse, which answers -32601; no upstream API has download counts."
        ),
        _not_a_method("updated_releases", _NEVER_IMPLEMENTED),
        _not_a_method("changed_packages", _NEVER_IMPLEMENTED),
        _introspection(
            "system.listMethods",
            introspection.list_methods,
            "array",
            "The names of the methods this endpoint answers in the request's mode.",
        ),
        _introspection(
            "system.methodHelp",
            introspection.method_help,
            "string",
            "A method's usage, answer, fidelity and difference from PyPI.",
        ),
        _introspection(
            "system.methodSignature",
            introspection.method_signature,
            "array",
            "A method's signatures, one per accepted number of arguments.",
        ),
        MethodSpec(
            "system.multicall",
            introspection.multicall,
            returns="array",
            summary=f"Up to {MULTICALL_LIMIT} calls in one request; each slot `[result]` or a fault struct.",
            grade=Grade.EXACT,
            note="Legacy PyPI's boxcarring; no nesting; each sub-call counts as a call; the whole-index methods "
            "(list_packages, list_packages_with_serial, changelog_since_serial, changelog, browse) once each, a "
            f"repeat answering `{ONCE_PER_MULTICALL.format(method='<method>')}` The slot whose answer would take "
            f"the total past {MULTICALL_MAX_BYTES // 2**20} MiB, and every later one, answers "
            f"`{TOO_BIG.format(limit=MULTICALL_MAX_BYTES)}` Warehouse refuses it (pypi-today mode).",
            today=MULTICALL_RETIRED,
            calls_others=True,
        ),
    )
)
