"""The server side of the takes a browser keeps (ui/unsent.py): re-sent takes are stored once,
and the browser is told to forget a take only when no restart can lose it."""

from __future__ import annotations

import base64
import dataclasses
import json
import re

import gradio as gr
import pytest

from tests.signals import speech, wav_bytes
from voxspace.ui import unsent
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
