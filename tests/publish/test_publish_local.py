"""Publishing checks that need no Hub: what counts as a publishable run, names, sizes, tokens."""

from __future__ import annotations

import pytest

from voxspace.auth import Identity
from voxspace.demo import check_read_only_token
from voxspace.errors import BadRepoName, NothingToPublish, TokenNotAllowed
from voxspace.publish import (
    ADAPTER_FILES,
    adapter_files,
    estimate_merged_bytes,
    format_bytes,
    publish_adapter,
)
from voxspace.run_record import ADAPTER_DIR
from voxspace.settings import Settings


def test_adapter_files_are_exactly_the_two_peft_files(run_dir):
    files = adapter_files(run_dir)
    assert sorted(files) == sorted(ADAPTER_FILES)


def test_a_folder_without_a_run_or_adapter_is_refused(run_dir, tmp_path):
    with pytest.raises(NothingToPublish, match="No training run"):
        adapter_files(tmp_path / "nowhere")
    (run_dir / ADAPTER_DIR / "adapter_model.safetensors").unlink()
    with pytest.raises(NothingToPublish, match="no saved adapter") as e:
        adapter_files(run_dir)
    assert "adapter_model.safetensors" in e.value.detail


def test_a_damaged_adapter_config_is_refused(run_dir):
    (run_dir / ADAPTER_DIR / "adapter_config.json").write_text("{not json")
    with pytest.raises(NothingToPublish, match="damaged"):
        adapter_files(run_dir)


@pytest.mark.parametrize("bad", ["", "a/b/c", "alice/has space", "alice/-bad-"])
def test_a_bad_repo_name_is_refused_before_any_hub_call(bad, run_dir):
    offline = Settings(hub_endpoint="http://127.0.0.1:9")  # nothing listens: a Hub call would fail
    with pytest.raises(BadRepoName) as e:
        publish_adapter(run_dir, bad, Identity("alice", "hf_x", "local"), offline)
    assert e.value.user_message


def test_merged_size_is_two_bytes_per_base_parameter(tiny_model_dir):
    from transformers import VoxtralForConditionalGeneration

    model = VoxtralForConditionalGeneration.from_pretrained(tiny_model_dir)
    n = sum(t.numel() for t in model.state_dict().values())
    assert estimate_merged_bytes(str(tiny_model_dir)) == 2 * n
    assert estimate_merged_bytes("someone/not-local") is None  # no Hub asked, no guess
    assert format_bytes(9_400_000_000) == "8.8 GB" and format_bytes(512) == "512 B"


def test_the_apps_own_token_is_never_accepted_as_the_demo_token():
    me = Identity("alice", "hf_alice_write", "local")
    with pytest.raises(TokenNotAllowed, match="signed in with"):
        check_read_only_token("hf_alice_write", me, Settings(hub_endpoint="http://127.0.0.1:9"))
    with pytest.raises(TokenNotAllowed):
        check_read_only_token("  ", me, Settings(hub_endpoint="http://127.0.0.1:9"))
    assert "hf_alice_write" not in repr(me)


def _make_worse(run_dir) -> None:
    from voxspace.run_record import RunRecord

    record = RunRecord.load(run_dir)
    record.eval.wer_after = record.eval.wer_before  # no better: equal counts as not better
    record.save(run_dir)


def test_an_adapter_no_better_than_the_base_is_refused_before_any_hub_call(run_dir):
    from voxspace.errors import NotBetter

    _make_worse(run_dir)
    offline = Settings(hub_endpoint="http://127.0.0.1:9")  # nothing listens: a Hub call would fail
    with pytest.raises(NotBetter) as e:
        publish_adapter(run_dir, "alice/voxtral-worse", Identity("alice", "hf_x", "local"), offline)
    assert "not better than the base model" in e.value.user_message
    assert "43.8% against 43.8%" in e.value.user_message and "anyway" in e.value.user_message
