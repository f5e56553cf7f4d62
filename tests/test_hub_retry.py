"""Transient Hub errors are transient everywhere: sign-in checks retry, "will be retried" is said
only where something retries, and a repo deleted while the app runs is created again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.signals import distinct_takes
from voxspace.auth import Identity, resolve_identity
from voxspace.errors import RateLimited
from voxspace.hub import hub_api, with_retry
from voxspace.layout import read_folder
from voxspace.store import TakeStore

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("close_stores", "fresh_whoami_cache")


def test_a_429_on_whoami_is_waited_out_not_the_end_of_the_sign_in(hub, hub_settings, hub_tokens, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", hub_tokens["alice"])
    before = hub.calls("/api/whoami-v2")
    hub.fail_next("whoami", 2, status=429, retry_after=1)
    assert resolve_identity(hub_settings).username == "alice"
    assert hub.calls("/api/whoami-v2") == before + 3


def test_a_hub_that_stays_down_gets_an_honest_sentence_in_the_cli(hub, hub_settings, hub_tokens):
    hub.fail_next("whoami", 4, status=503)
    env = {
        **os.environ,
        "HF_TOKEN": hub_tokens["alice"],
        "VOXSPACE_DATA_DIR": str(hub_settings.data_dir),
        "PYTHONPATH": str(ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-m", "voxspace", "data", "stats"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "the Hub is not answering. Try again in a minute." in out.stderr
    assert "will be retried" not in out.stderr and "Traceback" not in out.stderr


def test_with_retry_honours_a_short_retry_after_and_refuses_a_long_one(hub, hub_settings, hub_tokens):
    api = hub_api(Identity("alice", hub_tokens["alice"], "local"), hub_settings)
    sleeps: list[float] = []
    hub.fail_next("whoami", 1, status=429, retry_after=3)
    assert with_retry(api.whoami, what="check", sleep=sleeps.append)["name"] == "alice"
    assert sleeps == [3.0]
    hub.fail_next("whoami", 1, status=429, retry_after=2580)
    with pytest.raises(RateLimited) as e:
        with_retry(api.whoami, what="check who you are", sleep=sleeps.append)
    assert e.value.retry_after_s == 2580 and "Try again in about 43 min" in e.value.user_message
    hub.fail_next("whoami", 4, status=502)
    with pytest.raises(Exception) as e:
        with_retry(api.whoami, what="check", sleep=sleeps.append)
    assert sleeps[1:] == [1.0, 2.0, 4.0]  # three waits, four tries, then the error


def test_a_repo_deleted_while_the_app_runs_is_created_again_with_the_waiting_takes(
    hub, hub_settings, hub_tokens
):
    take = distinct_takes(step=0.01)
    alice = Identity("alice", hub_tokens["alice"], "local")
    store = TakeStore.for_identity(hub_settings, alice)
    store.save(*take(), text="before the deletion", language="en", phrase_id="a")
    assert store.flush(30)
    hub_api(alice, hub_settings).delete_repo(store.repo_id, repo_type="dataset")
    store.save(*take(), text="after the deletion", language="en", phrase_id="b")
    assert store.flush(30), store.stats()
    assert hub.is_private(store.repo_id, "dataset")
    assert [lt.take.text for lt in read_folder(hub.checkout(store.repo_id, "dataset"))] == [
        "after the deletion"
    ]
    stats = store.stats()
    assert "was gone from the Hub (deleted?), so it was created again, private" in stats.notice
    assert stats.takes == 1 and stats.last_error is None
    readme = hub.read_file(store.repo_id, "README.md", repo_type="dataset").decode()
    assert "automatic-speech-recognition" in readme  # the card came back with it
