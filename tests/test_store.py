"""Takes are durable at once, reach the owner's private repo, survive kill -9 and never mix."""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import soundfile as sf
from huggingface_hub.errors import RepositoryNotFoundError

from tests.signals import distinct_takes
from voxspace.auth import ANONYMOUS, Identity
from voxspace.errors import AuthError, BadInput, BadRepoName
from voxspace.hub import hub_api
from voxspace.layout import read_folder, split_for
from voxspace.store import TakeStore, local_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _close_stores():
    yield
    TakeStore.close_all()


@pytest.fixture(scope="module")
def take_wav():
    """`take_wav()` -> (wav bytes, seconds): new audio each call (the store refuses a duplicate)."""
    return distinct_takes()


def who(name: str, hub_tokens) -> Identity:
    return Identity(name, hub_tokens[name], "local")


def test_save_is_acknowledged_then_lands_in_a_private_repo_load_dataset_reads(
    hub, hub_settings, hub_tokens, take_wav, tmp_path
):
    alice = who("alice", hub_tokens)
    store = TakeStore.for_identity(hub_settings, alice)
    assert TakeStore.for_identity(hub_settings, alice) is store
    texts = [
        ("Hello there, general.", "en"),
        ("नमस्ते, आप कैसे हैं?", "hi"),
        ("Привет, как дела?", ""),
        ("Où est la gare ?", "fr"),
    ]
    saved = [
        store.save(*take_wav(), text=t, language=lang, phrase_id=f"p-{i}")
        for i, (t, lang) in enumerate(texts)
    ]
    assert [t.seq for t in saved] == [0, 1, 2, 3]
    assert [t.split for t in saved] == [split_for(i) for i in range(4)]
    assert store.flush(60), store.stats()
    repo = store.repo_id
    assert repo == f"alice/{hub_settings.dataset_repo_name}"
    assert hub.is_private(repo, "dataset")
    assert not read_folder(store.root)  # the spool is empty once pushed
    on_hub = read_folder(hub.checkout(repo, "dataset"))
    assert [lt.take.text for lt in on_hub] == [t for t, _ in texts]
    for lt in on_hub:
        info = sf.info(io.BytesIO(lt.wav.read_bytes()))
        assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
    readme = hub.read_file(repo, "README.md", repo_type="dataset").decode()
    assert "automatic-speech-recognition" in readme and "- split: test" in readme
    stats = store.stats()
    assert (stats.takes, stats.pending, stats.train, stats.test) == (4, 0, 3, 1)
    assert stats.done_phrase_ids == {"p-0", "p-1", "p-2", "p-3"} and stats.last_error is None
    assert abs(stats.minutes - sum(t.duration for t in saved) / 60) < 0.01

    datasets = pytest.importorskip("datasets")
    pytest.importorskip("torchcodec")
    ds = datasets.load_dataset(repo, token=alice.token, cache_dir=str(tmp_path / "ds"))
    assert sorted([*ds["train"]["text"], *ds["test"]["text"]]) == sorted(t for t, _ in texts)
    assert list(ds["test"]["text"]) == [texts[1][0]]
    decoded = ds["train"].cast_column("audio", datasets.Audio(sampling_rate=16_000))[0]["audio"]
    assert decoded.get_all_samples().sample_rate == 16_000


def test_commits_are_retried_after_server_errors_without_duplicates(hub, hub_settings, hub_tokens, take_wav):
    store = TakeStore.for_identity(hub_settings, who("alice", hub_tokens))
    store.save(*take_wav(), text="first", language="en", phrase_id="a")
    assert store.flush(30)
    before = len(hub.commits(store.repo_id, "dataset"))
    hub.fail_next_commits(2)  # the client itself never retries /commit
    store.save(*take_wav(), text="second", language="en", phrase_id="b")
    assert store.flush(30)
    hub.fail_next_commits(1, after_apply=True)  # landed, but the answer was lost
    store.save(*take_wav(), text="third", language="en", phrase_id="c")
    assert store.flush(30)
    commits = hub.commits(store.repo_id, "dataset")
    assert len(commits) == before + 2  # one per take: the lost answer did not cause a duplicate
    assert [t.text for t in store.takes()] == ["first", "second", "third"]
    failed = [
        r
        for r in hub.requests()
        if r["path"].endswith("/commit/main") and r["status"] == 500 and r["repo"] == store.repo_id
    ]
    assert len(failed) == 3


def test_push_failure_is_reported_and_recovers(hub, hub_settings, hub_tokens, take_wav):
    store = TakeStore.for_identity(hub_settings, who("alice", hub_tokens))
    hub.refuse_writes()
    try:
        store.save(*take_wav(), text="while the Hub is down", language="en", phrase_id="x")
        assert not store.flush(1.5)
        stats = store.stats()
        assert stats.pending == 1 and stats.takes == 1
        assert "Hub" in stats.last_error and "503" not in stats.last_error
    finally:
        hub.allow_writes()
    assert store.flush(30)
    assert store.stats().last_error is None


def test_two_people_never_share_takes(hub, hub_settings, hub_tokens, take_wav):
    alice = TakeStore.for_identity(hub_settings, who("alice", hub_tokens))
    bob = TakeStore.for_identity(hub_settings, who("bob", hub_tokens))
    assert alice is not bob and alice.root != bob.root
    alice.save(*take_wav(), text="alice speaks", language="en", phrase_id="a1")
    bob.save(*take_wav(), text="bob speaks", language="en", phrase_id="b1")
    assert alice.flush(30) and bob.flush(30)
    assert [t.text for t in alice.takes()] == ["alice speaks"]
    assert [t.text for t in bob.takes()] == ["bob speaks"]
    assert alice.repo_id.startswith("alice/") and bob.repo_id.startswith("bob/")
    with pytest.raises(RepositoryNotFoundError):
        hub_api(who("bob", hub_tokens), hub_settings).dataset_info(alice.repo_id)
    assert hub.writes_by(alice.repo_id) == {"alice"} and hub.writes_by(bob.repo_id) == {"bob"}


def test_in_a_space_the_visitor_token_acts_never_hf_token(
    hub, hub_settings, hub_tokens, take_wav, monkeypatch
):
    from voxspace.auth import resolve_identity

    monkeypatch.setenv("HF_TOKEN", hub_tokens["spaceowner"])
    space = replace(hub_settings, space_id="spaceowner/voxspace")
    mark = len(hub.requests())
    assert resolve_identity(space) == ANONYMOUS
    assert (
        resolve_identity(space, oauth_username="bob", oauth_token="mock-oauth-token-for-local-dev")
        == ANONYMOUS
    )
    with pytest.raises(AuthError):
        TakeStore.for_identity(space, ANONYMOUS)
    bob = resolve_identity(space, oauth_username="bob", oauth_token=hub_tokens["bob"])
    assert (bob.username, bob.source) == ("bob", "oauth")
    store = TakeStore.for_identity(space, bob)
    store.save(*take_wav(), text="visitor take", language="en", phrase_id="v1")
    assert store.flush(30)
    assert store.repo_id.startswith("bob/")
    users = {r["user"] for r in hub.requests()[mark:]}
    assert users == {"bob"}  # not a single request with the Space owner's token


def _three_takes_pushed(settings, alice: Identity, take_wav) -> TakeStore:
    """Takes "take 0".."take 2" (phrases en-0..en-2) saved and pushed, then every store closed."""
    store = TakeStore.for_identity(settings, alice)
    for i in range(3):
        store.save(*take_wav(), text=f"take {i}", language="en", phrase_id=f"en-{i}")
    assert store.flush(30)
    TakeStore.close_all()
    return store


def test_resume_on_sign_in_counts_hub_takes_and_continues_seq(
    hub, hub_settings, hub_tokens, take_wav, tmp_path
):
    alice = who("alice", hub_tokens)
    _three_takes_pushed(hub_settings, alice, take_wav)
    elsewhere = replace(hub_settings, data_dir=tmp_path / "another-machine")  # a fresh disk
    again = TakeStore.for_identity(elsewhere, alice)
    stats = again.stats()
    assert (stats.takes, stats.pending) == (3, 0)
    assert stats.done_phrase_ids == {"en-0", "en-1", "en-2"}
    nxt = again.save(*take_wav(), text="take 3", language="en", phrase_id="en-3")
    assert (nxt.seq, nxt.split) == (3, split_for(3))
    assert again.flush(30)
    assert len(read_folder(hub.checkout(again.repo_id, "dataset"))) == 4


def test_resume_on_the_same_disk_reads_only_new_metadata(hub, hub_settings, hub_tokens, take_wav, tmp_path):
    def metadata_downloads() -> int:
        return sum(r["method"] == "GET" and r["path"].endswith("metadata.jsonl") for r in hub.requests())

    alice = who("alice", hub_tokens)
    here = _three_takes_pushed(hub_settings, alice, take_wav)
    # Meanwhile, on another machine: one more take; and one take deleted on the Hub by its owner.
    other = TakeStore.for_identity(replace(hub_settings, data_dir=tmp_path / "other"), alice)
    other.save(*take_wav(), text="from elsewhere", language="en", phrase_id="en-9")
    assert other.flush(30)
    TakeStore.close_all()
    gone = here.takes()[0]
    hub_api(alice, hub_settings).delete_folder(gone.folder, repo_id=here.repo_id, repo_type="dataset")
    before = metadata_downloads()
    back = TakeStore.for_identity(hub_settings, alice)
    assert metadata_downloads() == before + 1  # only the take this disk had not seen
    assert [t.text for t in back.takes()] == ["take 1", "take 2", "from elsewhere"]


def test_no_token_keeps_takes_locally_until_pushed(hub, hub_settings, hub_tokens, take_wav):
    local = TakeStore.for_identity(hub_settings, ANONYMOUS)
    assert local.local_only and local.root == local_folder(hub_settings)
    local.save(*take_wav(), text="recorded offline", language="en", phrase_id="o1")
    stats = local.stats()
    assert stats.local_only and stats.takes == 1 and stats.repo_id is None
    assert str(local_folder(hub_settings)) in stats.location
    with pytest.raises(AuthError):
        local.push_local_folder()
    store = TakeStore.for_identity(hub_settings, who("alice", hub_tokens))
    assert store.push_local_folder() == 1
    assert store.flush(30)
    assert not read_folder(local_folder(hub_settings))
    assert [t.take.text for t in read_folder(hub.checkout(store.repo_id, "dataset"))] == ["recorded offline"]


@pytest.mark.parametrize(
    "repo",
    ["alice/bad..name", "alice/-dash", "a/b/c", "alice/" + "x" * 97, "alice/x.git", "alice/sp ace", ""],
)
def test_invalid_repo_names_are_refused_with_a_message(hub_settings, hub_tokens, repo):
    with pytest.raises(BadRepoName) as e:
        TakeStore.for_identity(hub_settings, who("alice", hub_tokens), repo or "/")
    assert e.value.user_message


def test_bad_takes_are_refused_and_nothing_is_spooled(hub_settings, hub_tokens, take_wav):
    store = TakeStore.for_identity(hub_settings, ANONYMOUS)
    wav, dur = take_wav()
    for kwargs in [
        dict(wav_bytes=b"not a wav at all", duration=dur, text="x", language="en"),
        dict(wav_bytes=wav, duration=0.0, text="x", language="en"),
        dict(wav_bytes=wav, duration=dur, text="   ", language="en"),
        dict(wav_bytes=wav, duration=dur, text="x", language="xx"),
    ]:
        with pytest.raises(BadInput):
            store.save(kwargs.pop("wav_bytes"), kwargs.pop("duration"), phrase_id="", **kwargs)
    assert store.stats().takes == 0 and not read_folder(store.root)


_SAVER = """
import io, sys, time
import soundfile as sf
from voxspace.auth import resolve_identity
from voxspace.settings import Settings
from voxspace.store import TakeStore
settings = Settings.from_env()
store = TakeStore.for_identity(settings, resolve_identity(settings))
samples, sr = sf.read(sys.argv[1], dtype="int16")
for i in range(int(sys.argv[2])):
    buf = io.BytesIO()
    sf.write(buf, samples // (i + 1), sr, format="WAV", subtype="PCM_16")  # distinct audio per take
    take = store.save(buf.getvalue(), float(sys.argv[3]), text=f"phrase {i}", language="en",
                      phrase_id=f"en-{i}")
    print("ACK", take.take_id, flush=True)
time.sleep(600)
"""
_RECOVER = """
import json
from voxspace.settings import Settings
from voxspace.store import TakeStore, recover_pending
settings = Settings.from_env()
started = recover_pending(settings)
ok = all(store.flush(60) for store in TakeStore._registry.values())
print(json.dumps({"started": started, "ok": ok}), flush=True)
"""


def _child_env(hub_settings, hub_tokens, tmp_path) -> dict[str, str]:
    return {
        **os.environ,
        "HF_TOKEN": hub_tokens["alice"],
        "VOXSPACE_DATA_DIR": str(tmp_path / "data"),
        "VOXSPACE_DATASET_REPO_NAME": hub_settings.dataset_repo_name,
        "VOXSPACE_PUSH_RETRY_MAX_S": "0.2",
        "PYTHONPATH": str(ROOT),
    }


def _save_then_get_killed(env, take_wav, tmp_path, n: int, before_kill=lambda: None) -> list[str]:
    take_wav = take_wav()
    """Run a process that saves `n` takes; SIGKILL it right after the last acknowledgement."""
    wav_file = tmp_path / "take.wav"
    wav_file.write_bytes(take_wav[0])
    saver = subprocess.Popen(
        [sys.executable, "-c", _SAVER, str(wav_file), str(n), str(take_wav[1])],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        acked = []
        while len(acked) < n:
            line = saver.stdout.readline()
            assert line, "the saver died before acknowledging every take"
            acked.append(line.split()[1])
        before_kill()
    finally:
        os.kill(saver.pid, signal.SIGKILL)
        saver.wait(10)
    return acked


def _recover(env) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _RECOVER], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_kill_9_right_after_acknowledgement_loses_nothing(hub, hub_settings, hub_tokens, take_wav, tmp_path):
    env = _child_env(hub_settings, hub_tokens, tmp_path)
    repo = f"alice/{hub_settings.dataset_repo_name}"
    hub.refuse_writes()  # nothing can be pushed before the kill
    try:
        acked = _save_then_get_killed(env, take_wav, tmp_path, 5)
    finally:
        hub.allow_writes()
    assert not hub.repo_exists(repo, "dataset")
    assert _recover(env) == {"started": {repo: 5}, "ok": True}
    on_hub = {lt.take.take_id: lt.take for lt in read_folder(hub.checkout(repo, "dataset"))}
    assert set(on_hub) == set(acked)
    assert sorted(t.seq for t in on_hub.values()) == [0, 1, 2, 3, 4]


def test_kill_9_while_a_commit_is_in_flight_neither_loses_nor_duplicates(
    hub, hub_settings, hub_tokens, take_wav, tmp_path
):
    env = _child_env(hub_settings, hub_tokens, tmp_path)
    repo = f"alice/{hub_settings.dataset_repo_name}"

    def commit_in_flight():
        for _ in range(600):
            if hub.waiting_writes():
                return
            time.sleep(0.1)
        pytest.fail("the saver never sent a commit")

    hub.pause_writes(commits_only=True)
    try:
        acked = _save_then_get_killed(env, take_wav, tmp_path, 3, before_kill=commit_in_flight)
    finally:
        hub.allow_writes()  # the held commit lands now, with nobody left to hear the answer
    for _ in range(100):
        if hub.repo_exists(repo, "dataset") and len(hub.commits(repo, "dataset")) > 1:
            break
        time.sleep(0.1)
    assert _recover(env)["ok"]
    on_hub = {lt.take.take_id for lt in read_folder(hub.checkout(repo, "dataset"))}
    assert on_hub == set(acked)
    history = hub.commits(repo, "dataset")
    for parent, child in itertools.pairwise(history):  # every commit added something
        assert set(child["files"]) - set(parent["files"]), child["title"]


def test_no_token_reaches_a_log_or_a_file(hub, hub_settings, hub_tokens, take_wav, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    from voxspace.auth import clear_whoami_cache, resolve_identity

    clear_whoami_cache()
    monkeypatch.setenv("HF_TOKEN", hub_tokens["alice"])
    alice = resolve_identity(hub_settings)
    store = TakeStore.for_identity(hub_settings, alice)
    hub.fail_next_commits(1)
    store.save(*take_wav(), text="secret-free", language="en", phrase_id="s")
    assert store.flush(30)
    space = replace(hub_settings, space_id="spaceowner/voxspace")
    bob = TakeStore.for_identity(
        space, resolve_identity(space, oauth_username="bob", oauth_token=hub_tokens["bob"])
    )
    bob.save(*take_wav(), text="also secret-free", language="en", phrase_id="s")
    assert bob.flush(30)
    assert repr(alice).count(alice.token) == 0 and str(store.stats()).count(alice.token) == 0
    TakeStore.close_all()
    texts = [caplog.text, hub.log_path.read_text()]
    roots = [hub.root, hub_settings.data_dir, ROOT / ".pytest-env"]
    files = [p for root in roots for p in Path(root).rglob("*") if p.is_file()]
    assert any(p.name == "owner.json" for p in files)
    for token in hub_tokens.values():
        assert not any(token in t for t in texts)
        needle = token.encode()
        leaked = [p for p in files if needle in p.read_bytes()]
        assert not leaked, leaked


def test_in_a_space_pending_takes_wait_for_their_owner_to_sign_in(hub, hub_settings, hub_tokens, take_wav):
    from voxspace.store import recover_pending

    space = replace(hub_settings, space_id="spaceowner/voxspace")
    bob = Identity("bob", hub_tokens["bob"], "oauth")
    hub.refuse_writes()
    try:
        store = TakeStore.for_identity(space, bob)
        take = store.save(*take_wav(), text="saved while the Hub was down", language="en", phrase_id="w")
        assert not store.flush(0.5)
    finally:
        TakeStore.close_all()  # the Space restarts: no process holds bob's token any more
        hub.allow_writes()
    assert recover_pending(space) == {}  # nobody's token is stored, so nothing can be pushed yet
    assert not hub.repo_exists(store.repo_id, "dataset")
    again = TakeStore.for_identity(space, bob)  # bob signs in again
    assert again.stats().pending == 1 and again.flush(30)
    assert [t.take.take_id for t in read_folder(hub.checkout(again.repo_id, "dataset"))] == [take.take_id]
