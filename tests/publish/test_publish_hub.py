"""Publishing against the local Hub-API server: files, visibility, one commit, no secrets, a card
whose numbers equal the evaluation's and whose usage snippet really runs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from huggingface_hub import ModelCard

from voxspace.card import BASE_CONFIG, TUNED_CONFIG, extract_snippet
from voxspace.errors import PublishError, VoxSpaceError
from voxspace.publish import format_bytes, merged_size, publish_adapter
from voxspace.run_record import RunRecord

from .conftest import make_record, unique

PUBLISHED = {"adapter_config.json", "adapter_model.safetensors", "README.md", "loss.svg"}


def _user_files(hub, repo_id: str) -> set[str]:
    return {f for f in hub.list_files(repo_id) if f != ".gitattributes"}


def test_publish_pushes_adapter_and_card_privately_in_one_commit(hub, alice, hub_settings, run_dir, caplog):
    caplog.set_level(logging.DEBUG)
    name = unique("voxtral-alice")
    res = publish_adapter(run_dir, name, alice, hub_settings)

    assert res.repo_id == f"alice/{name}" and res.private is True
    assert hub.is_private(res.repo_id)
    assert _user_files(hub, res.repo_id) == PUBLISHED  # no checkpoint/, no optimizer, no summary
    assert [c["title"] for c in hub.commits(res.repo_id)][1:] == ["Publish adapter and model card (VoxSpace)"]
    assert set(hub.commits(res.repo_id)[-1]["files"]) >= PUBLISHED  # everything in that one commit
    assert hub.read_file(res.repo_id, "adapter_model.safetensors") == \
        (run_dir / "adapter" / "adapter_model.safetensors").read_bytes()
    pushed_cfg = json.loads(hub.read_file(res.repo_id, "adapter_config.json"))
    local_cfg = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert pushed_cfg["base_model_name_or_path"] == "mistralai/Voxtral-Mini-3B-2507"
    assert {k: v for k, v in pushed_cfg.items() if k != "base_model_name_or_path"} == \
        {k: v for k, v in local_cfg.items() if k != "base_model_name_or_path"}

    card = ModelCard(hub.read_file(res.repo_id, "README.md").decode())
    ev = RunRecord.load(run_dir).eval
    got = {(r.metric_config, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert got == {(BASE_CONFIG, "wer"): ev.wer_before, (BASE_CONFIG, "cer"): ev.cer_before,
                   (TUNED_CONFIG, "wer"): ev.wer_after, (TUNED_CONFIG, "cer"): ev.cer_after}
    assert card.data.license == "apache-2.0"  # the base repo is not on this Hub: the known fallback

    token = alice.token
    for path in hub.list_files(res.repo_id):
        assert token.encode() not in hub.read_file(res.repo_id, path)
    assert token not in caplog.text
    assert token not in hub.log_path.read_text()


def test_public_toggle_and_republishing_private_again(hub, alice, hub_settings, run_dir):
    name = unique("voxtral-public")
    res = publish_adapter(run_dir, name, alice, hub_settings, private=False)
    assert res.private is False and not hub.is_private(res.repo_id)
    res = publish_adapter(run_dir, name, alice, hub_settings)  # default is private, applied again
    assert hub.is_private(res.repo_id)


def test_a_repo_holding_training_checkpoints_is_never_made_public(hub, alice, hub_settings, run_dir,
                                                                  hub_tokens):
    from huggingface_hub import HfApi

    repo = f"alice/{unique('voxtral-ckpt')}"
    api = HfApi(endpoint=hub.url, token=hub_tokens["alice"])
    api.create_repo(repo, private=True)
    api.upload_file(path_or_fileobj=b"optimizer state", path_in_repo="checkpoint/optimizer.pt", repo_id=repo)
    with pytest.raises(PublishError, match="also holds training checkpoints"):
        publish_adapter(run_dir, repo, alice, hub_settings, private=False)
    assert hub.is_private(repo)
    assert "README.md" not in hub.list_files(repo)  # nothing was pushed either
    res = publish_adapter(run_dir, repo, alice, hub_settings)  # private stays possible
    assert hub.is_private(res.repo_id) and "adapter_model.safetensors" in hub.list_files(repo)


def test_license_is_read_from_the_base_repos_card(hub, alice, hub_settings, run_dir, hub_tokens):
    from huggingface_hub import HfApi

    base = f"alice/{unique('base-with-license')}"
    api = HfApi(endpoint=hub.url, token=hub_tokens["alice"])
    api.create_repo(base)
    api.upload_file(path_or_fileobj=b"---\nlicense: cc-by-nc-4.0\n---\n# base\n", path_in_repo="README.md",
                    repo_id=base)
    make_record(base_model=base).save(run_dir)
    res = publish_adapter(run_dir, unique("voxtral-lic"), alice, hub_settings)
    assert ModelCard(hub.read_file(res.repo_id, "README.md").decode()).data.license == "cc-by-nc-4.0"


def test_a_lost_commit_response_is_retried_without_duplicating(hub, alice, hub_settings, run_dir):
    name = unique("voxtral-retry")
    hub.fail_next_commits(1, status=502, after_apply=True)
    res = publish_adapter(run_dir, name, alice, hub_settings)
    assert _user_files(hub, res.repo_id) == PUBLISHED
    assert len(hub.commits(res.repo_id)) == 2  # the initial commit + ours, once


def test_writing_into_someone_elses_namespace_is_a_clear_error(hub, alice, hub_settings, run_dir):
    with pytest.raises(VoxSpaceError) as e:
        publish_adapter(run_dir, f"bob/{unique('stolen')}", alice, hub_settings)
    assert e.value.user_message.startswith("Could not create the model repo bob/")
    assert alice.token not in str(e.value)


def test_merged_model_is_sized_before_it_is_pushed(hub, alice, hub_settings, run_dir, tiny_model_dir):
    make_record(base_model=str(tiny_model_dir)).save(run_dir)
    estimate = merged_size(run_dir, alice, hub_settings)
    said: list[str] = []
    res = publish_adapter(run_dir, unique("voxtral-merged"), alice, hub_settings, merged=True,
                          progress=said.append)
    files = _user_files(hub, res.repo_id)
    assert {"merged/config.json", "merged/model.safetensors", "merged/tekken.json"} <= files
    assert files >= PUBLISHED
    size_msgs = [i for i, m in enumerate(said) if "Merging the adapter into a bf16 copy" in m]
    upload = next(i for i, m in enumerate(said) if m.startswith("Uploading"))
    assert size_msgs and size_msgs[0] < upload
    assert estimate and estimate <= res.merged_bytes < estimate + 2**20  # + config, tokenizer, headers
    assert format_bytes(estimate) in said[size_msgs[0]]
    cfg = json.loads(hub.read_file(res.repo_id, "merged/config.json"))
    assert cfg.get("dtype", cfg.get("torch_dtype")) == "bfloat16"


@pytest.mark.slow
def test_the_cards_usage_snippet_runs_against_the_published_adapter(hub, alice, hub_settings, run_dir,
                                                                   hub_models, speech_wav, tmp_path,
                                                                   tiny_model_dir, tiny_adapter_dir):
    """Copy the snippet out of the pushed card, run it in a fresh interpreter, compare its output with
    the same model + adapter loaded here: the reader gets the fine-tuned transcription."""
    import soundfile as sf
    import torch
    from peft import PeftModel
    from transformers import AutoProcessor, VoxtralForConditionalGeneration

    from voxspace.evaluate import token_limit

    make_record(base_model=hub_models["base"]).save(run_dir)
    res = publish_adapter(run_dir, unique("voxtral-snippet"), alice, hub_settings)  # private
    snippet = extract_snippet(hub.read_file(res.repo_id, "README.md").decode())

    work = tmp_path / "reader"
    work.mkdir()
    (work / "recording.wav").write_bytes(speech_wav.read_bytes())
    env = {**os.environ, "HF_TOKEN": alice.token, "HF_HOME": str(tmp_path / "reader-hf-home"),
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    out = subprocess.run([sys.executable, "-c", snippet], cwd=work, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    base = VoxtralForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    model = PeftModel.from_pretrained(base, tiny_adapter_dir).eval()
    inputs = processor.apply_transcription_request(language="en", audio=str(speech_wav), model_id="x")
    inputs = inputs.to(dtype=torch.bfloat16)
    limit = token_limit(sf.info(str(speech_wav)).duration)  # the evaluation's rule: same length
    with torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=limit, do_sample=False)
    expected = processor.batch_decode(ids[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]
    assert expected.strip()
    assert out.stdout.rstrip("\n") == expected
    assert alice.token not in out.stdout + out.stderr
