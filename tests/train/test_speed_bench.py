"""bench/train_speed.py and the seams it uses: what each variant configures, the synthetic takes'
prompt layout, pre-encoded examples in the Trainer. Behaviour only: no timing is asserted."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch

from tests.train.conftest import make_take
from voxspace.data import IGNORE, TranscriptionCollator
from voxspace.devtools.synthetic_takes import (
    AUDIO,
    EOS,
    SyntheticProcessor,
    chunks_for,
    prompt_ids,
    synthetic_examples,
)
from voxspace.devtools.voxfactory import VOXFACTORY
from voxspace.errors import BadHyperparameter
from voxspace.layout import read_folder
from voxspace.model import attach_lora, audio_module_names, detach_lora
from voxspace.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("train_speed", ROOT / "bench" / "train_speed.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def lora_names(model) -> list[str]:
    return [n for n, _ in model.named_modules() if n.endswith("lora_A")]


def test_variants_configure_what_they_claim(bench):
    variants = {v.name: v for v in bench.build_variants(epochs=5)}
    default, up = TrainConfig(epochs=5), variants["upstream"].config
    assert variants["default"].config == default
    # VoxFactory's scripts/train_lora.py as written: every field it sets, nothing else changed
    assert variants["upstream"].recipe == "voxfactory"
    assert up == replace(default, **VOXFACTORY)
    assert (up.precision, up.batch_size, up.grad_accum, up.rank, up.alpha, up.dropout) == (
        "bf16",
        2,
        4,
        8,
        32,
        0.0,
    )
    assert not (up.encoder_cache or up.length_batching or up.label_logits_only or up.auto_batch)
    assert up.lora_targets == "attention_everywhere"
    for name, v in variants.items():
        config = v.config
        config.validate()  # every variant is a configuration the engine accepts
        if name != "upstream":
            assert v.recipe == "voxspace"
        if name.startswith("-") and name != "-lm_only_lora":
            changed = {
                f.name for f in fields(TrainConfig) if getattr(config, f.name) != getattr(default, f.name)
            }
            lever = name[1:]
            fixed_2x4 = {"batch_size", "grad_accum", "auto_batch"}
            assert changed == ({"precision"} if lever == "8bit" else
                               fixed_2x4 if lever == "batch_4x1" else {lever})  # fmt: skip
    assert variants["+grad_ckpt"].config.gradient_checkpointing
    fit = variants["+fit_2x4"].config
    assert fit.auto_batch and fit.batch_size * fit.grad_accum == 8 and not up.auto_batch


def test_variants_run_in_the_order_asked(bench):
    variants = bench.build_variants()
    picked = bench.select_variants(variants, "-encoder_cache,default,upstream")
    assert [v.name for v in picked] == ["-encoder_cache", "default", "upstream"]
    assert bench.select_variants(variants, None) == variants
    with pytest.raises(ValueError, match="unknown variant"):
        bench.select_variants(variants, "default,-turbo")
    with pytest.raises(ValueError, match="twice"):
        bench.select_variants(variants, "default,default")


def test_bench_refuses_an_unknown_variant_before_loading_anything():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "train_speed.py"), "--variants", "default,-turbo"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2 and "unknown variant(s) -turbo" in proc.stderr


def test_upstream_lora_reaches_the_audio_encoder_and_the_default_does_not(bench, base):
    model, _ = base
    variants = {v.name: v.config for v in bench.build_variants()}
    audio = set(audio_module_names(model))
    upstream = attach_lora(model, variants["upstream"].lora())
    in_audio = [n for n in lora_names(upstream) if "audio_tower" in n]
    assert in_audio and all(".self_attn." in n for n in in_audio)  # q/k/v of every encoder layer
    model = detach_lora(upstream)
    default = attach_lora(model, variants["default"].lora())
    names = lora_names(default)
    assert names and not [n for n in names if "audio_tower" in n or "multi_modal_projector" in n]
    assert audio == set(audio_module_names(detach_lora(default)))


def test_encoder_cache_with_lora_in_the_encoder_is_refused():
    with pytest.raises(BadHyperparameter, match="encoder-output cache"):
        TrainConfig(lora_targets="attention_everywhere").validate()
    with pytest.raises(BadHyperparameter, match="LoRA targets"):
        TrainConfig(lora_targets="everything").validate()
    TrainConfig(lora_targets="attention_everywhere", encoder_cache=False).validate()


def test_synthetic_take_has_the_real_prompt_layout(tmp_path, tiny_voxtral_dir):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_voxtral_dir)
    make_take(tmp_path, 0, "hello world")
    real = TranscriptionCollator(processor).encode(read_folder(tmp_path)[0])
    lang = tuple(processor.tokenizer.encode("lang:en", add_special_tokens=False))
    assert torch.equal(prompt_ids(1, lang), real.input_ids[: real.prompt_len])

    (syn,) = synthetic_examples(1, vocab_size=384, seed=3, min_s=35, max_s=35, lang_ids=lang)
    ex = syn.example
    assert chunks_for(35) == 2 and ex.input_features.shape == (2, 128, 3000)
    assert int((ex.input_ids == AUDIO).sum()) == 750
    assert torch.equal(ex.input_ids[: ex.prompt_len], prompt_ids(2, lang))
    assert (ex.labels[: ex.prompt_len] == IGNORE).all() and ex.labels[-1] == EOS
    assert torch.equal(ex.labels[ex.prompt_len :], ex.input_ids[ex.prompt_len :])
    assert ex.n_labels == 35 * 4 + 1  # 4 transcript tokens per second, then EOS


def test_trainer_given_encoded_examples_trains_as_it_does_from_the_takes(tmp_path, takes_dir, base):
    config = TrainConfig(precision="fp32", batch_size=2, epochs=1, dropout=0.0)
    from_takes = Trainer(tmp_path / "a", config, takes_dir, base=base).setup()
    from_takes.train_slice(budget_s=1e9, max_steps=1)
    examples = from_takes.examples
    model = from_takes.close()
    given = Trainer(tmp_path / "b", config, "bench", base=(model, base[1]), examples=examples).setup()
    given.train_slice(budget_s=1e9, max_steps=1)
    assert given.loss_history == from_takes.loss_history
    assert given.record().n_train_takes == 0  # no takes were read: the examples stand in for them
    given.close()


def test_synthetic_processor_is_enough_for_training_and_generation(tmp_path, base):
    from voxspace.evaluate import transcribe

    model, _ = base
    takes = synthetic_examples(3, vocab_size=model.config.text_config.vocab_size, seed=0)
    config = TrainConfig(precision="fp32", batch_size=2, epochs=1)
    trainer = Trainer(
        tmp_path / "run",
        config,
        "synthetic",
        base=(model, SyntheticProcessor()),
        examples=[t.example for t in takes],
    ).setup()
    summary = trainer.train_slice(budget_s=1e9)
    assert summary.done and summary.last_loss is not None and summary.last_loss > 0
    texts = transcribe(trainer.model, trainer.collator, [takes[0].example], max_new_tokens=3)
    assert len(texts) == 1 and len(texts[0].split()) <= 3
    trainer.close()


def test_closing_a_run_turns_gradient_checkpointing_off_on_the_shared_base(tmp_path, takes_dir, base):
    config = TrainConfig(precision="fp32", batch_size=2, epochs=1, gradient_checkpointing=True)
    trainer = Trainer(tmp_path / "run", config, takes_dir, base=base).setup()
    assert trainer.base_model.is_activation_checkpointing
    assert not trainer.close().is_activation_checkpointing


def _run_bench(tmp_path, *extra: str) -> tuple[dict, Path]:
    out = tmp_path / "speed.json"
    args = ["--steps", "1", "--takes", "2", "--eval-takes", "1", "--max-new-tokens", "2", "--synthetic",
            "--threads", "2", "--out", str(out), *extra]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "train_speed.py"), *args],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = json.loads(proc.stdout[proc.stdout.index("\n{") :])
    assert printed == json.loads(out.read_text())
    return printed, out


def test_bench_runs_every_variant_and_prints_json(tmp_path, bench):
    printed, out = _run_bench(tmp_path, "--repeats", "1")
    # on a CPU every variant runs in fp32 (bf16 is emulated there), so "-8bit" has nothing to measure
    variants = bench.build_variants(encoder_layers=bench.TINY_LAYERS)  # the tiny model the bench builds
    expected = [v.name for v in variants if v.name not in bench.GPU_ONLY]
    assert printed["complete"] and printed["order"] == expected
    assert [r["name"] for r in printed["variants"]] == [expected[0], "upstream@3ep", *expected[1:]]
    assert {r["config"]["precision"] for r in printed["variants"]} == {"fp32"}
    for row in printed["variants"]:
        assert row["ok"], row
        assert row["takes_per_s"] > 0 and row["peak_mib"] > 0 and row["rounds_ok"] == 1
        assert all(0 < s <= 1 for s in row["step_share"])
        assert row["vs_upstream"]["run"] > 0
    up, shipped = printed["variants"][:2]
    assert up["vs_upstream"] == {"takes_per_s": 1.0, "run": 1.0, "peak_mem": 1.0}
    assert shipped["config"]["epochs"] == 3 and shipped["projected_run_s"] < up["projected_run_s"]
    assert {r["name"] for r in printed["eval"]} == {"fp32/fitted", "fp32/batch8", "fp32/batch8_nocache"}
    for r in printed["eval"]:
        assert r["ok"] and r["before_s"]["median"] > 0
        assert r["total_s"]["median"] == pytest.approx(r["before_s"]["median"] + r["after_s"]["median"])
    now = printed["whole_run"]["now"]
    assert [b["takes"] for b in now] == [50, 500, 5000] and all(b["gpu_s"] > 0 for b in now)
    table = out.with_suffix(".txt").read_text()
    assert "upstream@3ep" in table and "peak MiB" in table and "whole run" in table
    assert "fp32: seconds without / with the encoder cache (batch8)" in table
    assert "fp32: seconds in batches of 8 / in fitted calls" in table
    assert [b["takes"] for b in printed["whole_run"]["eval_batch8"]] == [50, 500, 5000]


def test_bench_interleaves_rounds_in_the_order_asked_and_reports_the_spread(tmp_path, bench):
    printed, _ = _run_bench(
        tmp_path, "--repeats", "2", "--variants", "default,upstream", "--eval-repeats", "0"
    )
    assert printed["executed"] == [[0, "default"], [0, "upstream"], [1, "upstream"], [1, "default"]]
    assert [r["name"] for r in printed["variants"]] == ["default", "upstream", "upstream@3ep"]
    for row in printed["variants"]:
        s = row["spread"]["s_per_step"]
        assert row["rounds_ok"] == s["n"] == 2 and s["low"] <= row["s_per_step"] <= s["high"]
    assert [r["round"] for r in printed["rounds"]["default"]] == [0, 1]
    assert "eval" not in printed and printed["whole_run"] == {}  # no evaluation timed: no budget


def test_the_int8_cast_warning_is_logged_once_not_on_every_matmul(tiny_voxtral_dir, caplog):
    from voxspace.model import ModelConfig, load_base

    model, processor = load_base(ModelConfig(str(tiny_voxtral_dir), precision="8bit", device="cpu"))
    (take,) = synthetic_examples(1, vocab_size=model.config.text_config.vocab_size, seed=0)
    batch = TranscriptionCollator(processor)([take.example])
    with caplog.at_level("WARNING"), torch.no_grad():
        for _ in range(2):  # each forward runs 14 8-bit matmuls in the tiny language model
            model(input_ids=batch["input_ids"], input_features=batch["input_features"].to(torch.bfloat16))
    casts = [r for r in caplog.records if "inputs will be cast" in r.getMessage()]
    assert len(casts) <= 1


@pytest.mark.parametrize(("layers", "rows"), [(32, {4, 8}), (2, {2})])
def test_encoder_option_rows_configure_what_they_claim(bench, layers, rows):
    variants = {v.name: v.config for v in bench.build_variants(epochs=5, encoder_layers=layers)}
    default = variants["default"]
    assert default.adapt_encoder == 0 and default.encoder_cache  # the N = 0 row
    for n in rows:
        config = variants[f"+adapt_enc_{n}"].validate()
        assert config == replace(default, adapt_encoder=n)  # cache kept: the lower layers are cached
    everything = variants["+adapt_enc_all_nocache"].validate()
    assert everything == replace(default, adapt_encoder=layers, encoder_cache=False)
    assert len([n for n in variants if n.startswith("+adapt_enc_")]) == len(rows) + 1


def test_a_capped_card_reports_the_cap_to_the_pass_fitter(bench, monkeypatch):
    # seam: torch.cuda's counters (no GPU here); 80 GiB free on the real card, 10 GiB allocated
    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (80 * gib, 140 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 12 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 10 * gib)

    class Props:
        total_memory = 140 * gib

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: Props())
    capped = bench.CappedCudaMemory("cuda:0", 48 * gib)
    assert capped.total_bytes() == 48 * gib
    assert capped.free_bytes() == 38 * gib  # the cap less what is allocated, not the card's 82 GiB
    roomy = bench.CappedCudaMemory("cuda:0", 200 * gib)
    assert roomy.total_bytes() == 140 * gib and roomy.free_bytes() == 82 * gib
