"""The legacy methods, one function each, with Warehouse's strict annotations on their parameters.

Each takes the call's context first (as Warehouse's views take the request), then the XML-RPC
parameters; pydantic checks those against the annotations before the body runs. The wording of every
fixed fault is Warehouse's (spec §2.2); a fault of this service's own (data the upstream lacks) says why
in the same `<ExceptionClass>: <message>` form.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar
from urllib.parse import urljoin

from pydantic import Field, StrictBool, StrictInt, StrictStr, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic reads only this one on Python < 3.12

from shim.context import CallContext
from shim.discovery import search_hits
from shim.errors import BadArguments, Refused, UpstreamMalformed
from shim.index import IndexSnapshot
from shim.metaindex import ChangeRow
from shim.models import ProjectDoc, file_struct, legacy_sorted, release_data_struct, roles_list
from shim.names import normalize_name
from shim.protocol import Raw, encode_value
from shim.table import MethodSpec
from shim.text import clean_for_xml

logger = logging.getLogger("shim.legacy")

T = TypeVar("T")

DEPRECATION_URL = "https://warehouse.pypa.io/api-reference/xml-rpc.html#deprecated-methods"
MULTICALL_LIMIT = 100


# Helpers: the upstream's documents, as the methods read them.


async def _project(context: CallContext, package_name: str) -> tuple[str, ProjectDoc] | None:
    """The project's normalised name and document; None for an invalid name (no request) or no project."""
    normalized = normalize_name(package_name)
    if normalized is None:
        return None
    doc = await context.services.store.project(normalized)
    return None if doc is None else (normalized, doc)


async def _snapshot(context: CallContext) -> IndexSnapshot:
    return await context.services.index.current()


def _memo(context: CallContext, snapshot: IndexSnapshot, method: str, build: Callable[[], Any]) -> Raw:
    """A whole-index answer, encoded once per snapshot of the index."""
    key = f"{method}:{context.allow_i8}"
    if key not in snapshot.answers:
        snapshot.answers[key] = encode_value(build(), allow_i8=context.allow_i8)
    answer: Raw = snapshot.answers[key]
    return answer


# Mirroring


async def changelog_last_serial(context: CallContext) -> int | None:
    """The index's last serial: the Simple index's `meta._last-serial` (or its X-PyPI-Last-Serial header)."""
    listing = (await _snapshot(context)).listing
    if listing.last_serial is None:
        raise Refused(RuntimeError("The upstream index publishes no serials, so there is no last serial to give."))
    # PyPI answers nil for an empty journal, where the Simple index says 0.
    return None if listing.last_serial == 0 and not listing.names else listing.last_serial


async def read_index(context: CallContext, read: Callable[..., T], *args: Any, needs_serials: bool = False) -> T:
    """A read of the metadata index, once the refresher in this process (if any) has made its first pass."""
    meta = context.services.meta
    ready = context.services.changes_ready
    if ready is not None and not ready.is_set():
        await ready.wait()  # as a first call waits for the first load of the Simple index
    try:
        if needs_serials and await meta.run(lambda: meta.oldest_serial) is None:
            raise Refused(
                RuntimeError(
                    "The change index has not seen the upstream's Simple index with serials yet; "
                    "the change feed starts at the first refresh."
                )
            )
        return await meta.run(read, *args)
    except sqlite3.DatabaseError as exc:
        # Its writer (in another process) rebuilds a damaged file; until then, say so.
        logger.error("the metadata index cannot be read: %s", exc)
        raise Refused(RuntimeError("The change index cannot be read right now; its writer rebuilds it.")) from None


async def _rows(context: CallContext, read: Callable[[int], list[ChangeRow]], value: int) -> list[ChangeRow]:
    return await read_index(context, read, value, needs_serials=True)


async def changelog_since_serial(context: CallContext, serial: StrictInt) -> list[Any]:
    """`[name, version, timestamp, action, serial]` rows above `serial`, from the metadata index."""
    rows = await _rows(context, context.services.meta.rows_since, serial)
    return [[r.name, r.version, r.timestamp, clean_for_xml(r.action), r.serial] for r in rows]


async def list_packages_with_serial(context: CallContext) -> Raw:
    """Every project's display name and last serial, from the Simple index (PEP 691 JSON)."""
    snapshot = await _snapshot(context)
    serials = snapshot.listing.serials
    if serials is None:
        raise Refused(
            RuntimeError(
                "The upstream's Simple index gives no per-project serials (it is HTML only); use list_packages."
            )
        )
    names = snapshot.listing.names
    return _memo(context, snapshot, "list_packages_with_serial", lambda: dict(zip(names, serials, strict=True)))


# Package querying


async def package_roles(context: CallContext, package_name: StrictStr) -> list[Any]:
    """A project's roles, from the JSON API's `ownership`, in PyPI's order."""
    found = await _project(context, package_name)
    if found is None:
        return []
    _, doc = found
    if doc.ownership is None:
        raise Refused(RuntimeError("The upstream's JSON API does not publish project roles (no `ownership`)."))
    try:
        return roles_list(doc.ownership)
    except ValueError as exc:
        raise UpstreamMalformed(doc.url, str(exc)) from None


async def user_packages(context: CallContext, username: StrictStr) -> list[Any]:
    """`[role, project]` for every role a user holds, from the roles the metadata index read."""
    roles = await read_index(context, context.services.meta.roles_of, username)
    # PyPI: role_name descending, then the project name in database collation (close to case-insensitive).
    by_project = sorted(roles, key=lambda pair: (pair[1].casefold(), pair[1]))
    return [[role, project] for role, project in sorted(by_project, key=lambda pair: pair[0], reverse=True)]


async def browse(context: CallContext, classifiers: list[StrictStr]) -> list[Any]:
    """`[project, version]` for the releases carrying every listed classifier, by project then version."""
    releases = await read_index(context, context.services.meta.with_classifiers, list(classifiers))
    return [[name, version] for name, version in releases]


async def search(
    context: CallContext,
    spec: Mapping[StrictStr, StrictStr | list[StrictStr]],
    operator: StrictStr = "and",
) -> list[Any]:
    """pip search: names over every project, other fields over the metadata index (shim.discovery)."""
    return await search_hits(context, spec, operator)


async def list_packages(context: CallContext) -> Raw:
    """Every project's display name, from the Simple index."""
    snapshot = await _snapshot(context)
    return _memo(context, snapshot, "list_packages", lambda: snapshot.listing.names)


async def package_releases(context: CallContext, package_name: StrictStr, show_hidden: StrictBool = False) -> list[str]:
    """The latest release, or every release highest first, from the JSON API."""
    found = await _project(context, package_name)
    if found is None:
        return []
    _, doc = found
    if show_hidden:
        versions = doc.releases.keys() if doc.releases is not None else [doc.version]
        return legacy_sorted(versions)[::-1]
    # The JSON API picks a yanked release only when every release is yanked; PyPI answered [] then.
    return [] if doc.info.get("yanked") is True else [doc.version]


def _release_files(doc: ProjectDoc, version: str) -> list[dict[str, Any]] | None:
    """The files of exactly `version` (no PEP 440 matching: `3.0` is not `3.0.0`), or None."""
    if doc.releases is not None:
        return doc.releases.get(version)
    return doc.urls if doc.version == version else None


async def release_urls(context: CallContext, package_name: StrictStr, version: StrictStr) -> list[Any]:
    """A release's files, from the project document's `releases`."""
    found = await _project(context, package_name)
    if found is None:
        return []
    normalized, doc = found
    files = _release_files(doc, version)
    if files is None and doc.releases is None:
        release = await context.services.store.release(normalized, version)
        if release is not None and release.info["version"] == version:
            return [file_struct(f, release.url) for f in release.urls]
    return [file_struct(f, doc.url) for f in files or []]


def _metadata_file(files: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The file whose metadata PyPI's release fields came from: the first upload that has a metadata file.

    A file says so with `core-metadata` (or its older name); a mirror that says nothing may still serve
    one for a wheel, so a wheel without the keys is tried too.
    """

    def offers(file: dict[str, Any]) -> bool:
        flag = file.get("core-metadata", file.get("data-dist-info-metadata"))
        return bool(flag) if flag is not None else str(file["filename"]).endswith(".whl")

    candidates = [f for f in files if offers(f)]
    return min(candidates, key=lambda f: str(f.get("upload_time_iso_8601") or ""), default=None)


async def release_data(context: CallContext, package_name: StrictStr, version: StrictStr) -> dict[str, Any]:
    """A release's metadata: the JSON API's `info` for exactly that version, plus its core metadata file."""
    found = await _project(context, package_name)
    if found is None:
        return {}
    normalized, doc = found
    files = _release_files(doc, version)
    if files is None and doc.releases is not None:
        return {}  # a version the project does not have: answered without asking the upstream
    store = context.services.store
    chosen = _metadata_file(files or [])
    core = await store.core_metadata(normalized, urljoin(doc.url, str(chosen["url"]))) if chosen else None
    if doc.version == version:
        info = doc.info
    else:
        release = await store.release(normalized, version)
        if release is not None:
            if release.info["version"] != version:
                return {}
            info = release.info
        elif core is not None and core.info["version"] == version:
            info = {**core.info, "name": doc.name}
        else:
            raise Refused(
                RuntimeError(
                    f"The upstream offers no metadata for {doc.name} {version}: "
                    "no per-release JSON and no core metadata file."
                )
            )
    ordering = legacy_sorted(doc.releases).index(version) if doc.releases is not None else 0
    return release_data_struct(
        info, ordering=ordering, core=core.lists if core else None, base_url=context.services.base_url
    )


async def changelog(context: CallContext, since: StrictInt, with_ids: StrictBool = False) -> list[Any]:
    """Rows newer than a POSIX time, by serial: 4-tuples, or 5 with `with_ids` (actions not cleaned, as PyPI)."""
    rows = await _rows(context, context.services.meta.rows_after_time, since)
    if with_ids:
        return [[r.name, r.version, r.timestamp, r.action, r.serial] for r in rows]
    return [[r.name, r.version, r.timestamp, r.action] for r in rows]


async def package_hosting_mode(context: CallContext, package_name: StrictStr) -> str:
    """Every project was "pypi-only" once PyPI stopped hosting links."""
    return "pypi-only"


# Methods PyPI answers with a fixed fault in every era this service reproduces. Untyped, as in Warehouse.


async def package_data(context: CallContext, package_name: Any, version: Any) -> None:
    raise Refused(RuntimeError(f"This API has been deprecated. See {DEPRECATION_URL} for more information."))


async def package_urls(context: CallContext, package_name: Any, version: Any) -> None:
    raise Refused(RuntimeError(f"This API has been deprecated. See {DEPRECATION_URL} for more information."))


async def top_packages(context: CallContext, num: StrictInt | None = None) -> None:
    raise Refused(
        RuntimeError(f"This API has been removed. Use BigQuery instead. See {DEPRECATION_URL} for more information.")
    )


# Introspection and boxcarring: legacy PyPI's, never Warehouse's.


async def list_methods(context: CallContext) -> list[str]:
    """Every method name this endpoint answers, in this mode."""
    return context.table.names(context.mode)


def _known(context: CallContext, method_name: str) -> MethodSpec:
    spec = context.table.lookup(method_name, context.mode)
    if spec is None:
        raise Refused(ValueError(f"No method named {method_name!r}."))
    return spec


async def method_help(context: CallContext, method_name: StrictStr) -> str:
    """What a method answers and how that differs from PyPI."""
    spec = _known(context, method_name)
    return f"{spec.usage()}: {spec.summary} Fidelity: {spec.grade.value}. {spec.note}"


async def method_signature(context: CallContext, method_name: StrictStr) -> list[list[str]]:
    """A method's signatures, one per accepted number of arguments, return type first."""
    return _known(context, method_name).signatures()


class _SubCall(TypedDict):
    methodName: StrictStr
    params: list[Any]


_SUBCALLS = TypeAdapter(Annotated[list[_SubCall], Field(max_length=MULTICALL_LIMIT)])


async def multicall(context: CallContext, args: Any) -> list[Raw]:
    """Several calls in one request; each slot is `[result]` or a fault struct."""
    if context.nested:
        raise Refused(ValueError("system.multicall cannot be called from inside system.multicall."))
    try:
        calls = _SUBCALLS.validate_python(args, strict=True)
    except ValidationError as exc:
        # Errors inside the list carry the parameter's name, as in Warehouse's messages.
        raise BadArguments("; ".join(f"args: {error['msg']}" for error in exc.errors())) from None
    return [await context.subcall(call["methodName"], call["params"]) for call in calls]
