"""From a request body to a response body: look the method up, check its arguments, call it, and turn
every error into the fault PyPI would send. This is the only place errors become faults.

Order, as in Warehouse (spec §2.3): unparsable body (-32700); no such method in this mode (-32601);
argument types (-32602); the mode's fixed fault (-32500); within a multicall, a whole-index method's
repeat (-32500); the method; the upstream failing (-32403, as PyPI answered when its search backend
failed); anything unexpected (-32500 "application error", logged with its traceback, never shown to
the client).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pydantic import ValidationError

from shim import exchange
from shim.errors import BadArguments, Refused, UpstreamError
from shim.metrics.instruments import NO_METHOD, UNKNOWN_METHOD, Metrics
from shim.modes import Mode
from shim.xmlrpc.compressed import Deflated
from shim.xmlrpc.context import CallContext, Services
from shim.xmlrpc.faults import APPLICATION_ERROR, METHOD_NOT_FOUND, NOT_WELL_FORMED, SERVICE_UNAVAILABLE, Fault
from shim.xmlrpc.protocol import (
    NotWellFormed,
    Raw,
    WireError,
    dump_fault,
    dump_response,
    encode_value,
    parse_call,
    response_parts,
)
from shim.xmlrpc.ratelimit import RateLimiter
from shim.xmlrpc.table import MethodSpec, MethodTable, Refuse

__all__ = ["MULTICALL_MAX_BYTES", "ONCE_PER_MULTICALL", "TOO_BIG", "Answer", "AnswerBody", "Dispatcher"]

logger = logging.getLogger(__name__)


class Unserved(Enum):
    """Why the endpoint answers a request without dispatching it; which fault that is, is dispatch's to say."""

    WRONG_HTTP_METHOD = "wrong-http-method"  # Warehouse maps HTTPMethodNotAllowed to its application error
    BODY_REFUSED = "body-refused"  # too large, or in an encoding the service does not read: unparsable
    BUSY = "busy"  # past the cap on calls in progress
    TIMED_OUT = "timed-out"  # past SHIM_CALL_TIMEOUT


_UNSERVED_FAULTS = {
    Unserved.WRONG_HTTP_METHOD: APPLICATION_ERROR,
    Unserved.BODY_REFUSED: NOT_WELL_FORMED,
    Unserved.BUSY: SERVICE_UNAVAILABLE,
    Unserved.TIMED_OUT: SERVICE_UNAVAILABLE,
}


AnswerBody = bytes | Deflated | Raw


@dataclass
class Answer:
    # bytes; a whole-index answer as it is kept (Deflated); or a response holding one, in pieces (Raw)
    body: AnswerBody
    headers: dict[str, str] = field(default_factory=dict)
    spliced: bool = False  # a multicall slot holds a whole-index answer, inflated once as the response is written


@dataclass
class _Boxcar:
    """What one system.multicall has answered so far."""

    whole_index: set[str] = field(default_factory=set)  # the whole-index methods it has called
    size: int = 0  # bytes of the answers it holds
    full: bool = False  # an answer did not fit: the later slots are refused uncalled


# One whole-index answer per request: a multicall of 100 of them was 100 copies of megabytes.
ONCE_PER_MULTICALL = (
    "ValueError: {method} answers the whole index and may appear only once in a system.multicall; "
    "use individual requests instead."
)
# A cap on what one multicall holds: 100 slots of a big release_data each would still be 100 big answers.
MULTICALL_MAX_BYTES = 128 * 1024 * 1024
TOO_BIG = "ValueError: The answers of this system.multicall would pass {limit} bytes; use individual requests instead."


def _describe(spec: MethodSpec, error: ValidationError) -> str:
    """Warehouse's -32602 details: `<parameter>: <pydantic message>` joined by `; `.

    pydantic numbers positional arguments from 0, the context; a position past the signature (a surplus
    argument) and a missing argument's name are printed as pydantic gives them.
    """
    names = spec.argument_names
    parts = []
    for item in error.errors():
        where = item["loc"][0] if item["loc"] else ""
        label = names[where] if isinstance(where, int) and where < len(names) else str(where)
        parts.append(f"{label}: {item['msg']}")
    return "; ".join(parts)


async def _no_subcalls(method: Any, params: Any) -> Raw:
    raise AssertionError("only a method the table says calls others is given a way to call them")


class Dispatcher:
    """Answers XML-RPC calls from a method table; counts calls by method and faults by code."""

    def __init__(
        self,
        table: MethodTable,
        services: Services,
        *,
        domain: str,
        allow_i8: bool,
        search_fill_timeout: float,
        max_multicall_bytes: int = MULTICALL_MAX_BYTES,
        limiter: RateLimiter | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics if metrics is not None else Metrics()
        self.max_multicall_bytes = max_multicall_bytes
        self.limiter = limiter
        if limiter is not None:
            limiter.refused = self.metrics.rate_limited
        self.table = table
        self.services = services
        self.search_fill_timeout = search_fill_timeout
        self.domain = domain
        self.allow_i8 = allow_i8
        self.calls: Counter[str] = Counter()
        self.faults: Counter[int] = Counter()
        # A method that calls no other gets one context per mode (and nesting), built once: the same for every call.
        self._contexts = {
            (mode, nested): self._context(mode, nested, _no_subcalls) for mode in Mode for nested in (False, True)
        }

    async def handle(self, body: bytes, mode: Mode, client: str | None = None) -> Answer:
        """One request body in, one response body (and its rate-limit headers) out; never raises."""
        answer = Answer(b"")
        try:
            call = parse_call(body)
        except NotWellFormed as exc:
            logger.debug("unparsable XML-RPC body: %s", exc)
            answer.body = self._fault_bytes(NOT_WELL_FORMED, NO_METHOD)
            return answer
        in_progress = self.metrics.in_progress
        in_progress.inc()
        try:
            value = await self.invoke(call.method, call.params, mode, client=client, answer=answer)
            # A whole-index answer is its response already, kept deflated: the endpoint frames it per client.
            if isinstance(value, Deflated):
                answer.body = value
            elif answer.spliced:
                answer.body = response_parts(value, allow_i8=self.allow_i8)
            else:
                answer.body = dump_response(value, allow_i8=self.allow_i8)
            exchange.note_outcome(None)
        except Fault as fault:
            answer.body = self._fault_bytes(fault)
        except WireError:
            logger.exception("the answer of %s cannot be put on the wire", call.method)
            answer.body = self._fault_bytes(APPLICATION_ERROR, self._label(call.method))
        finally:
            in_progress.dec()
        return answer

    def _label(self, method: Any) -> str:
        """The metrics' name of `method`: a table's name, else one word for all others (a bounded label)."""
        return method if isinstance(method, str) and method in self.table.by_name else UNKNOWN_METHOD

    async def invoke(
        self,
        method: Any,
        params: Any,
        mode: Mode,
        *,
        boxcar: _Boxcar | None = None,
        client: str | None = None,
        answer: Answer | None = None,
    ) -> Any:
        """Call `method` with `params` in `mode` (as a slot of `boxcar`, a multicall); raise Fault for every
        failure. Each call is counted and timed under its method's name, its fault under its code."""
        spec = self.table.lookup(method, mode) if isinstance(method, str) else None
        if spec is None:
            # Not counted as a call by Warehouse (spec §4.1 case 2); the metrics count it (a table's name when the
            # method is one this mode has not, else one word for all).
            label = self._label(method)
            self.metrics.called(label, 0.0)
            self.metrics.faulted(label, METHOD_NOT_FOUND.code)
            raise METHOD_NOT_FOUND
        name = spec.name
        self.calls[name] += 1
        exchange.note_method(name, nested=boxcar is not None)
        started = time.perf_counter()
        try:
            return await self._invoke(spec, params, mode, boxcar, client, answer)
        except Fault as fault:
            self.metrics.faulted(name, fault.code)
            raise
        finally:
            self.metrics.called(name, time.perf_counter() - started)

    async def _invoke(
        self,
        spec: MethodSpec,
        params: Any,
        mode: Mode,
        boxcar: _Boxcar | None,
        client: str | None,
        answer: Answer | None,
    ) -> Any:
        name = spec.name
        if self.limiter is not None and client is not None:
            # Before the arguments are looked at, as PyPI does: every call to a method counts.
            verdict = await self.limiter.hit(client)
            if answer is not None:
                answer.headers = self.limiter.headers(verdict)
            if not verdict.allowed:
                raise Fault.wrapped(self.limiter.refusal(verdict))
        context = (
            self._context(mode, boxcar is not None, self._subcall_for(mode, client, answer))
            if spec.calls_others
            else self._contexts[mode, boxcar is not None]
        )
        try:
            spec.check_arguments(context, *params)
        except ValidationError as exc:
            raise Fault.invalid_params(_describe(spec, exc)) from None
        behaviour = spec.behaviour(mode)
        if isinstance(behaviour, Refuse):
            raise Fault.wrapped(behaviour.text(self.domain))
        assert spec.function is not None  # the table refuses a callable entry without one
        if boxcar is not None and spec.whole_index:
            if name in boxcar.whole_index:
                raise Fault.wrapped(ONCE_PER_MULTICALL.format(method=name))
            boxcar.whole_index.add(name)
        try:
            return await spec.function(context, *params)
        except Refused as exc:
            raise Fault.wrapped(str(exc)) from None
        except BadArguments as exc:
            raise Fault.invalid_params(exc.details) from None
        except UpstreamError as exc:
            logger.warning("%s: upstream failed: %s", name, exc)
            raise SERVICE_UNAVAILABLE from None
        except Fault:
            raise
        except Exception:
            logger.exception("%s failed", name)
            raise APPLICATION_ERROR from None

    def _context(self, mode: Mode, nested: bool, subcall: Any) -> CallContext:
        return CallContext(
            mode, self.table, self.services, self.domain, subcall, nested, self.allow_i8, self.search_fill_timeout
        )

    def _subcall_for(self, mode: Mode, client: str | None, answer: Answer | None) -> Any:
        boxcar = _Boxcar()  # one per call: only a multicall's calls use it

        async def subcall(method: Any, params: Any) -> Raw:
            # A multicall slot: `[result]`, or the fault struct the call would have answered.
            try:
                if boxcar.full:
                    raise Fault.wrapped(TOO_BIG.format(limit=self.max_multicall_bytes))
                value = await self.invoke(method, tuple(params), mode, boxcar=boxcar, client=client, answer=answer)
                if isinstance(value, Deflated):  # spliced as it is kept; inflated once, as the response is written
                    value = Raw(value.element())
                    if answer is not None:
                        answer.spliced = True
                slot = encode_value([value], allow_i8=self.allow_i8)
                if boxcar.size + slot.size > self.max_multicall_bytes:
                    boxcar.full = True
                    logger.warning("a multicall's answers would pass %d bytes at %s", self.max_multicall_bytes, method)
                    raise Fault.wrapped(TOO_BIG.format(limit=self.max_multicall_bytes))
                boxcar.size += slot.size
                return slot
            except Fault as fault:
                return self._fault_slot(fault)
            except WireError:
                logger.exception("the answer of %s cannot be put on the wire", method)
                return self._fault_slot(APPLICATION_ERROR)

        return subcall

    def unserved(self, why: Unserved) -> bytes:
        """The fault body for a request the endpoint answers without dispatching it (counted as any fault)."""
        fault = _UNSERVED_FAULTS[why]
        return self._fault_bytes(fault, NO_METHOD)

    def _fault_slot(self, fault: Fault) -> Raw:
        """A multicall slot holding `fault`, as the call alone would have answered it (counted as any fault)."""
        self.faults[fault.code] += 1
        return encode_value({"faultCode": fault.code, "faultString": fault.string})

    def _fault_bytes(self, fault: Fault, method: str | None = None) -> bytes:
        """A response holding `fault` (its code the request's outcome); one no call counted (`method` given) is
        counted here."""
        self.faults[fault.code] += 1
        if method is not None:
            self.metrics.faulted(method, fault.code)
        exchange.note_outcome(fault.code)
        return dump_fault(fault.code, fault.string)
