"""A background thread with a log the page follows: one shape for a local Run and a Job's handle.

The Train tab follows both the same way (lines(), start(), join()), so the thread plumbing lives
here once; each subclass builds its thread and writes its lines under `_lock`.
"""

from __future__ import annotations

import threading
from typing import TypeVar

W = TypeVar("W", bound="LoggedWorker")


class LoggedWorker:
    """Owns `_thread` (target set by the subclass), `_lines` and the `_lock` guarding them."""

    def __init__(self, thread: threading.Thread, lines: list[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._lines: list[str] = list(lines or [])
        self._thread = thread

    def lines(self, since: int = 0) -> list[str]:
        """The log lines from index `since` on (a page polling asks only for what is new)."""
        with self._lock:
            return self._lines[since:]

    def start(self: W) -> W:
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> bool:
        """True once the worker has ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()
