"""The shape of one setting: its name (whence its variable and option), parser, meaning, default and how the docs
show that default. The registry (shim.config.registry) holds one of these per setting."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from shim.config import parsers

__all__ = ["LogClient", "LogFormat", "LogLevel", "Setting"]

T = TypeVar("T")


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(StrEnum):
    TEXT = "text"  # for a terminal
    JSON = "json"  # one object per line, for a log collector


class LogClient(StrEnum):
    ADDRESS = "address"
    HASH = "hash"  # tells clients apart without keeping their addresses


class EventLoop(StrEnum):
    AUTO = "auto"  # uvloop where it is installed, else asyncio's own
    ASYNCIO = "asyncio"
    UVLOOP = "uvloop"


@dataclass(frozen=True)
class Setting(Generic[T]):
    name: str
    parse: Callable[[str], T]
    meaning: str
    default: T | None = None
    # A default that depends on the environment, and the words that describe it in the docs.
    computed: Callable[[Mapping[str, str]], T] | None = None
    shown: str = ""
    note: str = ""  # a word after a value default in the docs: `0` (off)
    metavar: str = "VALUE"
    secret: bool = False  # never quoted back, not even in an error
    former: tuple[str, ...] = ()  # earlier names, still read, with a warning that names this one
    required: bool = False  # no default the settings object can take by itself (the upstream)

    @property
    def env(self) -> str:
        return "SHIM_" + self.name.upper()

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def default_for(self, environ: Mapping[str, str]) -> T | None:
        return self.computed(environ) if self.computed is not None else self.default

    @property
    def default_doc(self) -> str:
        """The default as the help, the README and the status page show it."""
        if self.computed is not None or self.shown:
            return self.shown
        value: Any = self.default
        if value is None or value == ():
            return "none"
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = parsers.show_number(value)
        else:
            text = str(value)
        extra = self.note or (_binary_size(value) if self.metavar == "BYTES" else "")
        return f"`{text}`" + (f" ({extra})" if extra else "")


def _binary_size(value: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= size and value % size == 0:
            return f"{value // size} {unit}"
    return ""
