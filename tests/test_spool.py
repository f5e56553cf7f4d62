"""One spool, one pusher (the app and the CLI side by side), unique seqs, and duplicate audio
noticed and named before it is stored twice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.signals import speech
from voxspace.audio import prepare_take
from voxspace.auth import ANONYMOUS, Identity
from voxspace.errors import DuplicateTake
from voxspace.ingest import ingest_upload
from voxspace.layout import audio_fingerprint, fingerprint_of, read_folder
from voxspace.spool_lock import SpoolLock
from voxspace.store import TakeStore

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("close_stores")


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "voxspace", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def takes() -> list[tuple[bytes, float]]:
    out = []
    for words in ("one two three four", "five six seven eight", "nine ten eleven twelve"):
        samples, sr = speech(words)
        clean = prepare_take((sr, samples))
        out.append((clean.wav_bytes(), clean.duration))
    return out


def alice(hub_tokens) -> Identity:
    return Identity("alice", hub_tokens["alice"], "local")


def test_the_lock_has_one_holder_and_passes_on_when_released(tmp_path):
    first, second = SpoolLock(tmp_path / "pusher.lock"), SpoolLock(tmp_path / "pusher.lock")
    assert first.try_acquire() and not second.try_acquire()
    assert second.holder_pid() == os.getpid()
    first.release()
    assert second.try_acquire() and second.held


def test_a_second_store_on_one_folder_hands_its_takes_to_the_pusher_then_takes_over(
    hub, hub_settings, hub_tokens, takes
):
    owner = TakeStore.for_identity(hub_settings, alice(hub_tokens))
    guest = TakeStore(hub_settings, alice(hub_tokens), owner.repo_id)  # e.g. the CLI beside the app
    assert owner.is_pusher and not guest.is_pusher
    a = owner.save(*takes[0], text="from the app", language="en", phrase_id="a")
    b = guest.save(*takes[1], text="from the CLI", language="fr", phrase_id="b")
    assert (a.seq, b.seq) == (0, 1)  # the guest saw the owner's take before choosing its seq
    assert guest.stats().pushed_by_pid == os.getpid()
    assert guest.flush(30) and owner.flush(30)
    commits_before = len(hub.commits(owner.repo_id, "dataset"))
    assert {t.take_id for t in guest.takes()} == {a.take_id, b.take_id}
    owner.close()  # the app stops: the guest becomes the pusher
    c = guest.save(*takes[2], text="after the app stopped", language="en", phrase_id="c")
    assert c.seq == 2
    assert guest.flush(30) and guest.is_pusher
    on_hub = sorted((lt.take.seq, lt.take.text) for lt in read_folder(hub.checkout(owner.repo_id, "dataset")))
    assert on_hub == [(0, "from the app"), (1, "from the CLI"), (2, "after the app stopped")]
    assert len(hub.commits(owner.repo_id, "dataset")) == commits_before + 1
    failed = [
        r
        for r in hub.requests()
        if r.get("repo") == owner.repo_id and r["status"] >= 400 and r["path"].endswith("/commit/main")
    ]
    assert failed == []  # nobody pushed a take twice or one that was gone
    readme = hub.read_file(owner.repo_id, "README.md", repo_type="dataset").decode()
    assert "- en" in readme and "- fr" in readme  # every language present


def test_the_cli_beside_the_running_app_hands_over_and_says_so(
    hub, hub_settings, hub_tokens, takes, tmp_path
):
    app = TakeStore.for_identity(hub_settings, alice(hub_tokens))
    app.save(*takes[0], text="recorded in the app", language="en", phrase_id="a")
    wav = tmp_path / "cli.wav"
    wav.write_bytes(takes[1][0])
    env = {
        **os.environ,
        "HF_TOKEN": hub_tokens["alice"],
        "VOXSPACE_DATA_DIR": str(hub_settings.data_dir),
        "VOXSPACE_DATASET_REPO_NAME": hub_settings.dataset_repo_name,
        "PYTHONPATH": str(ROOT),
    }
    out = _cli(
        "data", "add", str(wav), "--text", "from the CLI", "--language", "en", "--timeout", "60", env=env
    )
    assert out.returncode == 0, out.stderr
    assert f"Another VoxSpace process (pid {os.getpid()}) uploads this folder" in out.stdout
    assert "refused" not in out.stdout + out.stderr
    assert app.flush(30)
    on_hub = sorted((lt.take.seq, lt.take.text) for lt in read_folder(hub.checkout(app.repo_id, "dataset")))
    assert on_hub == [(0, "recorded in the app"), (1, "from the CLI")]
    push = _cli("data", "push", "--timeout", "30", env=env)
    assert push.returncode == 0, push.stderr
    assert "2 takes" in push.stdout


def test_the_same_audio_twice_is_refused_with_a_sentence_naming_the_take(hub_settings, takes):
    store = TakeStore.for_identity(hub_settings, ANONYMOUS)
    first = store.save(*takes[0], text="Hello there", language="en", phrase_id="a", source="upload")
    assert fingerprint_of(first.take_id) == audio_fingerprint(takes[0][0])
    with pytest.raises(DuplicateTake) as e:
        store.save(*takes[0], text="something else", language="en", phrase_id="b", source="upload")
    assert e.value.take_id == first.take_id
    assert "already stored as take 1 (“Hello there”" in e.value.user_message
    assert "not saved again" in e.value.user_message
    assert len(read_folder(store.root)) == 1
    store.save(*takes[1], text="other audio", language="en", phrase_id="c", source="upload")  # other audio
    # A live microphone take is new audio by nature and is not compared (only a replayed test
    # microphone could match); a browser sending a kept take again is.
    again = store.save(*takes[0], text="Hello there", language="en", phrase_id="a")
    assert fingerprint_of(again.take_id) is None  # ids stay unique; the first take names the audio
    with pytest.raises(DuplicateTake):  # the same take sent again by a browser: recognised
        store.save(*takes[0], text="Hello there", language="en", phrase_id="a", duplicates="resend")
    resent = store.save(*takes[0], text="Another phrase", language="en", phrase_id="z", duplicates="resend")
    assert resent.text == "Another phrase"  # same audio, another phrase: another take


def test_audio_added_by_the_cli_then_uploaded_is_named_not_stored_twice(hub_settings, takes, tmp_path):
    upload = TakeStore.for_identity(hub_settings, ANONYMOUS)  # the app's store, already running
    wav = tmp_path / "clip.wav"
    wav.write_bytes(takes[2][0])
    env = {**os.environ, "VOXSPACE_DATA_DIR": str(hub_settings.data_dir), "PYTHONPATH": str(ROOT)}
    env.pop("HF_TOKEN", None)
    out = _cli("data", "add", str(wav), "--text", "nine ten", "--language", "en", env=env)
    assert out.returncode == 0, out.stderr
    (tmp_path / "t.csv").write_text('file_name,text\nclip.wav,"nine ten, again"\n')
    rows = ingest_upload([wav], transcripts=tmp_path / "t.csv", language="en", save=upload.save)
    assert [r.accepted for r in rows] == [False]
    assert "already stored as take 1 (“nine ten”" in rows[0].reason
    again = _cli("data", "add", str(wav), "--text", "x", env=env)
    assert again.returncode == 2 and "already stored as take 1" in again.stdout + again.stderr
    assert "Traceback" not in again.stderr
    assert len(read_folder(upload.root)) == 1
