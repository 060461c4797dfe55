"""One writer of the change feed per catalog file: an election among every process that may write it.

Each service process (every one of `--workers N`, every replica on the file) and `pypi-xmlrpc-shim catalog refresh`
takes part. The role is an exclusive `flock` on `<catalog>.writer.lock`, taken without waiting and held for the
process's life: the system releases it when the holder exits or dies (even by SIGKILL), so there is never a stale
lock to clear by hand. The holder writes its pid in the file, for the others' log and /healthz. The others stand
by: they never exit (so no supervisor restarts them in a loop), answer from the file the writer keeps, and try
again every few seconds; the first to get the lock takes over, continuing from the serials the catalog holds.

A lock is only as good as the file system's: on a local one it is exact. Over NFS, Linux turns `flock` into the
server's byte-range locks, which hold across clients only where the lock service works (a `nolock` mount makes
each client's lock local: two hosts would both write) and a dead client's lock lasts until its lease expires;
SQLite's WAL mode needs memory shared on one host anyway. One catalog file serves processes on one host.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

__all__ = ["Election", "lock_path"]

logger = logging.getLogger(__name__)

Role = Literal["writer", "standby"]

if sys.platform != "win32":  # Windows has no flock: one process per catalog file there
    import fcntl


def lock_path(catalog: Path) -> Path:
    """The lock beside the catalog that its writer holds."""
    return catalog.with_name(catalog.name + ".writer.lock")


class Election:
    """This process's part in the election of the catalog's writer."""

    def __init__(
        self,
        catalog: Path,
        *,
        retry: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.path = lock_path(catalog)
        self.retry = retry  # seconds between a standby's tries
        self.sleep = sleep
        self.role: Role | None = None  # None: not taking part (yet)
        self.writer_pid: int | None = None  # the holder's, as its lock file says (None: not known)
        self._fd: int | None = None
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def try_acquire(self) -> bool:
        """Take the role if no other process holds it; whether this process holds it now."""
        if self._held:
            return True
        if self._fd is None:
            self._fd = self._open()
            if self._fd is None:  # no lock to be had: this process writes, as a single one always did
                return self._elected()
        if sys.platform == "win32":
            return self._elected()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._standing_by(self._holder())
            return False
        except OSError as exc:  # ENOLCK: a network file system without its lock service
            logger.warning("the catalog's writer lock %s cannot be taken (%s): this process writes", self.path, exc)
            return self._elected()
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:  # a read-only lock file: the lock holds all the same, only the pid goes unsaid
            pass
        return self._elected()

    async def elected(self) -> None:
        """Return once this process holds the role, standing by until then."""
        while not self.try_acquire():
            await self.sleep(self.retry)

    def _open(self) -> int | None:
        if sys.platform == "win32":
            return None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError:
            try:  # another user's lock file: read-only, it still locks
                return os.open(self.path, os.O_RDONLY)
            except OSError:
                pass
        except OSError:
            pass
        logger.warning("the catalog's writer lock %s cannot be opened: this process writes, alone it hopes", self.path)
        return None

    def _holder(self) -> int | None:
        assert self._fd is not None
        try:
            text = os.pread(self._fd, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def _elected(self) -> bool:
        if self.role == "standby":
            logger.warning("taking over: this process (pid %d) now writes the catalog", os.getpid())
        elif self.role is None:
            logger.info("this process (pid %d) writes the catalog", os.getpid())
        self._held = True
        self.role = "writer"
        self.writer_pid = os.getpid()
        return True

    def _standing_by(self, holder: int | None) -> None:
        if self.role != "standby" or holder != self.writer_pid:  # once, and again when another takes the role
            writer = f"pid {holder}" if holder is not None else "another process"
            logger.info(
                "standing by: %s writes the catalog (%s); this process takes over when it stops", writer, self.path
            )
        self.role = "standby"
        self.writer_pid = holder

    def close(self) -> None:
        """Give up the role (and the lock) now, rather than at exit."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._held = False
