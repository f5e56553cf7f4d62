"""Shared fixtures for the training engine: espeak-ng takes in the dataset layout, a tiny Voxtral."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from voxspace.layout import Take, write_take

TEXTS = [
    "hello world",
    "open the door",
    "the cat sat on the mat",
    "good morning",
    "read the green book",
    "it is raining again",
]


def speak(text: str, *, voice: str = "en", pad_to_s: float | None = None) -> bytes:
    """espeak-ng speech as 16 kHz mono 16-bit WAV bytes (optionally padded with silence)."""
    import soundfile as sf
    import soxr

    raw = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], check=True, capture_output=True).stdout
    x, sr = sf.read(io.BytesIO(raw), dtype="float32", always_2d=True)
    x = soxr.resample(x.mean(axis=1), sr, 16000, quality="HQ").astype(np.float32)
    if pad_to_s:
        x = np.concatenate([x, np.zeros(int(pad_to_s * 16000) - len(x), np.float32)])
    buf = io.BytesIO()
    sf.write(buf, x, 16000, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def make_take(
    root: Path,
    seq: int,
    text: str,
    *,
    language: str = "en",
    split: str | None = None,
    pad_to_s: float | None = None,
) -> Take:
    from voxspace.layout import split_for

    wav = speak(text, voice=language or "en", pad_to_s=pad_to_s)
    take = Take(
        take_id=f"t{seq:03d}",
        text=text,
        language=language,
        duration=len(wav) / 32000,
        phrase_id=f"en-{seq:04d}",
        split=split or split_for(seq),
        seq=seq,
        created_at=0.0,
    )
    write_take(root, take, wav)
    return take


@pytest.fixture(scope="session")
def takes_dir(tmp_path_factory) -> Path:
    """Six English takes: seq 1 and 4 are held out (layout.split_for), four are for training."""
    root = tmp_path_factory.mktemp("takes")
    for seq, text in enumerate(TEXTS):
        make_take(root, seq, text)
    return root


@pytest.fixture(scope="session", autouse=True)
def _two_threads():
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def base(tiny_voxtral_dir):
    """A freshly loaded fp32 tiny base (model, processor): each test trains its own LoRA."""
    from voxspace.model import ModelConfig, load_base

    return load_base(ModelConfig(str(tiny_voxtral_dir), precision="fp32"))


@pytest.fixture
def recordings(hub, hub_tokens, takes_dir, fresh_repo_id) -> str:
    """alice's six takes in a private dataset repo on the local Hub (a Hugging Face Job reads them there)."""
    from huggingface_hub import HfApi

    repo = fresh_repo_id("alice", "recordings")
    api = HfApi(endpoint=hub.url, token=hub_tokens["alice"])
    api.create_repo(repo, repo_type="dataset", private=True)
    api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=str(takes_dir))
    return repo
