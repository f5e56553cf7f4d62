"""VoxFactory's training recipe as it ships (scripts/train_lora.py), on this project's step loop.

The bench compares VoxSpace with what people run today, so the reference must be that recipe, not
VoxSpace with a few levers off. What differs from the engine, per pass:
- LoRA r=8, alpha 32, dropout 0 on a plain q/k/v/o list (which also adapts the audio encoder);
  batch 2 x accumulation 4, bf16 weights, 3 epochs as shipped.
- HF Trainer's `bf16=True`: the forward runs under bf16 autocast (LoRA weights are fp32 in peft).
- HF's loss: `model(..., labels=...)`, i.e. the lm_head over every position and fp32 logits of the
  whole (batch, sequence, vocab) before the cross-entropy.
- Mel features extracted on the CPU by the collator at every step, from 16 kHz audio.
Everything else (optimizer, schedule, clipping, checkpoints) is the engine's, so the difference
measured is the recipe's, not the harness's.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from voxspace.data import IGNORE, Example
from voxspace.train import Trainer

SAMPLE_RATE = 16_000
CHUNK_SAMPLES = 30 * SAMPLE_RATE  # Voxtral's 30 s chunk: 3000 mel frames
VOXFACTORY_EPOCHS = 3
VOXFACTORY = dict(
    precision="bf16",
    batch_size=2,
    grad_accum=4,
    rank=8,
    alpha=32,
    dropout=0.0,
    encoder_cache=False,
    length_batching=False,
    label_logits_only=False,
    lora_targets="attention_everywhere",
    auto_batch=False,
)


def feature_extractor() -> Any:
    """Voxtral's feature extractor (Whisper's, 128 mel bins), built without any download."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=128)


def mel_features(audio: np.ndarray, extractor: Any) -> torch.Tensor:
    """(n_chunks, 128, 3000) log-mel features of 16 kHz `audio`, one row per started 30 s chunk."""
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"expected a non-empty mono signal, got shape {audio.shape}")
    pieces = [audio[i : i + CHUNK_SAMPLES] for i in range(0, audio.size, CHUNK_SAMPLES)]
    return extractor(pieces, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features


def synthetic_audio(seconds: float, seed: int) -> np.ndarray:
    """Quiet noise of the take's length: the mel cost depends on the length, not the content."""
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(max(1, round(seconds * SAMPLE_RATE)))).astype(np.float32)


class MelPerStep:
    """Collator wrapper that recomputes each take's mel features from its audio on every call,
    as a collator fed raw audio does; the stored features are replaced, shapes checked."""

    def __init__(self, inner: Any, audio: dict[str, np.ndarray], extractor: Any | None = None) -> None:
        self.inner, self.audio = inner, audio
        self.extractor = extractor or feature_extractor()
        self.calls = 0

    def __call__(self, examples: list[Example]) -> dict[str, Any]:
        batch = self.inner(examples)
        features = torch.cat([mel_features(self.audio[e.take_id], self.extractor) for e in examples])
        if features.shape != batch["input_features"].shape:
            stored = tuple(batch["input_features"].shape)
            raise ValueError(f"audio gives features {tuple(features.shape)}, the takes hold {stored}")
        batch["input_features"] = features
        self.calls += 1
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def hf_loss_sum(model: Any, batch: dict[str, Any], device: Any, *, autocast: bool) -> tuple[Any, int]:
    """HF's causal-LM loss (every position, fp32 logits, mean over label tokens) as a sum and count."""
    labels = batch["labels"].to(device)
    n = int((labels[:, 1:] != IGNORE).sum())  # HF shifts: position t predicts label t+1
    tower = next(model.get_base_model().model.audio_tower.parameters())
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if autocast else nullcontext()
    with ctx:
        out = model(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            input_features=batch["input_features"].to(device, tower.dtype),
            labels=labels,
        )
    return out.loss * n, n


class VoxFactoryTrainer(Trainer):
    """The engine's loop with VoxFactory's per-pass work: per-step mel features and HF's loss.

    `audio`: 16 kHz signals by take id. Autocast follows the recipe's bf16; in fp32 (the CPU
    bench, where bf16 is emulated) it is left off, which the bench's table says.
    """

    def __init__(self, *args: Any, audio: dict[str, np.ndarray], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.audio = audio

    def setup(self) -> VoxFactoryTrainer:
        super().setup()
        self.collator = MelPerStep(self.collator, self.audio)
        return self

    def _loss_sum(self, batch: dict[str, Any]) -> tuple[Any, int]:
        return hf_loss_sum(self.model, batch, self.device, autocast=self.config.precision == "bf16")
