"""A base model that cannot be had says so at once, in one sentence with what to do (issue 16):
a wrong folder, a typo in the id, a gated repo, no network. Checked before any time is spent."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import socket
import time

import pytest
from huggingface_hub import HfApi

from voxspace import run_service
from voxspace.auth import Identity
from voxspace.cli import main
from voxspace.errors import ModelUnavailable
from voxspace.model import ModelConfig, check_base_model
from voxspace.store import TakeStore, local_folder
from voxspace.ui import train
from voxspace.ui.session import Session


def _closed_endpoint() -> str:
    """A local port nobody listens on: the Hub as seen from a machine with no network."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def model_repo(hub, hub_tokens, fresh_repo_id):
    """A public model repo of alice's holding a config.json."""
    repo = fresh_repo_id("alice", "voxtral-copy")
    api = HfApi(endpoint=hub.url, token=hub_tokens["alice"])
    api.create_repo(repo, private=False)
    api.upload_file(path_or_fileobj=io.BytesIO(json.dumps({"model_type": "voxtral"}).encode()),
                    path_in_repo="config.json", repo_id=repo)
    return repo


def test_a_folder_that_is_not_a_model_and_a_path_that_does_not_exist(tmp_path):
    with pytest.raises(ModelUnavailable, match="holds no model") as e:
        check_base_model(ModelConfig(str(tmp_path)))
    assert "VOXSPACE_BASE_MODEL" in e.value.user_message and "Space" not in e.value.user_message
    with pytest.raises(ModelUnavailable, match="not a folder on this machine"):
        check_base_model(ModelConfig(str(tmp_path / "no" / "such-folder")))


def test_a_typo_in_the_id_is_named_locally_and_in_a_space(hub):
    with pytest.raises(ModelUnavailable, match="was not found on the Hugging Face Hub") as e:
        check_base_model(ModelConfig("mistralai/Voxtral-Mini-3B-2507-typo"), endpoint=hub.url)
    assert "set VOXSPACE_BASE_MODEL" in e.value.user_message and "Space" not in e.value.user_message
    with pytest.raises(ModelUnavailable) as e:
        check_base_model(ModelConfig("nobody/nothing"), endpoint=hub.url, in_space=True)
    assert "this Space's settings" in e.value.user_message


def test_a_gated_model_says_accept_its_terms(hub, hub_tokens, model_repo):
    hub.gate(model_repo)
    for token in (None, hub_tokens["bob"]):
        with pytest.raises(ModelUnavailable, match="is gated: open its page on the Hub, accept its terms"):
            check_base_model(ModelConfig(model_repo, token=token), endpoint=hub.url)
    check_base_model(ModelConfig(model_repo, token=hub_tokens["alice"]), endpoint=hub.url)  # the owner


def test_no_network_fails_in_a_second_unless_a_copy_is_cached(hub, model_repo, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(ModelUnavailable, match="the Hugging Face Hub cannot be reached") as e:
        check_base_model(ModelConfig(model_repo, cache_dir=str(tmp_path / "empty")),
                         endpoint=_closed_endpoint())
    assert time.monotonic() - t0 < 5  # no retry loop (the loader's retries took 82 s)
    assert "set VOXSPACE_BASE_MODEL" in e.value.user_message and "folder" in e.value.user_message

    cfg = ModelConfig(model_repo, cache_dir=str(tmp_path / "cache"))
    check_base_model(cfg, endpoint=hub.url)  # online: config.json lands in the cache
    assert cfg.local_files_only is False
    offline = ModelConfig(model_repo, cache_dir=str(tmp_path / "cache"))
    check_base_model(offline, endpoint=_closed_endpoint())
    assert offline.local_files_only is True  # the loader then reads the cache without retrying


@pytest.fixture
def local_sess(hub_settings, takes_dir) -> Session:
    settings = dataclasses.replace(hub_settings, base_model="nobody/voxtral-typo")
    shutil.copytree(takes_dir, local_folder(settings))
    nobody = Identity(None)
    return Session(settings=settings, identity=nobody, store=TakeStore.for_identity(settings, nobody))


def test_the_train_tab_and_the_cli_say_the_sentence_and_start_nothing(local_sess, takes_dir, tmp_path,
                                                                      monkeypatch, capsys):
    before = run_service.active_run(local_sess.identity)
    status, start_btn, *_ = train.start(local_sess, "quick", *train.preset_values("quick"), False)
    assert "Error" in status and "nobody/voxtral-typo was not found" in status
    assert "Traceback" not in status
    assert start_btn["interactive"] is True and run_service.active_run(local_sess.identity) is before

    monkeypatch.delenv("HF_TOKEN", raising=False)
    t0 = time.monotonic()
    code = main(["train", "--data", str(takes_dir), "--base-model", "nobody/voxtral-typo",
                 "--out", str(tmp_path / "run"), "--preset", "quick"])
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - t0 < 30
    assert err.startswith("error: The base model nobody/voxtral-typo was not found")
    assert "Traceback" not in err


def test_evaluate_with_a_wrong_adapter_path_says_which_folder_to_give(takes_dir, tiny_voxtral_dir, tmp_path,
                                                                     capsys):
    args = ["evaluate", "--data", str(takes_dir), "--base-model", str(tiny_voxtral_dir),
            "--precision", "fp32"]
    assert main([*args, "--adapter", str(tmp_path / "runs" / "first" / "adapter")]) == 2
    err = capsys.readouterr().err
    assert "does not exist: give the adapter/ folder of a finished training run" in err
    assert "Traceback" not in err and "ValueError" not in err
    (tmp_path / "empty").mkdir()
    assert main([*args, "--adapter", str(tmp_path / "empty")]) == 2
    assert "holds no adapter_config.json" in capsys.readouterr().err
