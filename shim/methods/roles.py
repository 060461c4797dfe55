"""Roles and users: a project's roles from its JSON, a user's roles from the catalog."""

from __future__ import annotations

from typing import Any

from pydantic import StrictStr

from shim.errors import Refused, UpstreamMalformed
from shim.methods.reading import project, read_catalog
from shim.methods.structs import roles_list
from shim.xmlrpc.context import CallContext

__all__ = ["package_roles", "user_packages"]


async def package_roles(context: CallContext, package_name: StrictStr) -> list[Any]:
    """A project's roles, from the JSON API's `ownership`, in PyPI's order."""
    found = await project(context, package_name)
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
    """`[role, project]` for every role a user holds, from the roles the catalog read."""
    roles = await read_catalog(context, context.services.catalog.roles_of, username)
    # PyPI: role_name descending, then the project name in database collation (close to case-insensitive).
    by_project = sorted(roles, key=lambda r: (r.project.casefold(), r.project))
    return [[r.role, r.project] for r in sorted(by_project, key=lambda r: r.role, reverse=True)]
