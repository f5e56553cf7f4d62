"""The server side of the takes a browser keeps (ui/unsent.py): re-sent takes are stored once,
and the browser is told to forget a take only when no restart can lose it."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import shutil

import gradio as gr
import pytest

from tests.signals import silence, speech, wav_bytes
from voxspace.layout import audio_fingerprint, fingerprint_of
from voxspace.store import TakeStore
from voxspace.ui import bulk, handsfree, record, spontaneous, unsent
from voxspace.ui.session import start_session

pytestmark = pytest.mark.usefixtures("close_stores")


def _visitor(settings, hub_tokens):
    profile = gr.OAuthProfile({"preferred_username": "alice", "name": "alice", "profile": "", "picture": ""})
    return start_session(settings, profile=profile,
                         token=gr.OAuthToken(token=hub_tokens["alice"], scope="openid", expires_at=0))


def _kept(key: str, words: str) -> dict:
    return {"key": key, "text": words, "lang": "en", "phraseId": "en-1",
            "audio": base64.b64encode(wav_bytes(*speech(words))).decode()}


def _settled(html: str) -> set[str]:
    return set(re.search(r'data-settled="([^"]*)"', html).group(1).split())


def test_a_kept_take_is_stored_once_and_forgotten_once_on_the_hub(hub, hub_settings, hub_tokens):
    settings = dataclasses.replace(hub_settings, space_id="tests/voxspace", storage="ephemeral")
    sess = _visitor(settings, hub_tokens)
    hub.refuse_writes()
    try:
        payload = json.dumps([_kept("k1", "one two three four"), _kept("k2", "five six seven eight")])
        status, receipts = unsent.resend(sess, payload)
        assert "2 takes your browser kept" in status and "were saved again" in status
        assert _settled(receipts) == set()  # only on the Space's own disk: the browser keeps them
        status, receipts = unsent.resend(sess, payload)  # the page loads again before the push
        assert status == gr.skip() and len(sess.store.takes()) == 2  # recognised, not stored twice
    finally:
        hub.allow_writes()
    assert sess.store.flush(30)
    assert _settled(unsent.receipts_html(sess)) == {"k1", "k2"}


def test_what_cannot_be_stored_is_let_go_and_nobody_signed_in_keeps_everything(hub_settings, hub_tokens):
    sess = _visitor(hub_settings, hub_tokens)  # local: a lasting disk
    bad = {"key": "bad", "text": "x", "lang": "en", "phraseId": "", "audio": "not base64!"}
    empty = {**_kept("k3", "nine ten eleven twelve"), "text": ""}
    good = _kept("k4", "thirteen fourteen fifteen")
    status, receipts = unsent.resend(sess, json.dumps([bad, empty, good, "junk"]))
    assert "1 take your browser kept" in status and "was saved again" in status
    assert _settled(receipts) == {"bad", "k3", "k4"}  # k4 is safe on this computer's disk already
    assert unsent.resend(None, json.dumps([good]))[0] == gr.skip()
    assert unsent.resend(sess, "{not json")[0] == gr.skip()


def test_two_kept_takes_of_identical_audio_but_different_phrases_are_both_kept(hub_settings, hub_tokens):
    sess = _visitor(hub_settings, hub_tokens)
    first, second = _kept("a", "sixteen seventeen"), {**_kept("b", "sixteen seventeen"), "text": "other"}
    status, _ = unsent.resend(sess, json.dumps([first, second]))
    assert "2 takes" in status
    assert sorted(t.text for t in sess.store.takes()) == ["other", "sixteen seventeen"]


def _hands_free_take(sess, words: str):
    """What a hands-free Stop does: the streamed chunks are saved (ui.handsfree.finish)."""
    samples, sr = speech(words)
    sess.chunk_sr = sr
    sess.chunks = [samples[i:i + sr // 2] for i in range(0, len(samples), sr // 2)] + [silence(1.0, sr)]
    return handsfree.finish(sess, record.save_take)


def test_a_hands_free_take_is_handed_back_to_the_page_and_survives_a_wiped_disk(hub, hub_settings,
                                                                                hub_tokens):
    """Ephemeral disk: the page gets the saved take's WAV to keep; a reload before the push does not
    store it twice (its take id); after a restart that wiped the disk it is stored again, once."""
    settings = dataclasses.replace(hub_settings, space_id="tests/voxspace", storage="ephemeral")
    sess = _visitor(settings, hub_tokens)
    record.refresh(sess, "en")
    phrase = sess.current
    hub.refuse_writes()
    try:
        status, *_, kept = _hands_free_take(sess, "one two three four five")
        assert "saved (" in status and sess.last_saved is None  # the WAV is not held any longer
        item = json.loads(kept)
        assert (item["text"], item["lang"], item["phraseId"]) == (phrase.text, phrase.language,
                                                                  phrase.phrase_id)
        stored = sess.store.takes()
        assert [t.take_id for t in stored] == [item["takeId"]]
        assert audio_fingerprint(base64.b64decode(item["audio"])) == fingerprint_of(item["takeId"])
        assert item["key"] not in _settled(unsent.receipts_html(sess))  # only on the Space's disk
        assert "hf_" not in kept and hub_tokens["alice"] not in kept
        # A reload: recognised by its take id, even were the re-sent audio to prepare differently.
        other = {**item, "audio": base64.b64encode(wav_bytes(*speech("one two three four"))).decode()}
        assert unsent.resend(sess, json.dumps([item, other]))[0] == gr.skip()
        assert len(sess.store.takes()) == 1

        TakeStore.close_all()  # the Space restarts on a fresh disk
        shutil.rmtree(settings.data_dir)
        sess = _visitor(settings, hub_tokens)
        assert sess.store.takes() == []
        status, receipts = unsent.resend(sess, json.dumps([item]))
        assert "1 take your browser kept" in status and item["key"] not in _settled(receipts)
    finally:
        hub.allow_writes()
    assert sess.store.flush(30)
    assert _settled(unsent.receipts_html(sess)) == {item["key"]}
    assert [t.text for t in sess.store.takes()] == [phrase.text]


def test_a_hands_free_take_is_not_handed_back_where_the_disk_lasts_or_nothing_was_saved(hub_settings,
                                                                                       hub_tokens):
    sess = _visitor(hub_settings, hub_tokens)  # local: a lasting disk
    record.refresh(sess, "en")
    status, *_, kept = _hands_free_take(sess, "six seven eight nine")
    assert "saved (" in status and kept == ""
    settings = dataclasses.replace(hub_settings, space_id="tests/voxspace", storage="ephemeral")
    sess = _visitor(settings, hub_tokens)
    record.refresh(sess, "en")
    sess.chunk_sr, sess.chunks = 16000, [silence(2.0, 16000)]  # nothing heard: rejected, not saved
    status, _, _, player, kept = handsfree.finish(sess, record.save_take)
    assert "speech" in status and player is not None and kept == ""
    assert handsfree.finish(None, record.save_take)[-1] == ""


def test_uploaded_takes_lost_with_a_wiped_disk_are_named_so_they_can_be_uploaded_again(hub, hub_settings,
                                                                                       hub_tokens, tmp_path):
    settings = dataclasses.replace(hub_settings, space_id="tests/voxspace", storage="ephemeral")
    sess = _visitor(settings, hub_tokens)
    (tmp_path / "mine.wav").write_bytes(wav_bytes(*speech("twenty one twenty two")))
    (tmp_path / "t.csv").write_text("file_name,text\nmine.wav,twenty one twenty two\n")
    hub.refuse_writes()
    try:
        status, _, kept = bulk.upload_files(sess, [str(tmp_path / "mine.wav")], str(tmp_path / "t.csv"), "en")
        [item] = json.loads(kept)
        assert "1 of 1 added" in status and item["name"] == "mine.wav" and "audio" not in item
        assert unsent.resend(sess, kept)[0] == gr.skip()  # a reload: the server still holds it
        TakeStore.close_all()  # the Space restarts on a fresh disk
        shutil.rmtree(settings.data_dir)
        hub.fail_next("repo_info", 1000)  # ... and cannot read the Hub at first: nothing is judged lost
        try:
            sess = _visitor(settings, hub_tokens)
            status, receipts = unsent.resend(sess, kept)
            assert status == gr.skip() and item["key"] not in _settled(receipts)  # asked again next load
        finally:
            hub.clear_failures()
        sess = _visitor(settings, hub_tokens)  # the next page load: the Hub answers again
        status, receipts = unsent.resend(sess, kept)
    finally:
        hub.allow_writes()
    assert "1 uploaded file had not reached the Hub" in status
    assert "not stored: mine.wav. Please upload it again." in status
    assert item["key"] in _settled(receipts)  # said once: the page forgets it
    assert sess.store.takes() == []


def test_a_spoken_answer_is_handed_back_and_stored_again_as_an_answer(hub, hub_settings, hub_tokens):
    settings = dataclasses.replace(hub_settings, space_id="tests/voxspace", storage="ephemeral")
    sess = _visitor(settings, hub_tokens)
    typed = "Well, I mostly went for a walk."
    hub.refuse_writes()
    try:
        status, *_ = spontaneous.save_answer(sess, "question-en-01", wav_bytes(*speech(typed)), typed)
        item = json.loads(unsent.hand_back(sess))
        assert "Answer saved" in status and (item["text"], item["source"]) == (typed, "spontaneous")
        TakeStore.close_all()  # the Space restarts on a fresh disk
        shutil.rmtree(settings.data_dir)
        sess = _visitor(settings, hub_tokens)
        assert "1 take your browser kept" in unsent.resend(sess, json.dumps([item]))[0]
        forged = {**_kept("k9", "nine ten eleven twelve"), "source": "import"}  # not for a page to say
        unsent.resend(sess, json.dumps([forged]))
    finally:
        hub.allow_writes()
    assert {(t.text, t.phrase_id, t.source) for t in sess.store.takes()} == {
        ("nine ten eleven twelve", "en-1", "mic"), (typed, "question-en-01", "spontaneous")}
