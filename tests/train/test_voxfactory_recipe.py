"""voxspace.devtools.voxfactory: the bench's "upstream" is VoxFactory's recipe as written. These check
that its per-step features are Voxtral's features and that its loss is HF's loss; no timing."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from voxspace.data import TranscriptionCollator
from voxspace.devtools.voxfactory import (
    VOXFACTORY,
    MelPerStep,
    VoxFactoryTrainer,
    feature_extractor,
    hf_loss_sum,
    mel_features,
    synthetic_audio,
)
from voxspace.layout import read_folder
from voxspace.train import TrainConfig, Trainer


def test_mel_features_start_one_chunk_per_30_seconds():
    fe = feature_extractor()
    assert mel_features(synthetic_audio(1.0, 0), fe).shape == (1, 128, 3000)
    assert mel_features(synthetic_audio(30.0, 0), fe).shape == (1, 128, 3000)
    assert mel_features(synthetic_audio(35.0, 0), fe).shape == (2, 128, 3000)
    with pytest.raises(ValueError, match="non-empty mono"):
        mel_features(np.zeros(0, dtype=np.float32), fe)
    with pytest.raises(ValueError, match="non-empty mono"):
        mel_features(np.zeros((2, 16000), dtype=np.float32), fe)


def test_per_step_features_are_the_features_the_processor_stores(takes_dir, tiny_voxtral_dir):
    from transformers import AutoProcessor

    collator = TranscriptionCollator(AutoProcessor.from_pretrained(tiny_voxtral_dir))
    take = read_folder(takes_dir)[0]
    stored = collator.encode(take)
    audio, rate = soundfile.read(take.wav, dtype="float32")
    assert rate == 16_000
    wrapped = MelPerStep(collator, {stored.take_id: audio})
    batch = wrapped([stored])
    assert wrapped.calls == 1
    assert torch.allclose(batch["input_features"], stored.input_features, atol=1e-3)
    assert torch.equal(batch["input_ids"], collator([stored])["input_ids"])  # only the features change


def test_per_step_features_refuse_audio_that_does_not_match_the_take(takes_dir, tiny_voxtral_dir):
    from transformers import AutoProcessor

    collator = TranscriptionCollator(AutoProcessor.from_pretrained(tiny_voxtral_dir))
    stored = collator.encode(read_folder(takes_dir)[0])
    wrapped = MelPerStep(collator, {stored.take_id: synthetic_audio(40.0, 0)})  # 2 chunks, the take has 1
    with pytest.raises(ValueError, match="the takes hold"):
        wrapped([stored])


def test_hf_loss_is_the_engines_loss_over_every_position(tmp_path, takes_dir, base):
    config = TrainConfig(
        precision="fp32", batch_size=2, epochs=1, label_logits_only=False, encoder_cache=False
    )
    trainer = Trainer(tmp_path / "run", config, takes_dir, base=base).setup()
    batch = trainer.collator(trainer.examples[:2])
    with torch.no_grad():
        engine_sum, engine_n = trainer._loss_sum(batch)
        hf_sum, hf_n = hf_loss_sum(trainer.model, batch, trainer.device, autocast=False)
    assert hf_n == engine_n > 0
    assert float(hf_sum) == pytest.approx(float(engine_sum), rel=1e-5)
    trainer.close()


def test_voxfactory_trainer_extracts_features_at_every_pass(tmp_path, takes_dir, base):
    from dataclasses import replace

    config = replace(TrainConfig(), **{**VOXFACTORY, "precision": "fp32"}, epochs=1)
    encoder = Trainer(tmp_path / "enc", config, takes_dir, base=base).setup()
    examples = encoder.examples
    encoder.close()  # takes its LoRA off the shared base
    audio = {}
    for t in read_folder(takes_dir):
        audio[t.take.take_id] = soundfile.read(t.wav, dtype="float32")[0]
    trainer = VoxFactoryTrainer(tmp_path / "run", config, "bench", base=base, examples=examples, audio=audio)
    trainer.setup()
    assert isinstance(trainer.collator, MelPerStep)
    summary = trainer.train_slice(budget_s=1e9, max_steps=1)
    assert summary.steps_run == 1 and summary.last_loss is not None and np.isfinite(summary.last_loss)
    # the one step holds every take (fewer than 2 x 4), in passes of 2: one extraction per pass
    assert trainer.collator.calls == -(-len(examples) // config.batch_size) >= 2
    lora = [n for n, _ in trainer.model.named_modules() if n.endswith("lora_A")]
    assert any("audio_tower" in n for n in lora)  # r=8 on q/k/v/o everywhere, the encoder included
    trainer.close()
