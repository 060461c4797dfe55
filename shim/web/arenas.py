"""Fewer malloc arenas: the heap a thread frees into is one the whole process can use again.

glibc gives each thread that allocates while another holds the heap an arena of its own, up to eight per core, and
memory freed in one arena serves only that arena's next allocations. The Simple index is parsed, and the
whole-index answers built, in worker threads: at the real index's size the arenas they left held about 25 MB more
after the whole-index calls (measured by scripts/bench.py). Two arenas, as `MALLOC_ARENA_MAX=2` sets them (a
common setting for Python services); an operator's own `MALLOC_ARENA_MAX` is left as it is, and elsewhere than
glibc nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["ARENAS", "fewer_malloc_arenas"]

ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h


def fewer_malloc_arenas() -> bool:
    """Cap the process's malloc arenas at ARENAS (before its threads start); whether it was done."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, ARENAS))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt of this kind)
        return False
