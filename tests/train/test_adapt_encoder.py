"""The encoder option (issue 15) on the tiny Voxtral (2 encoder layers): LoRA on the top N encoder
layers and the projector, the frozen layers below cached per take, exact resume, and an adapter
that loads the way the demo Space loads it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from voxspace import checkpoint
from voxspace.encoder_cache import EncoderCache, adapted_from, audio_embeds, run_cache_dir, voxtral_of
from voxspace.errors import BadHyperparameter
from voxspace.model import LoraSettings, attach_lora, describe_adaptation
from voxspace.train import TrainConfig, Trainer

ADAPT = dict(precision="fp32", batch_size=2, epochs=2, adapt_encoder=1, dropout=0.0)


def lora_modules(model) -> set[str]:
    """Names of the modules peft wrapped (those holding a lora_A), without the PeftModel prefix."""
    return {re.sub(r"^base_model\.model\.", "", n) for n, m in model.named_modules() if hasattr(m, "lora_A")}


def test_only_the_top_encoder_layers_and_the_projector_carry_lora(base):
    model = attach_lora(base[0], LoraSettings(rank=4, alpha=8, encoder_layers=1))
    names = lora_modules(model)
    encoder = {n for n in names if "audio_tower" in n}
    assert encoder == {
        f"model.audio_tower.layers.1.{m}"
        for m in (
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.out_proj",
            "fc1",
            "fc2",
        )
    }
    assert {n for n in names if "projector" in n} == {
        "model.multi_modal_projector.linear_1",
        "model.multi_modal_projector.linear_2",
    }
    assert {n for n in names if "language_model" in n}  # the LM keeps its LoRA
    assert not any(n.startswith("model.audio_tower.layers.0.") for n in names)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert not any("audio_tower.layers.0." in n or "conv" in n for n in trainable)
    assert adapted_from(model) == 1


def test_without_the_option_the_audio_path_has_no_lora(base):
    model = attach_lora(base[0], LoraSettings(rank=4, alpha=8))
    assert not any("audio_tower" in n or "projector" in n for n in lora_modules(model))
    assert adapted_from(model) is None


@pytest.mark.parametrize("n", [-1, 33, True, 1.5])
def test_a_bad_layer_count_is_refused_before_loading(tmp_path, n):
    with pytest.raises(BadHyperparameter, match="Encoder layers to adapt"):
        Trainer(tmp_path / "run", TrainConfig(adapt_encoder=n), tmp_path / "missing")


def test_more_layers_than_the_encoder_has_is_refused(base):
    with pytest.raises(BadHyperparameter, match="has 2 layers"):
        attach_lora(base[0], LoraSettings(encoder_layers=3))


def test_the_option_is_refused_with_the_old_recipe(tmp_path):
    config = TrainConfig(adapt_encoder=2, lora_targets="attention_everywhere", encoder_cache=False)
    with pytest.raises(BadHyperparameter, match="language-model LoRA"):
        Trainer(tmp_path / "run", config, tmp_path / "missing")


def _grads(trainer, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    trainer.model.zero_grad(set_to_none=True)
    loss, _ = trainer._loss_sum(batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def test_cached_lower_layers_give_the_uncached_loss_and_gradients(tmp_path, takes_dir, base):
    trainer = Trainer(tmp_path / "run", TrainConfig(**ADAPT), takes_dir, base=base).setup()
    with torch.no_grad():  # non-zero B: the encoder adapter really changes the audio embeddings
        for n, p in trainer.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    batch = trainer.collator(trainer.examples[:3])
    cached_loss, cached = _grads(trainer, batch)
    again_loss, _ = _grads(trainer, batch)  # served from the cache this time
    assert trainer.cache.misses == 3 and trainer.cache.hits >= 3
    cache, trainer.cache = trainer.cache, None
    plain_loss, plain = _grads(trainer, batch)
    assert cached.keys() == plain.keys()
    assert any("audio_tower.layers.1" in n for n in plain) and any("projector" in n for n in plain)
    assert not any("audio_tower.layers.0" in n for n in plain)
    torch.testing.assert_close(cached_loss, plain_loss, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(again_loss, plain_loss, rtol=1e-6, atol=1e-6)
    for n in plain:
        torch.testing.assert_close(cached[n], plain[n], rtol=1e-5, atol=1e-7, msg=n)
    # the cache holds the frozen layer's output, not the (adapted) projector output
    assert all(k.endswith(".below1") for k in cache._memory)


def test_one_cache_serves_the_base_and_an_encoder_adapter_without_mixing_them(tmp_path, takes_dir, base):
    trainer = Trainer(tmp_path / "run", TrainConfig(**ADAPT), takes_dir, base=base).setup()
    with torch.no_grad():
        for n, p in trainer.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    batch = trainer.collator(trainer.examples[:2])
    features = batch["input_features"]
    cache = EncoderCache()
    with torch.no_grad():
        with trainer.model.disable_adapter():
            base_embeds = cache.inputs_embeds(trainer.model, batch)
        tuned_embeds = cache.inputs_embeds(trainer.model, batch)
        plain_tuned = audio_embeds(trainer.model, features)  # the model's own forward, adapter on
    audio = batch["input_ids"] == trainer.base_model.config.audio_token_id
    torch.testing.assert_close(tuned_embeds[audio], plain_tuned, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(base_embeds[audio], tuned_embeds[audio])


def adapter_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint.checkpoint_dir(run_dir) / "adapter_model.safetensors"))


def test_a_resumed_encoder_run_equals_an_unbroken_one(tmp_path, takes_dir, base):
    config = TrainConfig(
        precision="fp32", batch_size=1, grad_accum=2, epochs=2, dropout=0.1, lr=1e-3, adapt_encoder=1
    )
    one = Trainer(tmp_path / "one", config, takes_dir, base=base).setup()
    assert one.train_slice(budget_s=1e9).done
    model = one.close()
    for steps in (1, 3):
        trainer = Trainer(tmp_path / "many", config, takes_dir, base=(model, base[1])).setup()
        last = trainer.train_slice(budget_s=1e9, max_steps=steps)
        model = trainer.close()
    assert last.done
    a, b = adapter_weights(tmp_path / "one"), adapter_weights(tmp_path / "many")
    assert a.keys() == b.keys()
    assert any("audio_tower.layers.1" in k for k in a) and any("projector" in k for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the encoder adapter learned something
    assert any("audio_tower" in k and "lora_B" in k and a[k].abs().sum() > 0 for k in a)


def test_the_demo_loads_the_encoder_adapter(tmp_path, takes_dir, tiny_voxtral_dir, base):
    """demo_template/app.py loads BASE then PeftModel.from_pretrained(base, ADAPTER_ID): the saved
    adapter_config must bring the encoder LoRA back, giving the trained model's logits."""
    from peft import PeftModel
    from transformers import VoxtralForConditionalGeneration

    config = TrainConfig(precision="fp32", batch_size=2, epochs=1, lr=1e-2, adapt_encoder=1)
    trainer = Trainer(tmp_path / "run", config, takes_dir, base=base).setup()
    assert trainer.train_slice(budget_s=1e9).done
    batch = trainer.collator(trainer.examples[:2])
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "input_features")}
    trainer.model.eval()
    with torch.no_grad():
        trained = trainer.model(**inputs).logits
        with trainer.model.disable_adapter():
            base_logits = trainer.model(**inputs).logits

    fresh = VoxtralForConditionalGeneration.from_pretrained(tiny_voxtral_dir)
    demo = PeftModel.from_pretrained(fresh, str(tmp_path / "run" / "adapter")).eval()
    assert {n for n in lora_modules(demo) if "audio" in n or "projector" in n} == {
        n for n in lora_modules(trainer.model) if "audio" in n or "projector" in n
    }
    with torch.no_grad():
        served = demo(**inputs).logits
    torch.testing.assert_close(served, trained, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(served, base_logits)


def test_the_run_says_which_parts_were_adapted():
    assert "language model only" in describe_adaptation(0)
    text = describe_adaptation(4, 32)
    assert "top 4 of 32 audio-encoder layers" in text and "projector" in text


def test_gradient_checkpointing_with_the_encoder_option_learns_the_same_weights(tmp_path, takes_dir, base):
    """Switched on by itself on a small GPU: it must reach the adapted encoder layers unchanged."""
    runs, model = {}, base[0]
    for on in (False, True):
        config = TrainConfig(**ADAPT, gradient_checkpointing=on)
        trainer = Trainer(tmp_path / str(on), config, takes_dir, base=(model, base[1])).setup()
        trainer.train_slice(budget_s=1e9, max_steps=2)
        runs[on] = adapter_weights(tmp_path / str(on))
        model = trainer.close()
        model.activation_checkpointing_disable()
    assert any("audio_tower.layers.1" in k for k in runs[True])
    for k, v in runs[False].items():
        torch.testing.assert_close(runs[True][k], v, rtol=1e-5, atol=1e-6, msg=k)


def test_an_encoder_adapter_never_reads_the_base_models_cached_encoder_output(tmp_path, takes_dir, base):
    """With the run's encoder cache on disk (evaluate_adapter(cache_in=run)), the base model's "before"
    pass leaves each take's projector output there; the "after" pass of an adapter with LoRA in the
    encoder must not take it (its adapted layers and projector change that output). It reads only
    the frozen layer below, under its own key: the projector runs (seam: a forward hook on it), and
    the transcripts equal those of the uncached path."""
    from voxspace.evaluate import evaluate_adapter

    run_dir = tmp_path / "run"
    trainer = Trainer(run_dir, TrainConfig(**ADAPT), takes_dir, base=base).setup()
    with torch.no_grad():  # non-zero B: the encoder adapter really changes the audio embeddings
        for n, p in trainer.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    trainer.model.save_pretrained(tmp_path / "adapter")
    takes, kw = trainer.test_takes, dict(max_new_tokens=3, examples=trainer.test_examples())
    loaded = (trainer.close(), base[1])
    ids = {t.take.take_id for t in takes}

    before = evaluate_adapter(loaded, takes, None, cache_in=run_dir, **kw)

    def stored() -> set[str]:
        return {p.stem for p in run_cache_dir(run_dir, "fp32").glob("*.pt")}

    assert stored() == ids  # the base's projector output of each held-out take
    projected = []
    hook = voxtral_of(loaded[0]).model.multi_modal_projector.register_forward_hook(
        lambda *_: projected.append(1)
    )
    try:
        after = evaluate_adapter(loaded, takes, tmp_path / "adapter", before=before, cache_in=run_dir, **kw)
    finally:
        hook.remove()
    assert projected  # the adapted projector ran on the cached frozen layer
    assert stored() == ids | {f"{i}.below1" for i in ids}
    assert after == evaluate_adapter(loaded, takes, tmp_path / "adapter", encoder_cache=False, **kw)
