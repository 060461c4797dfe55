"""The request deadline: cut off as asyncio.timeout cuts off, on one timer that moves."""

from __future__ import annotations

import asyncio

import pytest

from shim.web.deadline import Deadline

TICK = 0.02


async def _cut_off(first: float, then: float | None, work: float) -> bool:
    """Whether `work` seconds of waiting are cut off under a deadline of `first` seconds, moved to `then`."""
    try:
        async with Deadline(first) as deadline:
            if then is not None:
                deadline.move(then)
            await asyncio.sleep(work)
    except TimeoutError:
        return True
    return False


@pytest.mark.parametrize(
    ("first", "then", "work", "cut"),
    [
        (TICK, None, 10 * TICK, True),
        (10 * TICK, None, TICK, False),
        (TICK, 50 * TICK, 5 * TICK, False),  # moved later: the first timer re-arms instead of firing
        (TICK, 3 * TICK, 20 * TICK, True),  # moved later, and passed all the same
        (20 * TICK, TICK, 10 * TICK, True),  # moved sooner: a timer set anew fires in time
    ],
)
def test_a_deadline_cuts_off_what_passes_it_where_it_was_last_moved(
    first: float, then: float | None, work: float, cut: bool
) -> None:
    assert asyncio.run(_cut_off(first, then, work)) is cut


def test_a_cancellation_from_elsewhere_passes_through_as_a_cancellation() -> None:
    async def main() -> None:
        async def guarded() -> None:
            async with Deadline(10):
                await asyncio.sleep(10)

        task = asyncio.create_task(guarded())
        await asyncio.sleep(TICK)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_after_a_timeout_the_task_goes_on_uncancelled() -> None:
    async def main() -> str:
        with pytest.raises(TimeoutError):
            async with Deadline(TICK):
                await asyncio.sleep(10)
        await asyncio.sleep(0)  # no cancellation left pending for the next await
        return "went on"

    assert asyncio.run(main()) == "went on"
