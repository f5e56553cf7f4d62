"""The Publish tab's handlers: a visitor publishes their own run, previews its card, and cannot
reach another visitor's runs (UI tests beside the publish fixtures they reuse)."""

from __future__ import annotations

import dataclasses
import shutil

import gradio as gr
import pytest

from voxspace.ui import publish
from voxspace.ui.session import start_session


def _visitor(settings, user, token):
    profile = gr.OAuthProfile({"preferred_username": user, "name": user, "profile": "", "picture": ""})
    return start_session(settings, profile=profile, token=gr.OAuthToken(token=token, scope="openid",
                                                                            expires_at=0))


@pytest.fixture
def space_settings(hub_settings):
    return dataclasses.replace(hub_settings, space_id="tests/voxspace")


def test_a_visitor_publishes_their_own_run_privately(space_settings, hub_tokens, run_dir, hub):
    alice = _visitor(space_settings, "alice", hub_tokens["alice"])
    shutil.copytree(run_dir, publish.runs_root(alice) / "run-1")
    assert publish.list_runs(alice) == ["run-1"]
    status, card = publish.preview(alice, "run-1", "", False, False)
    assert "WER" in card or "wer" in card
    status, adapter = publish.publish(alice, "run-1", "alice/voxtral-ui-test", False, False)
    assert "Published to alice/voxtral-ui-test" in status and adapter == "alice/voxtral-ui-test"
    assert hub.is_private("alice/voxtral-ui-test")
    assert "adapter_model.safetensors" in hub.list_files("alice/voxtral-ui-test")


def test_another_visitors_runs_are_out_of_reach(space_settings, hub_tokens, run_dir):
    alice = _visitor(space_settings, "alice", hub_tokens["alice"])
    shutil.copytree(run_dir, publish.runs_root(alice) / "run-1")
    bob = _visitor(space_settings, "bob", hub_tokens["bob"])
    assert publish.list_runs(bob) == []
    status, _ = publish.publish(bob, "run-1", "", False, False)
    assert "Choose one of your finished training runs" in status
    status, _ = publish.publish(bob, "../alice/run-1", "", False, False)
    assert "Choose one of your finished training runs" in status


def test_signed_out_visitors_are_asked_to_sign_in(space_settings):
    anon = start_session(space_settings, profile=None, token=None)
    status, _ = publish.publish(anon, "run-1", "", False, False)
    assert "Sign in" in status
