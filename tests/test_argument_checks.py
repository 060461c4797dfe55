"""Arguments of exactly the strict types are accepted without pydantic's validation, and only those pydantic
accepts: every other argument list is still judged and worded by pydantic, as Warehouse's are."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from pydantic import ValidationError

from shim.methods.table import METHODS

POOL: list[Any] = ["httpx", "", 0, 7, -1, True, False, 1.5, None, [], {}]


def _accepted(check: Any, params: tuple[Any, ...]) -> bool:
    try:
        check(None, *params)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("spec", [s for s in METHODS if s.name != "system.multicall"], ids=lambda s: s.name)
def test_the_quick_check_accepts_exactly_what_pydantic_accepts(spec: Any) -> None:
    arity = len(spec.parameters)
    for count in range(arity + 2):
        for params in itertools.product(POOL, repeat=count):
            assert _accepted(spec.check_arguments, params) == _accepted(spec._checker, params), (spec.name, params)
