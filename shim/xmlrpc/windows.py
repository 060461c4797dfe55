"""The rate limits' moving windows in process: a `limits` storage, bounded, on the limiter's clock.

`limits`' MovingWindowRateLimiter counts over this storage in process, and over `limits`' own Redis storage when
replicas share one (shim.xmlrpc.ratelimit): the same strategy whichever holds the window, and the same rule as its
Redis script. A window is its client's newest `limit` timestamps at most; a new entry is refused while the oldest of
them is inside the window (so a refused hit past the N-th is not kept); entries live `window` seconds.

Not `limits`' MemoryStorage: it reads the wall clock itself (a test could not move it), and it expires its windows in a
background pass over every key, one thread hop per key, which falls behind under a flood of distinct clients and keeps
them all meanwhile (measured: 50 000 clients of a 1-second window were all still held 4.5 s later, the pass busy on
the default executor the catalog and the parsers use). Here a window whose newest entry has left it is forgotten as
the windows are written, in amortised constant time (no task, no thread), and at most `max_clients` are held, the
least recently counted forgotten first.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable

from limits.aio.storage import MovingWindowSupport, Storage

__all__ = ["MovingWindows"]


class MovingWindows(MovingWindowSupport, Storage):
    """The moving windows of one limit, in process. Only the moving window: the fixed-window counters of `limits`'
    other strategies are not kept here."""

    # MovingWindowSupport first: `limits`' Storage runs its bases' __init_subclass__ twice, which, with it first,
    # wraps acquire_entry and get_moving_window in its error wrapper twice (a microsecond a call).
    STORAGE_SCHEME = None  # built by the limiter, never from a storage URI

    def __init__(self, *, clock: Callable[[], float], max_clients: int) -> None:
        super().__init__()
        self.clock = clock
        self.max_clients = max_clients
        # In the order of their newest entries (a window moves to the end as one is added): the first to leave
        # their window, and the least recently counted, come first.
        self._windows: OrderedDict[str, list[float]] = OrderedDict()

    @property
    def base_exceptions(self) -> tuple[type[Exception], ...]:
        return ()  # nothing here fails as a storage does

    def __len__(self) -> int:
        """How many clients' windows are held."""
        return len(self._windows)

    def entries(self) -> int:
        """How many timestamps all the windows hold."""
        return sum(len(window) for window in self._windows.values())

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        now = self.clock()
        windows = self._windows
        window = windows.get(key)
        if window is None:
            if amount > limit:
                return False
            window = windows[key] = []
            if len(windows) > self.max_clients:
                windows.popitem(last=False)
        else:
            _drop_older(window, now - expiry)
            if len(window) + amount > limit:
                return False  # a refused hit is not kept: the window holds `limit` entries at most
            windows.move_to_end(key)
        window.extend([now] * amount)
        self._forget(now - expiry)
        return True

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = self.clock()
        window = self._windows.get(key)
        if window:
            _drop_older(window, now - expiry)
        if not window:
            return now, 0
        return window[0], len(window)

    def _forget(self, cutoff: float) -> None:
        """The windows whose newest entry has left them, first ones first: they hold nothing any more."""
        windows = self._windows
        while windows:
            key, window = next(iter(windows.items()))
            if window and window[-1] > cutoff:
                return
            del windows[key]

    async def check(self) -> bool:
        return True

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)

    async def reset(self) -> int | None:
        count = len(self._windows)
        self._windows.clear()
        return count

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        raise NotImplementedError("only moving windows are kept here: use MovingWindowRateLimiter")

    async def get(self, key: str) -> int:
        raise NotImplementedError("only moving windows are kept here: use MovingWindowRateLimiter")

    async def get_expiry(self, key: str) -> float:
        raise NotImplementedError("only moving windows are kept here: use MovingWindowRateLimiter")


def _drop_older(window: list[float], cutoff: float) -> None:
    """The entries at `cutoff` or before have left the window (oldest first): an entry lives `expiry` seconds."""
    if window and window[0] <= cutoff:
        del window[: bisect.bisect_right(window, cutoff)]
