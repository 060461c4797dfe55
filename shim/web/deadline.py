"""A deadline that may move, on one timer: `asyncio.timeout`'s cut-off for a request's two bounds (its body's, then
its call's) without a timer set and cancelled per bound.

Moving the deadline later costs nothing until the timer fires: it then sets itself again for the time left, which
happens only for a call still running when the body's bound passes. On a cache hit the two timers and the
context-manager bookkeeping of `asyncio.timeout` were a sixth of the call.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

__all__ = ["Deadline"]


class Deadline:
    """`async with Deadline(seconds) as deadline:` cancels the task when the deadline passes and raises TimeoutError
    in its place, as `asyncio.timeout` does; `deadline.move(seconds)` sets it anew, counted from now."""

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._when = self._loop.time() + seconds
        self._expired = False

    async def __aenter__(self) -> Deadline:
        task = asyncio.current_task()
        assert task is not None, "a deadline needs a task to cut off"
        self._task = task
        self._cancelling = task.cancelling()
        self._armed = self._when
        self._handle = self._loop.call_at(self._when, self._fire)
        return self

    def move(self, seconds: float) -> None:
        self._when = self._loop.time() + seconds
        if self._when < self._armed:  # sooner than the timer: only a timer set anew fires in time
            self._handle.cancel()
            self._armed = self._when
            self._handle = self._loop.call_at(self._when, self._fire)

    def _fire(self) -> None:
        if self._loop.time() < self._when:  # moved later since the timer was set
            self._armed = self._when
            self._handle = self._loop.call_at(self._when, self._fire)
            return
        self._expired = True
        self._task.cancel()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._handle.cancel()
        # Our cancellation, and no other pending (uncancel() counts them): it is a timeout. Else it passes on as is.
        if self._expired and self._task.uncancel() <= self._cancelling and kind is asyncio.CancelledError:
            raise TimeoutError from exc
