"""When the next commit to a repo may go: the Hub allows 128 commits per hour per repo.

    budget = CommitBudget(BudgetConfig())
    wait = budget.wait_s()          # 0.0: commit now; else how long to keep collecting takes
    budget.spent()                  # after each commit that landed
    budget.rate_limited(2580.0)     # after a 429: nothing goes until Retry-After has passed

A token bucket: `burst` commits may go back to back (a take reaches the Hub within seconds while
the budget is ample), then one every 3600 / rate seconds, each carrying every take that waited.
Because a bucket never lets more than burst + rate × T commits through in any span of T seconds,
burst + rate ≤ limit − reserve guarantees the hourly limit with `reserve` commits left per hour for
other writers (the person's second device, the CLI, a dataset-card edit on the website).

One person recording a take every 5 s for two hours therefore makes about burst + 2 × rate commits
(e.g. 16 + 2 × 96), never meets a 429, and waits at most 3600 / rate seconds (37.5 s) for the Hub.
A 429 always wins: its Retry-After is honoured and the bucket restarts empty (a restarted process
starts with a full bucket; the reserve and the 429 cover the commits its predecessor made).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

HUB_COMMITS_PER_HOUR = 128  # the Hub's limit per repo (its 429: "... repository commits (128 per hour)")


@dataclass(frozen=True)
class BudgetConfig:
    """The commit budget of one repo. `speed` > 1 runs its clock faster (tests, bench only)."""

    limit_per_hour: int = HUB_COMMITS_PER_HOUR
    reserve_per_hour: int = 16  # left for other writers to the same repo
    burst: int = 16  # commits that may go back to back while the budget is full
    max_files_per_commit: int = 100  # the Hub's advice: 50-100 files per commit
    speed: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.burst < self.limit_per_hour - self.reserve_per_hour:
            raise ValueError("burst must be positive and leave room for a steady rate under the limit")

    @property
    def rate_per_hour(self) -> int:
        """Steady commits per hour once the burst is spent."""
        return self.limit_per_hour - self.reserve_per_hour - self.burst

    @property
    def interval_s(self) -> float:
        """Seconds between commits at the steady rate (in budget time)."""
        return 3600.0 / self.rate_per_hour


class CommitBudget:
    """The token bucket for one repo, safe to share between the pusher and the page's reads."""

    def __init__(self, config: BudgetConfig | None = None, *, clock: Callable[[], float] | None = None):
        self.config = config or BudgetConfig()
        self._clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._tokens = float(self.config.burst)
        self._at = self._now()
        self._blocked_until = 0.0  # a 429's Retry-After, in budget time

    def _now(self) -> float:
        return self._clock() * self.config.speed

    def _refill(self, now: float) -> None:
        rate_per_s = self.config.rate_per_hour / 3600.0
        elapsed = max(0.0, now - self._at)  # nothing accrues while a 429 holds commits back
        self._tokens = min(float(self.config.burst), self._tokens + elapsed * rate_per_s)
        self._at = max(self._at, now)

    def wait_s(self) -> float:
        """Budget seconds until a commit may go (0.0: now). Real seconds: `real_s(wait_s())`."""
        with self._lock:
            now = self._now()
            self._refill(now)
            if now < self._blocked_until:
                return self._blocked_until - now
            if self._tokens >= 1.0:
                return 0.0
            return (1.0 - self._tokens) * 3600.0 / self.config.rate_per_hour

    def real_s(self, budget_s: float) -> float:
        return budget_s / self.config.speed

    def spent(self) -> None:
        """One commit landed."""
        with self._lock:
            self._refill(self._now())
            self._tokens -= 1.0  # may go below zero after a forced commit: the wait grows to match

    def rate_limited(self, retry_after_s: float | None) -> None:
        """The Hub answered 429: nothing goes before Retry-After (default: one steady interval),
        and the bucket restarts empty, since someone else is spending this repo's hour."""
        wait = retry_after_s if retry_after_s and retry_after_s > 0 else self.config.interval_s
        with self._lock:
            now = self._now()
            self._refill(now)
            self._blocked_until = max(self._blocked_until, now + wait)
            self._tokens = min(self._tokens, 0.0)
            self._at = max(self._at, self._blocked_until)  # no refill while blocked

    def blocked_s(self) -> float:
        """Budget seconds a 429 still holds every commit back (0.0 when none does)."""
        with self._lock:
            return max(0.0, self._blocked_until - self._now())


__all__ = ["HUB_COMMITS_PER_HOUR", "BudgetConfig", "CommitBudget"]
