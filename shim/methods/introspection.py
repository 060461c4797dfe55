"""Introspection and boxcarring: legacy PyPI's `system.*` methods, read from the method table (never Warehouse's)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StrictStr, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic reads only this one on Python < 3.12

from shim.errors import BadArguments, Refused
from shim.xmlrpc.context import CallContext
from shim.xmlrpc.protocol import Raw
from shim.xmlrpc.table import MethodSpec

__all__ = ["MULTICALL_LIMIT", "list_methods", "method_help", "method_signature", "multicall"]

MULTICALL_LIMIT = 100


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
