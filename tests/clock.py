"""A fake clock for the code under test, so that no test waits for real time to pass."""

from __future__ import annotations

import asyncio

__all__ = ["FakeClock"]


class FakeClock:
    """A monotonic clock, and the sleep that goes with it: time passes only when a sleep or the test moves it.

    The code under test reads it (`clock()`) and sleeps on it (`await clock.sleep(seconds)`). A sleep moves the
    clock on to its end at once, unless the clock is `held`: then the sleeper waits (on the event loop) until
    the test moves the clock past its end with `advance()`. Every sleep asked for is kept in `slept`, in order.
    """

    def __init__(self, start: float = 1000.0, *, held: bool = False) -> None:
        self.now = start
        self.held = held
        self.slept: list[float] = []
        self._sleepers: list[tuple[float, asyncio.Event]] = []
        self._arrived = asyncio.Event()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        end = self.now + max(0.0, seconds)
        if not self.held:
            self.now = end
            await asyncio.sleep(0)  # a sleep is still a point where other tasks run
            return
        woken = asyncio.Event()
        self._sleepers.append((end, woken))
        self._arrived.set()
        await woken.wait()

    def advance(self, seconds: float) -> None:
        """Move the clock on; every held sleep that ends by then wakes. Call it on the event loop when held."""
        self.now += seconds
        for end, woken in [s for s in self._sleepers if s[0] <= self.now]:
            self._sleepers.remove((end, woken))
            woken.set()

    async def until_sleeping(self, count: int) -> None:
        """Wait until `count` sleepers wait on the held clock (bounded: a test that goes wrong fails in 10 s)."""
        async with asyncio.timeout(10):
            while len(self._sleepers) < count:
                self._arrived.clear()
                await self._arrived.wait()
