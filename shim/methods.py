"""The legacy methods and `METHODS`, the table that describes each of them.

Signatures carry Warehouse's strict annotations, so pydantic checks arguments exactly as PyPI did.
The wording of every fixed fault is Warehouse's (spec §2.2); the table says, per mode, whether the
function answers, a fixed fault answers, or the method does not exist.

Known limitations, until the upstream client lands: the methods that need index data answer a
-32500 fault naming the method (`not_served_yet`), and their grade says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, StrictBool, StrictInt, StrictStr, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic reads only this one on Python < 3.12

from shim.context import CallContext
from shim.errors import BadArguments, Refused, not_served_yet
from shim.protocol import Raw
from shim.table import Absent, CacheTier, Grade, MethodSpec, MethodTable, Refuse, Serve

__all__ = ["DEPRECATION_URL", "METHODS", "MULTICALL_LIMIT"]

DEPRECATION_URL = "https://warehouse.pypa.io/api-reference/xml-rpc.html#deprecated-methods"
MULTICALL_LIMIT = 100


def _gone(method: str, instead: str) -> Refuse:
    return Refuse(
        "RuntimeError",
        f"PyPI no longer supports the XMLRPC {method} method. Use {instead} instead. "
        f"See {DEPRECATION_URL} for more information.",
    )


# Mirroring


async def changelog_last_serial(context: CallContext) -> int | None:
    """The index's last serial."""
    raise not_served_yet("changelog_last_serial")


async def changelog_since_serial(context: CallContext, serial: StrictInt) -> list[Any]:
    """Journal rows above `serial`."""
    raise not_served_yet("changelog_since_serial")


async def list_packages_with_serial(context: CallContext) -> dict[str, int]:
    """Every project's display name and last serial."""
    raise not_served_yet("list_packages_with_serial")


# Package querying


async def package_roles(context: CallContext, package_name: StrictStr) -> list[Any]:
    """A project's Owner and Maintainer roles."""
    raise not_served_yet("package_roles")


async def user_packages(context: CallContext, username: StrictStr) -> list[Any]:
    """The projects a user holds a role on."""
    raise not_served_yet("user_packages")


async def browse(context: CallContext, classifiers: list[StrictStr]) -> list[Any]:
    """Releases carrying every listed classifier."""
    raise not_served_yet("browse")


async def search(
    context: CallContext,
    spec: Mapping[StrictStr, StrictStr | list[StrictStr]],
    operator: StrictStr = "and",
) -> list[Any]:
    """pip search."""
    raise not_served_yet("search")


async def list_packages(context: CallContext) -> list[str]:
    """Every project's display name."""
    raise not_served_yet("list_packages")


async def package_releases(context: CallContext, package_name: StrictStr, show_hidden: StrictBool = False) -> list[str]:
    """The latest version, or every version."""
    raise not_served_yet("package_releases")


async def release_urls(context: CallContext, package_name: StrictStr, version: StrictStr) -> list[Any]:
    """A release's files."""
    raise not_served_yet("release_urls")


async def release_data(context: CallContext, package_name: StrictStr, version: StrictStr) -> dict[str, Any]:
    """A release's metadata."""
    raise not_served_yet("release_data")


async def changelog(context: CallContext, since: StrictInt, with_ids: StrictBool = False) -> list[Any]:
    """Journal rows newer than a timestamp."""
    raise not_served_yet("changelog")


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


METHODS = MethodTable(
    (
        MethodSpec(
            "changelog_last_serial",
            changelog_last_serial,
            returns="int",
            summary="The serial of the index's last change (`<nil/>` for an empty index).",
            grade=Grade.UNAVAILABLE,
            note="Not served yet; will come from the Simple index's `_last-serial`.",
            sources="Simple index",
            restore=Serve(),
            today=Serve(),
        ),
        MethodSpec(
            "changelog_since_serial",
            changelog_since_serial,
            returns="array",
            summary="`[name, version, timestamp, action, serial]` rows above `serial`, at most 50 000.",
            grade=Grade.UNAVAILABLE,
            note="Not served yet; no upstream API exposes PyPI's journal.",
            sources="Simple index, JSON API, RSS",
            restore=Serve(),
            today=Serve(),
        ),
        MethodSpec(
            "list_packages_with_serial",
            list_packages_with_serial,
            returns="struct",
            summary="`{display name: last serial}` for every project.",
            grade=Grade.UNAVAILABLE,
            note="Not served yet; will come from the Simple index.",
            sources="Simple index",
            restore=Serve(),
            today=Serve(),
            cache=CacheTier.ALL_PROJECTS,
        ),
        MethodSpec(
            "package_roles",
            package_roles,
            returns="array",
            summary="`[role, user]` for a project, Owners first, users case-insensitively.",
            grade=Grade.UNAVAILABLE,
            note="Not served yet; will come from the JSON API's `ownership`.",
            sources="JSON API",
            restore=Serve(),
            today=Serve(),
            cache=CacheTier.PROJECT,
        ),
        MethodSpec(
            "user_packages",
            user_packages,
            returns="array",
            summary="`[role, project]` for every role a user holds.",
            grade=Grade.UNAVAILABLE,
            note="Not served yet; no upstream API maps users to projects.",
            sources="none",
            restore=Serve(),
            today=Serve(),
        ),
        MethodSpec(
            "browse",
            browse,
            returns="array",
            summary="`[project, version]` for releases carrying every listed classifier.",
            grade=Grade.UNAVAILABLE,
            note="Not served yet; needs every release's classifiers.",
            sources="JSON API",
            restore=Serve(),
            today=Serve(),
        ),
        MethodSpec(
            "search",
            search,
            returns="array",
            summary="`{name, summary, version, _pypi_ordering}` for projects matching a spec (pip search).",
            grade=Grade.UNAVAILABLE,
            note="Not served yet. PyPI has refused it since 2020.",
            sources="Simple index, JSON API",
            restore=Serve(),
            today=Refuse(
                "RuntimeError",
                "PyPI no longer supports 'pip search' (or XML-RPC search). Please use https://{domain}/search "
                f"(via a browser) instead. See {DEPRECATION_URL} for more information.",
            ),
        ),
        MethodSpec(
            "list_packages",
            list_packages,
            returns="array",
            summary="Every project's display name.",
            grade=Grade.UNAVAILABLE,
            note="Not served yet; will come from the Simple index. PyPI has refused it since 2024.",
            sources="Simple index",
            restore=Serve(),
            today=_gone("list_packages", "Simple API"),
            cache=CacheTier.ALL_PROJECTS,
        ),
        MethodSpec(
            "package_releases",
            package_releases,
            returns="array",
            summary="`[latest version]`, or every version highest first with `show_hidden`.",
            grade=Grade.UNAVAILABLE,
            note="Not served yet; will come from the JSON API. PyPI has refused it since 2024.",
            sources="JSON API",
            restore=Serve(),
            today=_gone("package_releases", "JSON or Simple API"),
            cache=CacheTier.PROJECT,
        ),
        MethodSpec(
            "release_urls",
            release_urls,
            returns="array",
            summary="The files of the release with exactly that version string.",
            grade=Grade.UNAVAILABLE,
            note="Not served yet; will come from the JSON API. PyPI has refused it since 2024.",
            sources="JSON API",
            restore=Serve(),
            today=_gone("release_urls", "JSON or Simple API"),
            cache=CacheTier.PROJECT,
        ),
        MethodSpec(
            "release_data",
            release_data,
            returns="struct",
            summary="The 33-key metadata struct of the release with exactly that version string.",
            grade=Grade.UNAVAILABLE,
            note="Not served yet; will come from the JSON API. PyPI has refused it since 2024.",
            sources="JSON API, core metadata",
            restore=Serve(),
            today=_gone("release_data", "JSON or Simple API"),
            cache=CacheTier.PROJECT,
        ),
        MethodSpec(
            "changelog",
            changelog,
            returns="array",
            summary="`[name, version, timestamp, action(, serial)]` rows newer than a timestamp.",
            grade=Grade.UNAVAILABLE,
            note="Not served yet. PyPI has refused it since 2023.",
            sources="Simple index, JSON API, RSS",
            restore=Serve(),
            today=Refuse("ValueError", "The changelog method has been deprecated, use changelog_since_serial instead."),
        ),
        MethodSpec(
            "package_hosting_mode",
            package_hosting_mode,
            returns="string",
            summary='`"pypi-only"`, for any name.',
            grade=Grade.EXACT,
            note="PyPI's constant; removed from PyPI in 2024 (-32601 in pypi-today mode).",
            sources="none",
            restore=Serve(),
            today=Absent(),
        ),
        MethodSpec(
            "package_data",
            package_data,
            returns="nil",
            summary="Always PyPI's deprecation fault.",
            grade=Grade.EXACT,
            note="PyPI's fault, word for word; use release_data.",
            sources="none",
            restore=Serve(),
            today=Serve(),
        ),
        MethodSpec(
            "package_urls",
            package_urls,
            returns="nil",
            summary="Always PyPI's deprecation fault.",
            grade=Grade.EXACT,
            note="PyPI's fault, word for word; use release_urls.",
            sources="none",
            restore=Serve(),
            today=Serve(),
        ),
        MethodSpec(
            "top_packages",
            top_packages,
            returns="nil",
            summary="Always PyPI's fault pointing to BigQuery.",
            grade=Grade.EXACT,
            note="PyPI's fault, word for word; no upstream API has download counts.",
            sources="none",
            restore=Serve(),
            today=Serve(),
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
            list_methods,
            returns="array",
            summary="The names of the methods this endpoint answers in the request's mode.",
            grade=Grade.EXACT,
            note="Legacy PyPI's introspection, read from this table; Warehouse answers -32601.",
            sources="none",
            restore=Serve(),
            today=Absent(),
        ),
        MethodSpec(
            "system.methodHelp",
            method_help,
            returns="string",
            summary="A method's usage, answer, fidelity and difference from PyPI.",
            grade=Grade.EXACT,
            note="Legacy PyPI's introspection, read from this table; Warehouse answers -32601.",
            sources="none",
            restore=Serve(),
            today=Absent(),
        ),
        MethodSpec(
            "system.methodSignature",
            method_signature,
            returns="array",
            summary="A method's signatures, one per accepted number of arguments.",
            grade=Grade.EXACT,
            note="Legacy PyPI's introspection, read from this table; Warehouse answers -32601.",
            sources="none",
            restore=Serve(),
            today=Absent(),
        ),
        MethodSpec(
            "system.multicall",
            multicall,
            returns="array",
            summary=f"Up to {MULTICALL_LIMIT} calls in one request; each slot `[result]` or a fault struct.",
            grade=Grade.EXACT,
            note="Legacy PyPI's boxcarring; no nesting; each sub-call counts as a call. "
            "Warehouse refuses it (pypi-today mode).",
            sources="as each sub-call",
            restore=Serve(),
            today=Refuse("ValueError", "MultiCall requests have been deprecated, use individual requests instead."),
        ),
    )
)
