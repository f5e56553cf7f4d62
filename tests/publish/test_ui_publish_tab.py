"""The Publish tab's handlers: a visitor publishes their own run, previews its card, and cannot
reach another visitor's runs (UI tests beside the publish fixtures they reuse)."""

from __future__ import annotations

import dataclasses
import shutil

import gradio as gr
import pytest

from voxspace.ui import publish
from voxspace.ui.session import start_session

from .conftest import unique


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
    assert "sign in with Hugging Face (the button at the top of the page)" in status


def test_a_worse_model_is_named_before_publishing_and_needs_the_tick(space_settings, hub_tokens, run_dir,
                                                                      hub):
    from voxspace.run_record import RunRecord

    alice = _visitor(space_settings, "alice", hub_tokens["alice"])
    run = publish.runs_root(alice) / "run-worse"
    shutil.copytree(run_dir, run)
    record = RunRecord.load(run)
    record.eval.wer_after = 0.5  # worse than the base's 43.8%
    record.save(run)
    status, card = publish.preview(alice, "run-worse", "", False, False)
    assert "not better than the base model" in status and "50.0% against 43.8%" in status
    assert "did not improve on the base model" in card  # the card states it too
    repo = f"alice/{unique('voxtral-worse')}"
    status, _ = publish.publish(alice, "run-worse", repo, False, False, False)
    assert "not better than the base model" in status and not hub.repo_exists(repo)
    status, adapter = publish.publish(alice, "run-worse", repo, False, False, True)  # ticked: anyway
    assert f"Published to {repo}" in status and adapter == repo and hub.repo_exists(repo)
    assert "did not improve on the base model" in hub.read_file(repo, "README.md").decode()


def test_the_card_and_the_files_can_be_read_before_signing_in(space_settings, hub_settings, run_dir, hub):
    """Issue 16: no token, no card. Locally and in a Space, Preview needs no sign-in; what it says
    about signing in matches where the person is (no button on one's own machine)."""
    from voxspace.auth import ANONYMOUS
    from voxspace.ui.session import Session

    local = Session(settings=hub_settings, identity=ANONYMOUS, store=None)
    shutil.copytree(run_dir, publish.runs_root(local) / "run-1")
    status, card = publish.preview(local, "run-1", "", False, False)
    assert "model-index" in card and "Note" in status
    assert "Nothing has been pushed" in status and "your-username/voxtral-run-1" in status
    assert "adapter_model.safetensors" in status and "private" in status
    assert "HF_TOKEN" in status and "hf auth login" in status and "button" not in status
    assert not hub.repo_exists("your-username/voxtral-run-1")
    status, _ = publish.publish(local, "run-1", "", False, False)
    assert "HF_TOKEN" in status and "button" not in status

    anon = start_session(space_settings, profile=None, token=None)
    shutil.copytree(run_dir, publish.runs_root(anon) / "run-1", dirs_exist_ok=True)
    status, card = publish.preview(anon, "run-1", "", True, False)
    assert "model-index" in card and "public" in status and "button at the top" in status
    assert "HF_TOKEN" not in status
