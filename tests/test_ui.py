"""The UI's own pieces without a browser: what the page says, and that its handlers call the real
audio checks and store (local Hub server) and keep visitors apart."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf

from voxspace.ui import handsfree, progress
from voxspace.ui.record import save_take
from voxspace.ui.session import start_session, status_line

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, int]:
    """Two seconds or so of espeak-ng speech at 48 kHz (what the browser sends)."""
    out = subprocess.run(["espeak-ng", "--stdout", "the quick brown fox jumps over the lazy dog"],
                         check=True, capture_output=True).stdout
    x, sr = sf.read(io.BytesIO(out), dtype="float32")
    import soxr

    return soxr.resample(x, sr, 48_000).astype(np.float32), 48_000


def _wav(x: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def _visitor(settings, user: str, token: str):
    profile = gr.OAuthProfile({"preferred_username": user, "name": user, "profile": "", "picture": ""})
    return start_session(settings, profile=profile,
                         token=gr.OAuthToken(token=token, scope="openid", expires_at=0))


@pytest.fixture
def space_settings(hub_settings):
    return dataclasses.replace(hub_settings, space_id="tests/voxspace")


# --- what the page says ------------------------------------------------------------------------
def test_milestones_say_why_more_takes_help():
    assert "50 takes (50 to go)" in progress.milestone_line(0)
    assert "100 takes (1 to go)" in progress.milestone_line(99)
    assert "500 takes" in progress.milestone_line(100)
    assert "passed every milestone" in progress.milestone_line(500)
    assert all(why for _, why in progress.MILESTONES)


def test_hub_state_is_said_in_words():
    assert "All takes are on the Hub" in progress.hub_line(0, None, "alice/voxspace-recordings")
    waiting = progress.hub_line(2, "the Hub is not answering.", "alice/voxspace-recordings")
    assert "2 takes waiting to upload" in waiting and "not answering" in waiting
    assert "local folder" in progress.hub_line(3, None, None)
    later = progress.hub_line(7, None, "alice/voxspace-recordings", next_push_s=31.0)
    assert "7 takes waiting to upload (next upload in about 30 s)" in later
    assert "in about 43 min" in progress.hub_line(1, None, "alice/r", next_push_s=2580.0)


@pytest.mark.parametrize("kind", ["ready", "recording", "saved", "rejected", "info"])
def test_take_state_has_a_word_and_a_shape_not_only_a_colour(kind):
    html = progress.status_html(kind, "<b>x</b>")
    assert 'aria-hidden="true"' in html and "<strong>" in html
    assert "&lt;b&gt;" in html  # messages are escaped


def test_rest_reminder_after_a_long_stretch():
    assert progress.rest_reminder(60) is None
    assert "rest" in progress.rest_reminder(progress.REST_AFTER_S)


# --- handlers against the real audio checks and store ------------------------------------------
def test_save_checks_the_take_stores_it_and_moves_on(space_settings, hub_tokens, speech):
    sess = _visitor(space_settings, "alice", hub_tokens["alice"])
    assert "Signed in as **alice**" in status_line(sess) and sess.store.repo_id in status_line(sess)
    sess.advance(set())
    first = sess.current
    status, _, _, saved = save_take(sess, _wav(*speech))
    assert saved and "saved" in status and sess.current != first
    [take] = sess.store.takes()
    assert (take.text, take.phrase_id, take.source) == (first.text, first.phrase_id, "mic")


def test_a_bad_take_is_explained_and_not_stored(space_settings, hub_tokens, speech):
    sess = _visitor(space_settings, "alice", hub_tokens["alice"])
    sess.advance(set())
    phrase = sess.current
    x, sr = speech
    for bad in (_wav(x * 0.0005, sr), _wav(x[: sr // 4], sr), b"not audio at all"):
        status, _, _, saved = save_take(sess, bad)
        assert not saved and "Not saved" in status and "Traceback" not in status
        assert sess.current == phrase  # same phrase, to record again
    status, *_ = save_take(sess, None)
    assert "Nothing recorded" in status
    assert sess.store.stats().takes == 0


def test_two_visitors_get_separate_stores(space_settings, hub_tokens):
    alice = _visitor(space_settings, "alice", hub_tokens["alice"])
    bob = _visitor(space_settings, "bob", hub_tokens["bob"])
    assert alice.store.repo_id.startswith("alice/") and bob.store.repo_id.startswith("bob/")
    assert alice.store is not bob.store


def test_an_unreachable_hub_still_gives_a_page_in_local_folder_mode(hub_settings, monkeypatch):
    from voxspace.auth import clear_whoami_cache

    monkeypatch.setenv("HF_TOKEN", "hf_testunreachable0000")
    clear_whoami_cache()
    settings = dataclasses.replace(hub_settings, hub_endpoint="http://127.0.0.1:9")
    sess = start_session(settings, profile=None, token=None)
    assert sess.can_record and not sess.identity.signed_in
    line = status_line(sess)
    assert sess.problem and line.startswith(sess.problem) and "local folder" in line


def test_an_anonymous_space_visitor_cannot_record(space_settings, speech):
    sess = start_session(space_settings, profile=None, token=None)
    assert not sess.can_record and "Sign in" in status_line(sess)
    status, _, _, saved = save_take(sess, _wav(*speech))
    assert not saved and "Sign in" in status


# --- hands-free: the VAD decides when the take is over -----------------------------------------
def _feed(sess, x: np.ndarray, sr: int, silence_s: float = 1.0) -> str | None:
    step = int(sr * handsfree.CHUNK_S)
    for i in range(0, len(x), step):
        out = handsfree.on_chunk(sess, (sr, (x[i:i + step] * 32767).astype(np.int16)), silence_s)
        if isinstance(out, str):
            return out
    return None


def test_hands_free_stops_after_speech_then_silence_and_keeps_the_audio(hub_settings, speech):
    sess = start_session(hub_settings, profile=None, token=None)
    x, sr = speech
    signal = _feed(sess, np.concatenate([np.zeros(sr // 2, np.float32), x, np.zeros(3 * sr, np.float32)]), sr)
    assert signal and signal.startswith("stop-")
    got, got_sr = sf.read(io.BytesIO(handsfree.captured_wav(sess)))
    assert got_sr == sr and len(got) / sr >= len(x) / sr


def test_hands_free_never_stops_on_noise_alone(hub_settings):
    sess = start_session(hub_settings, profile=None, token=None)
    noise = np.random.default_rng(0).normal(0, 0.05, 48_000 * 6).astype(np.float32)
    assert _feed(sess, noise, 48_000) is None


def test_hands_free_stops_a_take_that_runs_too_long(hub_settings):
    sess = start_session(hub_settings, profile=None, token=None)
    sess.settings = dataclasses.replace(hub_settings, limits=dataclasses.replace(hub_settings.limits,
                                                                                  max_take_s=2.0))
    noise = np.random.default_rng(0).normal(0, 0.05, 48_000 * 3).astype(np.float32)
    assert _feed(sess, noise, 48_000) is not None


# --- start-up ----------------------------------------------------------------------------------
def test_the_page_builds_without_a_token_and_without_heavy_libraries(tmp_path):
    code = ("import sys; from voxspace.ui.app import build_app; build_app(); "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'datasets') if m in sys.modules))")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"),
           "VOXSPACE_DATA_DIR": str(tmp_path / "data"), "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr


# --- the other ways in: own phrases, uploads ---------------------------------------------------
def test_own_phrases_replace_the_bundled_list(space_settings, hub_tokens, tmp_path):
    from voxspace.ui.bulk import set_custom_phrases
    from voxspace.ui.record import refresh

    sess = _visitor(space_settings, "alice", hub_tokens["alice"])
    pasted = "Metoprolol twice a day\n\nCall Dr Okafor\n"
    assert "Using your 2 phrases" in set_custom_phrases(sess, pasted, None)
    phrase_html, *_ = refresh(sess, "en")
    assert "Metoprolol twice a day" in phrase_html
    binary = tmp_path / "phrases.txt"
    binary.write_bytes(b"\x00\x01\x02\xff" * 50)
    assert "Error" in set_custom_phrases(sess, "", str(binary))  # explained, not a traceback
    assert [p.text for p in sess.custom] == ["Metoprolol twice a day", "Call Dr Okafor"]


def test_upload_reports_each_file(space_settings, hub_tokens, speech, tmp_path):
    from voxspace.ui.bulk import upload_files

    sess = _visitor(space_settings, "alice", hub_tokens["alice"])
    (tmp_path / "good.wav").write_bytes(_wav(*speech))
    (tmp_path / "bad.wav").write_bytes(b"this is not audio")
    (tmp_path / "t.csv").write_text("file_name,text\ngood.wav,hello there\nbad.wav,never mind\n")
    status, table, _ = upload_files(sess, [str(tmp_path / "good.wav"), str(tmp_path / "bad.wav")],
                                    str(tmp_path / "t.csv"), "en")
    assert "1 of 2 added" in status
    by_name = {row[0]: row for row in table}
    assert by_name["good.wav"][1] == "accepted" and by_name["bad.wav"][1].startswith("rejected: ")
    assert [t.text for t in sess.store.takes()] == ["hello there"]


def test_train_tab_says_how_ready_the_data_is_and_how_to_train(space_settings, hub_tokens, speech):
    from voxspace.ui import train

    sess = _visitor(space_settings, "alice", hub_tokens["alice"])
    sess.advance(set())
    save_take(sess, _wav(*speech))
    text, cmd = train.readiness(sess)
    assert "**1** takes" in text and "49 to go" in text
    assert f"--data {sess.store.repo_id}" in cmd and "--out" in cmd
    assert train.readiness(None)[1] == ""


def test_import_a_hub_dataset_with_column_mapping_and_a_cap(space_settings, hub, hub_tokens, speech,
                                                            tmp_path):
    import json

    from huggingface_hub import HfApi

    from voxspace.ui.bulk import import_dataset

    root = tmp_path / "clips"
    (root / "data").mkdir(parents=True)
    rows = [{"file_name": f"c{i}.wav", "sentence": f"sentence number {i}"} for i in range(3)]
    for i, r in enumerate(rows):  # three distinct clips: the store refuses audio it already holds
        (root / "data" / r["file_name"]).write_bytes(_wav(speech[0] * (1 - 0.01 * i), speech[1]))
    (root / "data" / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    api = HfApi(endpoint=hub.url, token=hub_tokens["alice"])
    api.create_repo("alice/ui-clips", repo_type="dataset", private=True, exist_ok=True)
    api.upload_folder(folder_path=root, repo_id="alice/ui-clips", repo_type="dataset")

    sess = _visitor(space_settings, "alice", hub_tokens["alice"])
    calls = []
    status, table = import_dataset(sess, "alice/ui-clips", "audio", "sentence", "", "en", "", "train", 2, 10,
                                   progress=lambda *a, **k: calls.append(k.get("desc")))
    assert "2 of 2 added" in status and len(table) == 2 and calls
    assert [(t.text, t.source) for t in sess.store.takes()] == [("sentence number 0", "import"),
                                                                ("sentence number 1", "import")]
    status, table = import_dataset(sess, "not a valid id!", "audio", "text", "", "", "", "train", 1, 1,
                                   progress=lambda *a, **k: None)
    assert "Error" in status and table == []


def test_importing_from_a_hub_that_cannot_be_reached_says_so_at_once(space_settings, hub_tokens):
    """Issue 16: two bare "Error" pills after ~30 s. Now one sentence, in a second or two."""
    import socket
    import time

    from voxspace.ui.bulk import import_dataset

    sess = _visitor(space_settings, "alice", hub_tokens["alice"])
    with socket.socket() as s:  # a port nobody listens on: no network to the Hub
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    sess.settings = dataclasses.replace(sess.settings, hub_endpoint=closed)
    t0 = time.monotonic()
    status, table = import_dataset(sess, "alice/ui-clips", "audio", "text", "", "en", "", "train", 2, 10,
                                   progress=lambda *a, **k: None)
    assert time.monotonic() - t0 < 10 and table == []
    assert "Error" in status and "Couldn&#x27;t reach the Hugging Face Hub to read alice/ui-clips" in status


def test_language_menus_show_names_and_keep_codes(hub_settings):
    """Issue 16: the dropdowns showed "en", "hi"; a person picks "English", the code stays the value."""
    from voxspace.ui.app import build_app

    demo = build_app(hub_settings)
    menus = {c.elem_id: c for c in demo.blocks.values() if isinstance(c, gr.Dropdown)}
    assert menus["language"].choices[:2] == [("English", "en"), ("Spanish", "es")]
    assert menus["language"].value == "en"
    assert ("Hindi", "hi") in menus["language"].choices
    assert all(name != code for name, code in menus["language"].choices)
    assert menus["upload-language"].choices[0] == ("Detect it in each file", "")
    assert ("German", "de") in menus["import-language"].choices


def test_on_zerogpu_the_page_queue_takes_more_than_one_waiting_event(monkeypatch):
    import gradio as gr

    from voxspace.ui.app import queued

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")  # a ZeroGPU Space, as gradio reads it
    assert gr.Blocks().queue()._queue.max_size == 1  # gradio's own default there: the page never loaded
    assert queued(gr.Blocks())._queue.max_size >= 100  # launch() queues the page so: many events may wait
