"""Fixtures for the publish/card/demo tests: a finished run folder and a tiny trained-looking adapter."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from voxspace.auth import Identity
from voxspace.run_record import ADAPTER_DIR, CHECKPOINT_DIR, EvalReport, RunRecord, TakeResult

LORA_TARGET = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


def make_record(base_model: str = "mistralai/Voxtral-Mini-3B-2507", **overrides) -> RunRecord:
    fields = dict(
        base_model=base_model, dataset="alice/voxspace-recordings",
        config={"lora_r": 8, "learning_rate": 3e-4, "epochs": 3, "hf_token": "must-not-appear"},
        languages=["en"], n_train_takes=42, n_test_takes=6, train_minutes=3.25, steps_done=120,
        steps_total=120, loss_history=[(1, 3.2), (40, 1.4), (80, float("nan")), (120, 0.61)],
        eval=EvalReport(n_takes=6, wer_before=0.4375, cer_before=0.21, wer_after=0.125, cer_after=0.0625,
                        per_take=[TakeResult("take-1", "open the door", "oven the door", "open the door")]),
        finished=True,
    )
    fields.update(overrides)
    return RunRecord(**fields)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_voxtral_dir) -> Path:
    return tiny_voxtral_dir


@pytest.fixture(scope="session")
def tiny_adapter_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A LoRA on the tiny model's LM, saved as training would. init_lora_weights=False gives
    non-zero B matrices, so the adapter really changes the output (fine-tuned != base)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import VoxtralForConditionalGeneration

    torch.manual_seed(0)
    model = VoxtralForConditionalGeneration.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGET,
                                                  init_lora_weights=False))
    out = tmp_path_factory.mktemp("tiny-adapter")
    peft_model.save_pretrained(out)
    return out


@pytest.fixture
def run_dir(tmp_path, tiny_adapter_dir) -> Path:
    """A finished run: summary, adapter, and a checkpoint folder that must never be published."""
    run = tmp_path / "run"
    make_record().save(run)
    (run / ADAPTER_DIR).mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (run / ADAPTER_DIR / name).write_bytes((tiny_adapter_dir / name).read_bytes())
    (run / CHECKPOINT_DIR).mkdir()
    (run / CHECKPOINT_DIR / "optimizer.pt").write_bytes(b"optimizer state")
    (run / CHECKPOINT_DIR / "trainer_state.json").write_text("{}")
    return run


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> Path:
    """A short spoken phrase (espeak-ng), the kind of file a visitor uploads."""
    path = tmp_path_factory.mktemp("speech") / "recording.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "open the door"], check=True)
    return path


@pytest.fixture(scope="session")
def alice(hub, hub_tokens) -> Identity:
    return Identity("alice", hub_tokens["alice"], "local")


@pytest.fixture(scope="session")
def bob(hub, hub_tokens) -> Identity:
    return Identity("bob", hub_tokens["bob"], "local")


def unique(name: str) -> str:
    """Repo names are unique per test: the local Hub lives for the whole session."""
    return f"{name}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def hub_models(hub, hub_tokens, tiny_model_dir, tiny_adapter_dir) -> dict[str, str]:
    """The tiny base (public) and the tiny adapter (public and private copies) on the local Hub."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.url, token=hub_tokens["alice"])
    # Prefixed: the local Hub is shared by the whole session, other areas' tests included.
    ids = {"base": "alice/publish-tiny-voxtral", "adapter": "alice/publish-tiny-adapter",
           "private_adapter": "alice/publish-tiny-adapter-private"}
    for key, folder in (("base", tiny_model_dir), ("adapter", tiny_adapter_dir),
                        ("private_adapter", tiny_adapter_dir)):
        api.create_repo(ids[key], private=key == "private_adapter", exist_ok=True)
        api.upload_folder(repo_id=ids[key], folder_path=folder)
    return ids
