"""`METHODS`: the table that describes every legacy method, as data.

One entry per method: its function (in `shim.legacy`), what it answers, its fidelity grade, a note on
how it differs from PyPI, what it reads upstream, its cache tier, and what it does in each mode.
Dispatch, introspection, the docs page and the README's method table all read this table.
"""

from __future__ import annotations

from shim import legacy
from shim.legacy import DEPRECATION_URL, MULTICALL_LIMIT
from shim.table import Absent, CacheTier, Grade, MethodSpec, MethodTable, Refuse

__all__ = ["DEPRECATION_URL", "METHODS", "MULTICALL_LIMIT"]


def _gone(method: str, instead: str) -> Refuse:
    return Refuse(
        "RuntimeError",
        f"PyPI no longer supports the XMLRPC {method} method. Use {instead} instead. "
        f"See {DEPRECATION_URL} for more information.",
    )


METHODS = MethodTable(
    (
        MethodSpec(
            "changelog_last_serial",
            legacy.changelog_last_serial,
            returns="int",
            summary="The serial of the index's last change (`<nil/>` for an empty index).",
            grade=Grade.EXACT,
            note="The Simple index's `_last-serial` (or its X-PyPI-Last-Serial header), as of the last index "
            "refresh; a fault if the upstream publishes no serial.",
            sources="Simple index",
        ),
        MethodSpec(
            "changelog_since_serial",
            legacy.changelog_since_serial,
            returns="array",
            summary="`[name, version, timestamp, action, serial]` rows above `serial`, at most 50 000.",
            grade=Grade.APPROXIMATE,
            note="From the metadata index: real Simple-index serials; one row per observed change at least, in "
            "Warehouse's action words where the JSON/RSS show what changed, else `update` with a nil version; "
            "below the first serial seen, one `update` row per project above `serial`.",
            sources="Simple index, JSON API, RSS",
        ),
        MethodSpec(
            "list_packages_with_serial",
            legacy.list_packages_with_serial,
            returns="struct",
            summary="`{display name: last serial}` for every project.",
            grade=Grade.NEAR,
            note="From the Simple index: quarantined projects are missing, members come in its order; a fault if "
            "the index is HTML only (no serials).",
            sources="Simple index",
            cache=CacheTier.ALL_PROJECTS,
        ),
        MethodSpec(
            "package_roles",
            legacy.package_roles,
            returns="array",
            summary="`[role, user]` for a project, Owners first, users case-insensitively.",
            grade=Grade.NEAR,
            note="From the JSON API's `ownership`, re-sorted as PyPI sorted; `[]` for a project without releases; "
            "a fault if the upstream has no `ownership`.",
            sources="JSON API",
            cache=CacheTier.PROJECT,
        ),
        MethodSpec(
            "user_packages",
            legacy.user_packages,
            returns="array",
            summary="`[role, project]` for every role a user holds.",
            grade=Grade.APPROXIMATE,
            note="From the ownership roles the metadata index has read (every project once the crawler has "
            "run; else those read so far); user matched case-insensitively; role descending, then project.",
            sources="JSON API (ownership), via the metadata index",
        ),
        MethodSpec(
            "browse",
            legacy.browse,
            returns="array",
            summary="`[project, version]` for releases carrying every listed classifier.",
            grade=Grade.APPROXIMATE,
            note="Covers the latest release of each project the metadata index has read (PyPI: every release); "
            "exact classifier strings; empty, unknown or repeated classifiers give `[]`.",
            sources="JSON API (classifiers), via the metadata index",
        ),
        MethodSpec(
            "search",
            legacy.search,
            returns="array",
            summary="`{name, summary, version, _pypi_ordering}` for projects matching a spec (pip search).",
            grade=Grade.APPROXIMATE,
            note="Names searched over every project (normalised substring); other fields over the metadata "
            "index (every word as a prefix); ranked exact name, field weight (name 10, summary/description/"
            "keywords 5), shorter name; top name matches filled from JSON within SHIM_SEARCH_FILL_TIMEOUT. "
            "PyPI has refused it since 2020.",
            sources="Simple index, JSON API, metadata index",
            today=Refuse(
                "RuntimeError",
                "PyPI no longer supports 'pip search' (or XML-RPC search). Please use https://{domain}/search "
                f"(via a browser) instead. See {DEPRECATION_URL} for more information.",
            ),
        ),
        MethodSpec(
            "list_packages",
            legacy.list_packages,
            returns="array",
            summary="Every project's display name.",
            grade=Grade.NEAR,
            note="From the Simple index: quarantined projects are missing, names sorted where PyPI had no order.",
            sources="Simple index",
            today=_gone("list_packages", "Simple API"),
            cache=CacheTier.ALL_PROJECTS,
        ),
        MethodSpec(
            "package_releases",
            legacy.package_releases,
            returns="array",
            summary="`[latest version]`, or every version highest first with `show_hidden`.",
            grade=Grade.NEAR,
            note="From the JSON API, ordered with packaging-legacy: quarantined releases are missing, equal "
            "versions (1.0, 1.0.0) keep string order.",
            sources="JSON API",
            today=_gone("package_releases", "JSON or Simple API"),
            cache=CacheTier.PROJECT,
        ),
        MethodSpec(
            "release_urls",
            legacy.release_urls,
            returns="array",
            summary="The files of the release with exactly that version string.",
            grade=Grade.NEAR,
            note="From the JSON API's `releases`: files in filename order (PyPI gave none), quarantined releases "
            "missing, relative URLs made absolute.",
            sources="JSON API",
            today=_gone("release_urls", "JSON or Simple API"),
            cache=CacheTier.PROJECT,
        ),
        MethodSpec(
            "release_data",
            legacy.release_data,
            returns="struct",
            summary="The 33-key metadata struct of the release with exactly that version string.",
            grade=Grade.APPROXIMATE,
            note="`project_url` rebuilt from JSON `project_urls`, `_pypi_ordering` from version order; requires, "
            "provides, obsoletes(_dist), requires_external from core metadata when offered, else `[]`; without "
            "per-release JSON, older releases come from core metadata.",
            sources="JSON API, core metadata",
            today=_gone("release_data", "JSON or Simple API"),
            cache=CacheTier.PROJECT,
        ),
        MethodSpec(
            "changelog",
            legacy.changelog,
            returns="array",
            summary="`[name, version, timestamp, action(, serial)]` rows newer than a timestamp.",
            grade=Grade.APPROXIMATE,
            note="The same rows as changelog_since_serial, by timestamp (actions not cleaned, as PyPI). "
            "PyPI has refused it since 2023.",
            sources="Simple index, JSON API, RSS",
            today=Refuse("ValueError", "The changelog method has been deprecated, use changelog_since_serial instead."),
        ),
        MethodSpec(
            "package_hosting_mode",
            legacy.package_hosting_mode,
            returns="string",
            summary='`"pypi-only"`, for any name.',
            grade=Grade.EXACT,
            note="PyPI's constant; removed from PyPI in 2024 (-32601 in pypi-today mode).",
            sources="none",
            today=Absent(),
        ),
        MethodSpec(
            "package_data",
            legacy.package_data,
            returns="nil",
            summary="Always PyPI's deprecation fault.",
            grade=Grade.EXACT,
            note="PyPI's fault, word for word; use release_data.",
            sources="none",
        ),
        MethodSpec(
            "package_urls",
            legacy.package_urls,
            returns="nil",
            summary="Always PyPI's deprecation fault.",
            grade=Grade.EXACT,
            note="PyPI's fault, word for word; use release_urls.",
            sources="none",
        ),
        MethodSpec(
            "top_packages",
            legacy.top_packages,
            returns="nil",
            summary="Always PyPI's fault pointing to BigQuery.",
            grade=Grade.EXACT,
            note="PyPI's fault, word for word; no upstream API has download counts.",
            sources="none",
        ),
        MethodSpec(
            "release_downloads",
            None,
            returns="array",
            summary="Not a method: -32601.",
            grade=Grade.UNAVAILABLE,
            note="Never ported to Warehouse, which answers -32601; no upstream API has download counts.",
            sources="none",
            restore=Absent(),
            today=Absent(),
        ),
        MethodSpec(
            "updated_releases",
            None,
            returns="array",
            summary="Not a method: -32601.",
            grade=Grade.UNAVAILABLE,
            note="Documented by PyPI until 2024 but never implemented in Warehouse, which answers -32601.",
            sources="none",
            restore=Absent(),
            today=Absent(),
        ),
        MethodSpec(
            "changed_packages",
            None,
            returns="array",
            summary="Not a method: -32601.",
            grade=Grade.UNAVAILABLE,
            note="Documented by PyPI until 2024 but never implemented in Warehouse, which answers -32601.",
            sources="none",
            restore=Absent(),
            today=Absent(),
        ),
        MethodSpec(
            "system.listMethods",
            legacy.list_methods,
            returns="array",
            summary="The names of the methods this endpoint answers in the request's mode.",
            grade=Grade.EXACT,
            note="Legacy PyPI's introspection, read from this table; Warehouse answers -32601.",
            sources="none",
            today=Absent(),
        ),
        MethodSpec(
            "system.methodHelp",
            legacy.method_help,
            returns="string",
            summary="A method's usage, answer, fidelity and difference from PyPI.",
            grade=Grade.EXACT,
            note="Legacy PyPI's introspection, read from this table; Warehouse answers -32601.",
            sources="none",
            today=Absent(),
        ),
        MethodSpec(
            "system.methodSignature",
            legacy.method_signature,
            returns="array",
            summary="A method's signatures, one per accepted number of arguments.",
            grade=Grade.EXACT,
            note="Legacy PyPI's introspection, read from this table; Warehouse answers -32601.",
            sources="none",
            today=Absent(),
        ),
        MethodSpec(
            "system.multicall",
            legacy.multicall,
            returns="array",
            summary=f"Up to {MULTICALL_LIMIT} calls in one request; each slot `[result]` or a fault struct.",
            grade=Grade.EXACT,
            note="Legacy PyPI's boxcarring; no nesting; each sub-call counts as a call. "
            "Warehouse refuses it (pypi-today mode).",
            sources="as each sub-call",
            today=Refuse("ValueError", "MultiCall requests have been deprecated, use individual requests instead."),
        ),
    )
)
