"""One spool, one pusher: an advisory file lock that says which process owns a person's spool.

    lock = SpoolLock(owner_dir / "pusher.lock")
    if lock.try_acquire(): ...      # this process pushes the spool (and deletes what it pushed)
    else: lock.holder_pid()         # another one does: hand it the takes (write them into the spool)

Why: the app and `python -m voxspace data push` on one data folder used to push the same spool;
whichever pushed a take first deleted its folder and the other failed on every retry. With the
lock, exactly one process pushes; the others only write takes into the spool (atomic renames, safe
to do beside the owner) and watch them leave. `flock` locks belong to the open file: the kernel
drops them when the owner exits, `kill -9` included, so a waiting process takes over at once.

`critical()` is a second, short lock around "read the spool and the ledger, pick the next seq,
write the take", so two processes never give two takes one sequence number.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


class SpoolLock:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Become the spool's pusher if nobody is; True when this process holds the lock."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as e:  # a file system without locks (some network mounts): assume one process
            log.warning("%s cannot be locked (%s); assuming this is the only process using it", self.path, e)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return True

    def holder_pid(self) -> int | None:
        """The pid of the process that holds the lock (as it wrote it), or None."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


@contextlib.contextmanager
def critical(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on `path` for a short critical section (blocking)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as e:
            if isinstance(e, BlockingIOError):
                raise
            log.debug("no lock on %s (%s): this file system has none", path, e)
        yield
    finally:
        os.close(fd)


__all__ = ["SpoolLock", "critical"]
