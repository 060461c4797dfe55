"""Timers for bounds that move: `MovableTimer`, one loop timer per bound however often it moves, and `Deadline`,
`asyncio.timeout`'s cut-off on it for a request's two bounds (its body's, then its call's).

Moving a bound later costs nothing until the timer fires: it then sets itself again for the time left. Only a
bound moved sooner sets the timer anew. On a cache hit, a timer set and cancelled per bound (the request's two in
the app, the connection guards' two per keep-alive request) cost as much as a sixth of the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType

__all__ = ["Deadline", "MovableTimer"]


class MovableTimer:
    """Calls `expired()` once the bound last set (loop time) has passed, unless it was cleared first."""

    __slots__ = ("_armed", "_expired", "_handle", "_loop", "due")

    def __init__(self, loop: asyncio.AbstractEventLoop, expired: Callable[[], None]) -> None:
        self._loop = loop
        self._expired = expired
        self._handle: asyncio.TimerHandle | None = None
        self._armed = 0.0  # when the loop timer fires
        self.due: float | None = None  # when the bound passes (None: no bound)

    def set(self, when: float) -> None:
        self.due = when
        if self._handle is None or self._armed > when:  # sooner than the timer: set it anew
            if self._handle is not None:
                self._handle.cancel()
            self._arm(when)

    def clear(self) -> None:
        """No bound for now: the timer, if set, finds none when it fires."""
        self.due = None

    def cancel(self) -> None:
        """No bound, and no timer left to fire: for good."""
        self.due = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self, when: float) -> None:
        self._armed = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if self.due is None:
            return
        if self._loop.time() < self.due:  # moved later since the timer was set
            self._arm(self.due)
            return
        self.due = None
        self._expired()


class Deadline:
    """`async with Deadline(seconds) as deadline:` cancels the task when the deadline passes and raises TimeoutError
    in its place, as `asyncio.timeout` does; `deadline.move(seconds)` sets it anew, counted from now."""

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._first = self._loop.time() + seconds
        self._expired = False
        self._timer = MovableTimer(self._loop, self._expire)

    async def __aenter__(self) -> Deadline:
        task = asyncio.current_task()
        assert task is not None, "a deadline needs a task to cut off"
        self._task = task
        self._cancelling = task.cancelling()
        self._timer.set(self._first)
        return self

    def move(self, seconds: float) -> None:
        self._timer.set(self._loop.time() + seconds)

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._timer.cancel()
        # Our cancellation, and no other pending (uncancel() counts them): it is a timeout. Else it passes on as is.
        if self._expired and self._task.uncancel() <= self._cancelling and kind is asyncio.CancelledError:
            raise TimeoutError from exc
