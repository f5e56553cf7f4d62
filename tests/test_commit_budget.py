"""Commits paced under the Hub's 128 per hour per repo: a real recording pace never meets a 429,
and a 429's Retry-After is honoured without a single extra request."""

from __future__ import annotations

import io
import itertools
import time

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import USERS
from tests.support.hub_server import HubServer
from voxspace.auth import Identity
from voxspace.commit_budget import BudgetConfig, CommitBudget
from voxspace.layout import read_folder
from voxspace.store import TakeStore


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


pytestmark = pytest.mark.usefixtures("close_stores")


def _commits_per_window(times: list[float], window: float = 3600.0) -> int:
    """The most commits in any `window` seconds (a window starting at each commit)."""
    times = sorted(times)
    return max((sum(s <= t < s + window for t in times) for s in times), default=0)


def test_bucket_bursts_then_paces_and_never_exceeds_the_hour():
    clock = FakeClock()
    config = BudgetConfig()
    budget = CommitBudget(config, clock=clock)
    commits, pending = [], 0
    for _ in range(2 * 3600 // 5):  # a take every 5 s for two hours; the pusher sends when allowed
        pending += 1
        if budget.wait_s() == 0.0:
            budget.spent()
            commits.append(clock.t)
            pending = 0
        clock.t += 5
    assert commits[: config.burst] == [1000.0 + 5 * i for i in range(config.burst)]  # at once while ample
    assert _commits_per_window(commits) <= config.limit_per_hour - config.reserve_per_hour
    steady = np.diff(commits[config.burst + 10 :])
    assert steady.max() <= config.interval_s + 5  # a waiting take goes up within one interval
    assert len(commits) < 2 * config.limit_per_hour


def test_retry_after_blocks_every_commit_until_it_has_passed():
    clock = FakeClock()
    budget = CommitBudget(BudgetConfig(), clock=clock)
    budget.rate_limited(2580)
    assert budget.wait_s() == pytest.approx(2580)
    clock.t += 2579
    assert budget.wait_s() == pytest.approx(1)
    clock.t += 1
    # Then the bucket starts empty: someone else spent this repo's hour.
    assert budget.wait_s() == pytest.approx(BudgetConfig().interval_s)
    budget.rate_limited(None)  # a 429 without Retry-After still waits one steady interval
    assert budget.wait_s() >= BudgetConfig().interval_s


def test_config_refuses_a_burst_that_leaves_no_steady_rate():
    with pytest.raises(ValueError):
        BudgetConfig(burst=120)


def test_the_local_hub_answers_429_with_retry_after_once_the_hour_is_spent(tmp_path):
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    assert HubServer(tmp_path / "default").commits_per_hour == 128  # the Hub's own limit, by default
    clock = FakeClock()
    hub = HubServer(tmp_path / "hub", users=USERS, commit_clock=clock, commits_per_hour=4)
    hub.start()
    try:
        token = next(t for t, name in USERS.items() if name == "alice")
        api = HfApi(endpoint=hub.url, token=token)
        api.create_repo("alice/limited", repo_type="dataset")
        for i in range(4):
            api.create_commit(
                "alice/limited",
                [CommitOperationAdd(f"f{i}.txt", b"x")],
                commit_message="c",
                repo_type="dataset",
            )
            clock.t += 10
        with pytest.raises(HfHubHTTPError) as e:
            api.create_commit(
                "alice/limited",
                [CommitOperationAdd("late.txt", b"x")],
                commit_message="c",
                repo_type="dataset",
            )
        assert e.value.response.status_code == 429
        assert "exceeded the rate limit for repository commits (4 per hour)" in str(e.value)
        assert int(e.value.response.headers["Retry-After"]) == 3600 - 40 + 1
        assert hub.commits_in_last_hour("alice/limited", "dataset") == 4
        clock.t += 3600 - 40 + 1  # the first commit leaves the hour
        api.create_commit(
            "alice/limited", [CommitOperationAdd("late.txt", b"x")], commit_message="c", repo_type="dataset"
        )
    finally:
        hub.stop()


@pytest.fixture
def fast_world(tmp_path):
    """A Hub of its own whose commit hour runs `speed` times faster, and settings whose commit
    budget runs at the same speed: hours of recording in seconds (the seam is the clock only)."""

    def make(speed: float):
        t0 = time.monotonic()
        hub = HubServer(tmp_path / "hub", users=USERS, commit_clock=lambda: (time.monotonic() - t0) * speed)
        hub.start()
        from voxspace.settings import Settings

        settings = Settings(
            data_dir=tmp_path / "data",
            hub_endpoint=hub.url,
            push_retry_max_s=0.5,
            commit_budget=BudgetConfig(speed=speed),
        )
        return hub, settings

    made = []
    yield lambda speed: made.append(make(speed)) or made[-1]
    for hub, _ in made:
        TakeStore.close_all()
        hub.stop()


_TAKES = itertools.count()


def _tiny_take() -> tuple[bytes, float]:
    """A 1 s tone, a different pitch each call: the store refuses audio it already holds."""
    t = np.arange(16_000) / 16_000
    f = 200 + next(_TAKES) % 2000 * 0.25
    tone = 0.3 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(3 * t))
    buf = io.BytesIO()
    sf.write(buf, tone.astype(np.float32), 16_000, format="WAV", subtype="PCM_16")
    return buf.getvalue(), 1.0


def _alice() -> Identity:
    return Identity("alice", next(t for t, n in USERS.items() if n == "alice"), "local")


def _hub_requests(hub, repo: str, since: float = 0.0) -> list[dict]:
    return [r for r in hub.requests() if r.get("repo") == repo and r["t"] >= since]


@pytest.mark.slow
def test_two_hours_at_one_take_per_5_s_stays_under_the_limit_and_loses_nothing(fast_world):
    speed = 480.0
    hub, settings = fast_world(speed)
    store = TakeStore.for_identity(settings, _alice())
    takes = [_tiny_take() for _ in range(2 * 3600 // 5)]
    saved = []
    start = time.monotonic()
    for i in range(2 * 3600 // 5):
        saved.append(store.save(*takes[i], text=f"phrase {i}", language="en", phrase_id=f"en-{i}").take_id)
        time.sleep(max(0.0, start + (i + 1) * 5 / speed - time.monotonic()))
    assert store.flush(60), store.stats()
    repo = store.repo_id
    commit_posts = [r for r in _hub_requests(hub, repo) if r["path"].endswith("/commit/main")]
    assert not [r for r in commit_posts if r["status"] == 429]
    history = hub.commits(repo, "dataset")[1:]  # after the repo's initial commit
    per_hour = _commits_per_window([c["date"] * speed for c in history])
    assert per_hour < 128, per_hour
    on_hub = {lt.take.take_id for lt in read_folder(hub.checkout(repo, "dataset"))}
    assert on_hub == set(saved)  # nothing lost, nothing twice
    assert max(len(c["files"]) - len(p["files"]) for p, c in itertools.pairwise(history)) <= 100


def test_a_429_is_honoured_and_saves_meanwhile_send_nothing(fast_world):
    speed = 300.0  # Retry-After 2580 s of Hub time = 8.6 s here
    hub, settings = fast_world(speed)
    store = TakeStore.for_identity(settings, _alice())
    store.save(*_tiny_take(), text="before", language="en", phrase_id="a")
    assert store.flush(30)
    hub.fail_next("commit", 1, status=429, retry_after=2580)
    store.save(*_tiny_take(), text="meets the 429", language="en", phrase_id="b")
    for _ in range(100):
        if store.stats().last_error:
            break
        time.sleep(0.05)
    limited_at = time.time()
    stats = store.stats()
    assert "43 minutes" in stats.last_error and stats.pending == 1
    assert 2000 / speed < stats.next_push_s <= 2580 / speed
    for i in range(10):  # ten more takes while the pusher waits: not one request
        store.save(*_tiny_take(), text=f"meanwhile {i}", language="en", phrase_id=f"m{i}")
        time.sleep(0.5)
    assert _hub_requests(hub, store.repo_id, since=limited_at) == []
    assert store.flush(40), store.stats()
    after = [
        r for r in _hub_requests(hub, store.repo_id, since=limited_at) if r["path"].endswith("/commit/main")
    ]
    assert len(after) == 1 and after[0]["t"] >= limited_at + 2500 / speed  # all eleven in one commit
    assert len(store.takes()) == 12 and store.stats().last_error is None
