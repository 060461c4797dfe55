"""Deterministic project names at the real index's size (927,088), in a realistic mix: lower and upper case,
hyphens, underscores, dots, digits, 2 to 60 characters; their normalised forms are unique, as the index's are."""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Callable

__all__ = ["REAL_SIZE", "big_names", "simple_json"]

REAL_SIZE = 927_088

_PARTS = [
    "py",
    "django",
    "flask",
    "data",
    "tool",
    "lib",
    "api",
    "client",
    "async",
    "test",
    "utils",
    "core",
    "web",
    "json",
    "http",
    "sql",
    "cli",
    "aws",
    "graph",
    "ml",
    "net",
    "image",
    "text",
    "auth",
    "cache",
    "queue",
    "log",
    "config",
    "parse",
    "stream",
    "crypto",
    "geo",
    "time",
    "math",
    "plot",
    "yaml",
    "xml",
    "db",
    "redis",
    "kit",
]
_SEPARATORS = "--__.-_."
_RUNS = re.compile(r"[-_.]+")


@functools.cache
def big_names(count: int = REAL_SIZE, seed: int = 15) -> tuple[str, ...]:
    rng = random.Random(seed)
    letters = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=1 << 16))  # random words are slices of it
    seen: set[str] = set()
    names: list[str] = []
    while len(names) < count:
        bits = rng.getrandbits(64)
        parts = [_PARTS[(bits >> (6 * k)) % len(_PARTS)] for k in range(1 + (bits >> 24) % 4)]
        if bits >> 26 & 1:
            parts.append(str((bits >> 27) % 10 ** (1 + (bits >> 41) % 4)))
        if bits >> 43 & 3 == 0:
            start = (bits >> 45) % 60_000
            parts.append(letters[start : start + 2 + (bits >> 20) % 29])
        name = ("" if bits >> 61 == 7 else _SEPARATORS[bits >> 61]).join(parts)
        case = (bits >> 58) % 8
        name = name.title() if case == 0 else name.upper() if case == 1 else name
        name = name[: 2 + (bits >> 52) % 59].strip("-_.")
        normalized = _RUNS.sub("-", name).lower()
        if len(name) >= 2 and normalized not in seen:
            seen.add(normalized)
            names.append(name)
    return tuple(names)


def simple_json(
    names: tuple[str, ...] | list[str], serial_of: Callable[[int], int] = lambda i: 1_000 + 17 * i
) -> bytes:
    """A PEP 691 project list of `names` as Warehouse writes it."""
    projects = [{"name": name, "_last-serial": serial_of(i)} for i, name in enumerate(names)]
    last = max((serial_of(i) for i in range(len(names))), default=0)
    return json.dumps({"meta": {"_last-serial": last, "api-version": "1.1"}, "projects": projects}).encode()
