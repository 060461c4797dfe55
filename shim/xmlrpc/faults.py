"""XML-RPC faults, with PyPI's codes and strings (spec §2.1)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "APPLICATION_ERROR",
    "DOCUMENTED",
    "METHOD_NOT_FOUND",
    "NOT_WELL_FORMED",
    "SERVICE_UNAVAILABLE",
    "Fault",
    "FaultDoc",
]


class Fault(Exception):
    """A fault to send: `code` and `string` go on the wire as faultCode and faultString."""

    def __init__(self, code: int, string: str) -> None:
        super().__init__(code, string)
        self.code = code
        self.string = string

    def __repr__(self) -> str:
        return f"Fault({self.code}, {self.string!r})"

    @classmethod
    def wrapped(cls, text: str) -> Fault:
        """Warehouse's XMLRPCWrappedError: `<ExceptionClass>: <message>`."""
        return cls(-32500, text)

    @classmethod
    def invalid_params(cls, details: str) -> Fault:
        return cls(-32602, f"client error; {details}")


NOT_WELL_FORMED = Fault(-32700, "parse error; not well formed")
METHOD_NOT_FOUND = Fault(-32601, "server error; requested method not found")
APPLICATION_ERROR = Fault(-32500, "application error")
SERVICE_UNAVAILABLE = Fault(-32403, "server error; service unavailable")


@dataclass(frozen=True)
class FaultDoc:
    """One kind of fault as the docs list it: the fault (or its template) and when it is sent."""

    fault: Fault
    when: str


# Every fault the service sends, in dispatch's order; the README's and the status page's table come from here.
DOCUMENTED = (
    FaultDoc(NOT_WELL_FORMED, "The body is not an XML-RPC call, is unsafe XML, or is too large."),
    FaultDoc(METHOD_NOT_FOUND, "No such method in the request's mode."),
    FaultDoc(Fault.invalid_params("<parameter>: <problem>; …"), "Arguments missing, surplus or of the wrong type."),
    FaultDoc(
        Fault.wrapped("<ExceptionClass>: <message>"), "A deliberate refusal, in PyPI's words (e.g. a retired method)."
    ),
    FaultDoc(APPLICATION_ERROR, "Anything unexpected; logged with its traceback, never shown."),
    FaultDoc(
        SERVICE_UNAVAILABLE,
        "The upstream index cannot be reached or sent malformed data, the service is at its cap on calls in "
        "progress (with Retry-After), or the call ran past SHIM_CALL_TIMEOUT.",
    ),
)
