"""The shape of the method table: one `MethodSpec` per legacy method, as data.

Dispatch, introspection, the status page and the README's method table all read these entries; nothing
about a method is written down anywhere else.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from pydantic import ConfigDict, Strict, validate_call

from shim.modes import Mode

__all__ = [
    "Absent",
    "Argument",
    "Behaviour",
    "Grade",
    "MethodFunction",
    "MethodSpec",
    "MethodTable",
    "Refuse",
    "Serve",
]


class Grade(StrEnum):
    """How close an answer is to what PyPI gave (spec verdicts EXACT/CONST, NEAR, APPROX, NONE)."""

    EXACT = "exact"
    NEAR = "near"
    APPROXIMATE = "approximate"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Serve:
    """The method's function answers."""


@dataclass(frozen=True)
class Refuse:
    """A deliberate -32500 fault `<exception>: <message>`, after the arguments are checked.

    `message` may hold `{domain}`: the upstream index's host, taken at run time.
    """

    exception: str
    message: str

    def text(self, domain: str) -> str:
        return f"{self.exception}: {self.message.format(domain=domain)}"


@dataclass(frozen=True)
class Absent:
    """Not a method in this mode: -32601, before the arguments are looked at."""


Behaviour = Serve | Refuse | Absent

# Every method function takes the call's context first (as Warehouse's views take the request), then
# the XML-RPC parameters, annotated with pydantic's strict types.
MethodFunction = Callable[..., Awaitable[Any]]

# bool before int: a bool is an int to issubclass.
_XMLRPC_TYPE_NAMES = {bool: "boolean", str: "string", int: "int", float: "double", list: "array"}


def _xmlrpc_type(annotation: Any) -> str:
    """The XML-RPC type name of a parameter annotation, for system.methodSignature."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "any"
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _xmlrpc_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        names = {_xmlrpc_type(a) for a in typing.get_args(annotation) if a is not type(None)}
        return names.pop() if len(names) == 1 else "any"
    if origin is not None:
        annotation = origin
    if isinstance(annotation, type) and issubclass(annotation, Mapping | dict):
        return "struct"
    for python_type, name in _XMLRPC_TYPE_NAMES.items():
        if isinstance(annotation, type) and issubclass(annotation, python_type):
            return name
    return "any"


@dataclass(frozen=True)
class Argument:
    """A parameter of a method that has no function (it refuses in every mode): checked all the same, as
    Warehouse checks arguments before it refuses."""

    name: str
    annotation: Any = Any
    default: Any = inspect.Parameter.empty


@dataclass(frozen=True)
class MethodSpec:
    name: str
    function: MethodFunction | None  # the method's answer; None where no mode serves it
    returns: str  # XML-RPC type of the answer: array, struct, string, int, nil
    summary: str  # what it answers, one line
    grade: Grade
    note: str  # how the answer differs from PyPI's, one line
    restore: Behaviour = Serve()  # what the method does in each mode; most answer in both
    today: Behaviour = Serve()
    arguments: tuple[Argument, ...] = ()  # the parameters of a method without a function
    # Its answer covers the whole index (megabytes): a system.multicall may call it once.
    whole_index: bool = False
    # Its function calls other methods through its context (system.multicall): it gets a context of its own per call.
    calls_others: bool = False

    def __post_init__(self) -> None:
        serves = any(isinstance(b, Serve) for b in (self.restore, self.today))
        if serves and self.function is None:
            raise ValueError(f"{self.name}: a method that answers needs a function")
        if not serves and self.function is not None:
            raise ValueError(f"{self.name}: a function no mode calls; state its arguments instead")
        if self.function is not None and self.arguments:
            raise ValueError(f"{self.name}: the function's signature states the arguments")

    def behaviour(self, mode: Mode) -> Behaviour:
        if mode is Mode.RESTORE:
            return self.restore
        if mode is Mode.PYPI_TODAY:
            return self.today
        return Absent()

    @cached_property
    def parameters(self) -> tuple[inspect.Parameter, ...]:
        """The XML-RPC parameters: the function's after the context, or the stated arguments."""
        if self.function is None:
            kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
            return tuple(
                inspect.Parameter(a.name, kind, default=a.default, annotation=a.annotation) for a in self.arguments
            )
        return tuple(inspect.signature(self.function, eval_str=True).parameters.values())[1:]

    @cached_property
    def _checker(self) -> Callable[..., None]:
        # pydantic's validate_call over a synchronous twin of the function (same signature and
        # annotations): arguments are checked before the method body is even created, and a
        # ValidationError raised later, inside a method, can never pass for a client error.
        def twin(*args: Any, **kwargs: Any) -> None:
            return None

        context = inspect.Parameter("context", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Any)
        twin.__signature__ = inspect.Signature([context, *self.parameters])  # type: ignore[attr-defined]
        twin.__annotations__ = {p.name: p.annotation for p in (context, *self.parameters)}
        twin.__module__ = self.function.__module__ if self.function is not None else __name__
        twin.__name__ = twin.__qualname__ = self.name
        checker: Callable[..., None] = validate_call(config=ConfigDict(arbitrary_types_allowed=True))(twin)
        return checker

    @cached_property
    def _plain(self) -> tuple[int, tuple[type, ...]] | None:
        """How many parameters are required and each one's type, when all are strict str, int or bool (pydantic's
        StrictStr, StrictInt, StrictBool); None when any is another kind."""
        kinds = []
        for parameter in self.parameters:
            annotation = parameter.annotation
            if typing.get_origin(annotation) is not typing.Annotated:
                return None
            kind, *metadata = typing.get_args(annotation)
            if kind not in (str, int, bool) or metadata != [Strict()]:
                return None
            kinds.append(kind)
        required = sum(p.default is inspect.Parameter.empty for p in self.parameters)
        return required, tuple(kinds)

    def check_arguments(self, context: Any, *params: Any) -> None:
        """Raise pydantic's ValidationError unless `params` fit the signature, as Warehouse checks them."""
        plain = self._plain
        # Arguments of exactly the strict types, as many as the signature takes, are what pydantic accepts without a
        # word: spared its validation (a fifth of a cache-hit call). Anything else is pydantic's to judge and word.
        if plain is not None:
            required, kinds = plain
            if required <= len(params) <= len(kinds) and all(type(p) is k for p, k in zip(params, kinds, strict=False)):
                return
        self._checker(context, *params)

    @property
    def argument_names(self) -> list[str]:
        """Names by position, as pydantic numbers them: 0 is the context."""
        return ["context", *(p.name for p in self.parameters)]

    def signatures(self) -> list[list[str]]:
        """system.methodSignature: one signature per accepted arity, return type first."""
        required = [p for p in self.parameters if p.default is inspect.Parameter.empty]
        result = []
        for count in range(len(required), len(self.parameters) + 1):
            result.append([self.returns, *(_xmlrpc_type(p.annotation) for p in self.parameters[:count])])
        return result

    def usage(self) -> str:
        """`name(arg, [optional])`, for the docs."""
        parts = [p.name if p.default is inspect.Parameter.empty else f"[{p.name}]" for p in self.parameters]
        return f"{self.name}({', '.join(parts)})"


@dataclass(frozen=True)
class MethodTable:
    entries: tuple[MethodSpec, ...]
    by_name: dict[str, MethodSpec] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_name = {spec.name: spec for spec in self.entries}
        if len(by_name) != len(self.entries):
            raise ValueError("a method name appears twice in the table")
        object.__setattr__(self, "by_name", by_name)

    def __iter__(self) -> Iterator[MethodSpec]:
        return iter(self.entries)

    def lookup(self, name: str, mode: Mode) -> MethodSpec | None:
        """The entry answering `name` in `mode`, or None where the method does not exist there."""
        spec = self.by_name.get(name)
        if spec is None or isinstance(spec.behaviour(mode), Absent):
            return None
        return spec

    def names(self, mode: Mode) -> list[str]:
        return sorted(spec.name for spec in self.entries if not isinstance(spec.behaviour(mode), Absent))
