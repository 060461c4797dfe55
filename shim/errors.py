"""What method functions raise; only dispatch turns these into XML-RPC faults.

ShimError
├── Refused            a deliberate refusal: -32500 "<ExceptionClass>: <message>"
└── BadArguments       arguments a method checks itself: -32602 "client error; <details>"
"""

from __future__ import annotations

__all__ = [
    "BadArguments",
    "Refused",
    "ShimError",
    "UpstreamError",
    "UpstreamMalformed",
    "UpstreamUnavailable",
]


class ShimError(Exception):
    """Base of the errors a method may raise on purpose."""


class Refused(ShimError):
    """The method refuses, as Warehouse's XMLRPCWrappedError does: the fault names `exception`'s class."""

    def __init__(self, exception: Exception) -> None:
        super().__init__(f"{type(exception).__name__}: {exception}")
        self.exception = exception


class BadArguments(ShimError):
    """Arguments that pass the signature's types but not the method's own checks."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


class UpstreamError(ShimError):
    """The upstream index did not give a usable answer: dispatch answers -32403, as PyPI did for search."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class UpstreamUnavailable(UpstreamError):
    """No answer: connection failure, timeout, or a 5xx/429/unexpected status."""


class UpstreamMalformed(UpstreamError):
    """An answer that is not what the upstream's API promises (bad JSON, missing keys)."""
