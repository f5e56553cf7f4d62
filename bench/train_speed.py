"""Training speed: VoxFactory's recipe as it ships, against this project's default and each lever off.

    python bench/train_speed.py                 # tiny Voxtral on CPU, espeak-ng takes: a few min on 2 cores
    python bench/train_speed.py --full-size     # a GPU: Voxtral-Mini-3B's real dimensions, random weights
    python bench/train_speed.py --full-size --layers 2 --device cpu --takes 4 --steps 2  # that path, on CPU
    python bench/train_speed.py --variants -encoder_cache,default,upstream   # run in the order asked
    bench/gpu_check.sh OUT_DIR                  # the prepared GPU run (see bench/README.md)

Comparisons hold only within one process: every variant runs `--repeats` times (default 3),
interleaved (round r runs the asked-for list rotated by r, voxspace.devtools.bench_stats.schedule),
each time on a freshly attached LoRA over the same base; the table prints medians with their spread
(±: half the range over the rounds, relative to the median), and every ratio divides two medians of
this run. Variants:
  upstream      VoxFactory's scripts/train_lora.py as written (voxspace.devtools.voxfactory): r=8,
                alpha 32, dropout 0, LoRA q/k/v/o everywhere (audio encoder included), bf16 with bf16
                autocast, batch 2 x 4, HF's loss (fp32 logits at every position), mel features
                extracted on the CPU at every step. Its run is projected at --epochs and, in the row
                "upstream@3ep", at the 3 epochs VoxFactory ships.
  default       TrainConfig() as shipped: 8-bit base, batch 4, encoder cache, length batching,
                logits only where a label follows, LoRA on the language model only
  -LEVER        the default with that one lever switched off
  +grad_ckpt    the default with gradient checkpointing (saves memory, costs compute)
  +fit_2x4      8 takes per step (2 x 4) like -batch_4x1, but with the passes fitted to free memory
  +adapt_enc_N  the encoder option (issue 15): LoRA also on the top N encoder layers (N = 4, 8; fewer
                if the model has fewer) and the projector, the frozen layers below cached per take
  +adapt_enc_all_nocache  every encoder layer adapted, so nothing below can be cached
We ablate from the default instead of adding each lever to upstream because the levers depend on
each other: the cache is only valid once LoRA is out of the encoder, and the logits/padding savings
only show once the encoder backward no longer dominates a step.

Each run of a variant has two slices (Trainer.train_slice): slice 1 is the first epoch (setup,
warm-up, encoder-cache fill, checkpoint), slice 2 runs --steps steady-state steps (checkpoint).
After the training rounds, evaluation is timed the same way (interleaved, repeated): generate on
--eval-takes held-out takes, before (adapter off) and after, each pass as its own GPU call, per
loaded precision: in batches of 8 as the app does now (the run's encoder cache on disk: after reads
the encoder outputs before wrote), the same without that cache (the encoder runs in both passes, as
before), and in one call. Last, a whole-run budget (50, 500, 5000 takes) is projected from
the measured per-unit seconds. Random weights never emit EOS, so generation runs to
max_new_tokens: an upper bound. Needs only torch, transformers, peft, bitsandbytes and numpy with
--full-size (a lent GPU machine has no mistral-common or soundfile).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import wave
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from voxspace.batching import CudaMemory
from voxspace.devtools.bench_stats import (
    Spread,
    UnitCosts,
    combine,
    format_budget,
    projected_run_s,
    ratio,
    run_budget,
    schedule,
)
from voxspace.devtools.synthetic_takes import SyntheticProcessor, SyntheticTake, synthetic_examples
from voxspace.devtools.voxfactory import (
    VOXFACTORY,
    VOXFACTORY_EPOCHS,
    VoxFactoryTrainer,
    feature_extractor,
    mel_features,
    synthetic_audio,
)
from voxspace.encoder_cache import EncoderCache, audio_embeds
from voxspace.evaluate import adapter_disabled, transcribe
from voxspace.model import ModelConfig, attach_lora, detach_lora, load_base, load_model
from voxspace.train import TrainConfig, Trainer

UPSTREAM = VOXFACTORY
TINY_LAYERS = 2  # the tiny Voxtral's encoder and LM layers unless --layers says otherwise
GPU_ONLY = ("-8bit", "-auto_batch", "+fit_2x4")  # the same computation as another variant on a CPU
RUN_SIZES = (50, 500, 5000)  # takes recorded, for the whole-run budget


# --- the variants ------------------------------------------------------------------------------------
@dataclass
class Variant:
    name: str
    config: TrainConfig
    what: str
    recipe: str = "voxspace"  # "voxfactory": VoxFactoryTrainer (HF loss, autocast, mel per step)


def build_variants(epochs: int = 5, encoder_layers: int = 32) -> list[Variant]:
    """Upstream, the default, the default with each lever switched off, and the encoder option's rows
    for a model with `encoder_layers` audio-encoder layers (see the docstring)."""
    d = TrainConfig(epochs=epochs)
    return [
        Variant(
            "upstream",
            replace(d, **UPSTREAM),
            "VoxFactory as written: r8, bf16 autocast, HF loss, mel per step, LoRA incl. encoder",
            recipe="voxfactory",
        ),
        Variant("default", d, "TrainConfig() as shipped"),
        Variant("-encoder_cache", replace(d, encoder_cache=False), "audio encoder re-run every epoch"),
        Variant("-length_batching", replace(d, length_batching=False), "random batches, more padding"),
        Variant("-label_logits_only", replace(d, label_logits_only=False), "lm_head over every position"),
        Variant(
            "-lm_only_lora",
            replace(d, encoder_cache=False, lora_targets="attention_everywhere"),
            "LoRA q/k/v/o everywhere as upstream (cache must be off)",
        ),
        Variant("-8bit", replace(d, precision="bf16"), "bf16 base instead of 8-bit"),
        Variant(
            "-batch_4x1",
            replace(d, batch_size=2, grad_accum=4, auto_batch=False),
            "upstream's batch 2 x accumulation 4, passes not fitted",
        ),
        Variant("-auto_batch", replace(d, auto_batch=False), "always batch_size takes per pass"),
        Variant(
            "+fit_2x4",
            replace(d, batch_size=2, grad_accum=4),
            "8 takes per step as -batch_4x1, passes fitted to free memory",
        ),
        Variant("+grad_ckpt", replace(d, gradient_checkpointing=True), "gradient checkpointing on"),
        *adapt_encoder_variants(d, encoder_layers),
    ]


def adapt_encoder_variants(d: TrainConfig, encoder_layers: int) -> list[Variant]:
    """The encoder option's cost: N = 4 and 8 top layers (cached below), and all with no cache."""
    rows = {}
    for n in (min(4, encoder_layers), min(8, encoder_layers)):
        what = f"LoRA also on the top {n} of {encoder_layers} encoder layers + projector, lower ones cached"
        rows[n] = Variant(f"+adapt_enc_{n}", replace(d, adapt_encoder=n), what)
    everything = replace(d, adapt_encoder=encoder_layers, encoder_cache=False)
    what = f"LoRA on all {encoder_layers} encoder layers + projector: nothing to cache"
    return [*rows.values(), Variant("+adapt_enc_all_nocache", everything, what)]


def select_variants(variants: list[Variant], asked: str | None) -> list[Variant]:
    """The variants named in `asked` (comma-separated), in that order; all of them when None."""
    if not asked:
        return variants
    by_name = {v.name: v for v in variants}
    names = [n.strip() for n in asked.split(",") if n.strip()]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}; known here: {', '.join(by_name)}")
    if len(set(names)) != len(names):
        raise ValueError(f"a variant is asked for twice in {asked!r}")
    return [by_name[n] for n in names]


# --- models and takes --------------------------------------------------------------------------------
def write_random_voxtral(out: Path, *, layers: int | None, device: str) -> int:
    """Save a random-initialised Voxtral with Mini-3B's dimensions to `out`; returns its vocab size.

    Built in bf16 on `device` (fast on a GPU), then loaded back through voxspace.model.load_model,
    so 8-bit quantisation happens exactly as for the real checkpoint.
    """
    from transformers import GenerationConfig, VoxtralForConditionalGeneration

    from voxspace.devtools.tiny_voxtral import full_size_config

    config = full_size_config()
    if layers:
        config.audio_config.num_hidden_layers = layers
        config.text_config.num_hidden_layers = layers
    torch.manual_seed(0)
    with torch.device(device):
        model = VoxtralForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=11)
    model.save_pretrained(out)
    vocab = config.text_config.vocab_size
    del model
    _free_memory()
    return vocab


PHRASE_TEXT = (
    "the quick brown fox jumps over a lazy dog while seven green birds sing softly near "
    "an old river and children read their favourite books before dinner every single evening"
)


def espeak_takes(n: int, folder: Path, processor: Any, seed: int) -> list[SyntheticTake]:
    """`n` spoken phrases (espeak-ng), encoded by the real collator from WAV files."""
    from voxspace.data import TranscriptionCollator
    from voxspace.layout import LocalTake, Take

    rng, words = random.Random(seed), PHRASE_TEXT.split()
    collator = TranscriptionCollator(processor)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
        wav = folder / f"s{seed}-{i:04d}.wav"
        subprocess.run(["espeak-ng", "-v", "en", "-w", str(wav), text], check=True, capture_output=True)
        with wave.open(str(wav)) as w:
            seconds = w.getnframes() / w.getframerate()
        take = Take(
            take_id=wav.stem, text=text, language="en", duration=seconds, phrase_id=f"bench-{i}",
            split="train", seq=i, created_at=0.0,
        )  # fmt: skip
        out.append(SyntheticTake(collator.encode(LocalTake(take, wav)), seconds))
    return out


def takes_audio(takes: list[SyntheticTake], wav_dir: Path | None) -> dict[str, np.ndarray]:
    """16 kHz signals for the upstream recipe's per-step mel extraction: each espeak WAV resampled,
    or noise of each synthetic take's length (the mel cost depends on the length only)."""
    out = {}
    for i, t in enumerate(takes):
        tid = t.example.take_id
        wav = wav_dir / f"{tid}.wav" if wav_dir else None
        if wav is not None and wav.is_file():
            import soundfile
            import soxr

            data, rate = soundfile.read(wav, dtype="float32")
            out[tid] = np.asarray(soxr.resample(data, rate, 16_000), dtype=np.float32)
        else:
            out[tid] = synthetic_audio(t.seconds, seed=i)
    return out


# --- measuring -----------------------------------------------------------------------------------------
class _CountingCollator:
    """Counts the takes (and their seconds) that go through training steps."""

    def __init__(self, inner: Any, seconds: dict[str, float]) -> None:
        self.inner, self.seconds = inner, seconds
        self.takes, self.audio_s = 0, 0.0

    def __call__(self, examples: list[Any]) -> dict[str, Any]:
        self.takes += len(examples)
        self.audio_s += sum(self.seconds[e.take_id] for e in examples)
        return self.inner(examples)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _rss() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the process high-water mark is the best we have
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def resident_bytes(device: str) -> int:
    """Memory the process holds now: CUDA allocated bytes on a GPU, resident set size on a CPU."""
    return torch.cuda.memory_allocated() if device.startswith("cuda") else _rss()


class PeakMemory:
    """Peak memory while the block runs: CUDA allocator peak, else resident set size sampled every 5 ms.

    `exclude_bytes`: memory held by bases of other precisions that stay loaded between rounds (the
    rounds are interleaved); it is subtracted so each variant's peak counts its own base only.
    """

    def __init__(self, device: str, exclude_bytes: int = 0) -> None:
        self.cuda = device.startswith("cuda")
        self.exclude = exclude_bytes
        self.peak_bytes = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak_bytes = max(self.peak_bytes, _rss())

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            self.peak_bytes = _rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
        self.peak_bytes -= self.exclude


class CappedCudaMemory(CudaMemory):
    """A smaller card on a larger one (a ZeroGPU `large` slice, 48 GiB, on an H100/H200): the pass
    fitter sees `cap_bytes` as the card's total and free memory within it; main() also caps the
    allocator (torch.cuda.set_per_process_memory_fraction) so running past it fails as it would there."""

    def __init__(self, device: Any, cap_bytes: int) -> None:
        super().__init__(device)
        self.cap = cap_bytes

    def free_bytes(self) -> int:
        return min(super().free_bytes(), self.cap - torch.cuda.memory_allocated(self.device))

    def total_bytes(self) -> int:
        return min(self.cap, super().total_bytes())


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


CONFIG_KEYS = (*UPSTREAM, "gradient_checkpointing", "adapt_encoder", "epochs")  # UPSTREAM: rank, auto_batch..


def failed_row(v: Variant, error: str | None) -> dict[str, Any]:
    """A row that says what was asked for; run_variant fills in the figures when it succeeds."""
    config = {k: getattr(v.config, k) for k in CONFIG_KEYS}
    row = {"name": v.name, "what": v.what, "recipe": v.recipe, "ok": False, "config": config}
    return {**row, "error": error[:300]} if error else row


def _slice_row(s: Any) -> dict[str, float]:
    wall = s.step_seconds + s.overhead_seconds
    return {
        "steps": s.steps_run,
        "step_s": round(s.step_seconds, 4),
        "overhead_s": round(s.overhead_seconds, 4),
        "step_share": round(s.step_seconds / wall, 4) if wall else 0.0,
    }


def run_variant(
    v: Variant,
    base: tuple[Any, Any],
    takes: list[SyntheticTake],
    audio: dict[str, np.ndarray],
    *,
    steps: int,
    device: str,
    work: Path,
    exclude_bytes: int = 0,
    gpu_cap_bytes: int | None = None,
) -> dict[str, Any]:
    """One round of a variant: slice 1 = the first epoch, slice 2 = `steps` steady steps."""
    seconds = {t.example.take_id: t.seconds for t in takes}
    n, cfg = len(takes), v.config
    spe = cfg.steps_per_epoch(n)
    cfg = replace(cfg, epochs=min(100, max(cfg.epochs, 1 + math.ceil(steps / spe))))  # never finish early
    run_dir = work / v.name.strip("-+")
    row = failed_row(v, None)
    row["steps_per_epoch"] = spe
    trainer = None
    try:
        with PeakMemory(device, exclude_bytes) as mem:
            kw: dict[str, Any] = {"base": base, "examples": [t.example for t in takes]}
            if gpu_cap_bytes and cfg.auto_batch and device.startswith("cuda"):
                kw["memory"] = CappedCudaMemory(torch.device(device), gpu_cap_bytes)
            if v.recipe == "voxfactory":
                trainer = VoxFactoryTrainer(run_dir, cfg, "bench", audio=audio, **kw)
            else:
                trainer = Trainer(run_dir, cfg, "bench", **kw)
            trainer.setup()
            counter = trainer.collator = _CountingCollator(trainer.collator, seconds)
            first = trainer.train_slice(budget_s=1e9, max_steps=spe)
            before = (counter.takes, counter.audio_s)
            cpu0 = time.process_time()
            steady = trainer.train_slice(budget_s=1e9, max_steps=steps)
            cpu_s = time.process_time() - cpu0  # robust to other load on a shared CPU; includes the save
        takes_run, audio_run = counter.takes - before[0], counter.audio_s - before[1]
        per_step = steady.step_seconds / max(1, steady.steps_run)
        row.update(
            ok=True,
            s_per_step=round(per_step, 4),
            cpu_s_per_step=round(cpu_s / max(1, steady.steps_run), 4),
            takes_per_s=round(takes_run / steady.step_seconds, 3),
            audio_s_per_s=round(audio_run / steady.step_seconds, 3),
            peak_mib=round(mem.peak_bytes / 2**20, 1),
            slices=[_slice_row(first), _slice_row(steady)],
            epoch1_s=round(first.step_seconds, 3),
            setup_and_save_s=round(first.overhead_seconds, 3),
            save_s=round(trainer.save_s, 3),
            last_loss=steady.last_loss,
            takes_per_pass=steady.takes_per_pass,
            memory_fit=trainer.fitter.fit.to_dict() if trainer.fitter.fit else None,  # what step 1 measured
        )
    except Exception as e:  # one variant failing (OOM, ...) must not hide the others
        row["error"] = f"{type(e).__name__}: {getattr(e, 'user_message', None) or e}"[:300]
        traceback.print_exc()
    finally:
        if trainer is not None:
            trainer.close()
        del trainer
        shutil.rmtree(run_dir, ignore_errors=True)
        _free_memory()
    return row


# --- evaluation, features, encoder ---------------------------------------------------------------------
# mode: (takes per generate call; the run's encoder cache on disk or none; calls fitted to free memory)
EVAL_MODES = {
    # as the app runs now: the first call holds 8 takes and measures, later calls hold what fits (on a
    # GPU; on a CPU every call holds 8); "after" reads the encoder outputs "before" wrote
    "fitted": (8, True, True),
    "batch8": (8, True, False),  # every call 8 takes, as before the calls were fitted
    "batch8_nocache": (8, False, False),  # as before the cache: the encoder runs again in each pass
}
EVAL_PARTS = ("before_s", "after_s", "total_s")
CPU_PARTS = ("before_cpu_s", "after_cpu_s", "total_cpu_s")  # process CPU seconds: steadier under load


def time_evaluation(
    model: Any,
    collator: Any,
    examples: list[Any],
    *,
    batch_size: int,
    max_new_tokens: int,
    cache_dir: Path | None = None,
    fitted: bool = False,
) -> dict[str, float]:
    """Seconds of the before (adapter off) and after transcription, each as its own GPU call runs it
    (a new EncoderCache per pass): with `cache_dir` (empty at first) the run's encoder cache on disk,
    so before runs the encoder and writes each take's output and after reads it back
    (evaluate_adapter(cache_in=run)); without it the encoder runs in both passes."""
    out: dict[str, float] = {}
    for label in ("before_s", "after_s"):
        cache = EncoderCache(spill_dir=cache_dir, write_through=True) if cache_dir is not None else None
        _sync()
        t0, c0 = time.perf_counter(), time.process_time()
        with adapter_disabled(model) if label == "before_s" else contextlib.nullcontext():
            transcribe(
                model,
                collator,
                examples,
                batch_size=batch_size,
                max_new_tokens=max_new_tokens,
                cache=cache,
                fit_to_memory=fitted,
            )
        _sync()
        out[label] = time.perf_counter() - t0
        out[label.replace("_s", "_cpu_s")] = time.process_time() - c0
    out["total_s"] = out["before_s"] + out["after_s"]
    out["total_cpu_s"] = out["before_cpu_s"] + out["after_cpu_s"]
    return out


def measure_evaluation(
    bases: dict[str, tuple[Any, Any]],
    examples: list[Any],
    *,
    repeats: int,
    max_new_tokens: int,
    work: Path,
) -> list[dict[str, Any]]:
    """Before/after generation per loaded precision and per EVAL_MODES, interleaved and repeated;
    each round of a cached mode starts from an empty cache folder under `work`."""
    names = [f"{p}/{m}" for p in bases for m in EVAL_MODES]
    seen: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    errors: dict[str, str] = {}
    for round_, name in schedule(names, repeats):
        precision, mode = name.split("/")
        batch, cached, fitted = EVAL_MODES[mode]
        cache_dir = work / "eval_cache" / f"{round_}-{precision}-{mode}" if cached else None
        model = attach_lora(detach_lora(bases[precision][0]), TrainConfig().lora())  # as after training
        try:
            timed = time_evaluation(
                model,
                _collator(bases[precision][1]),
                examples,
                batch_size=batch,
                max_new_tokens=max_new_tokens,
                cache_dir=cache_dir,
                fitted=fitted,
            )
            seen[name].append(timed)
        except Exception as e:  # e.g. one call does not fit: report it, keep the others
            errors[name] = f"{type(e).__name__}: {e}"[:300]
            traceback.print_exc()
        finally:
            detach_lora(model)
            if cache_dir is not None:
                shutil.rmtree(cache_dir, ignore_errors=True)
            _free_memory()
    rows = []
    for name in names:
        precision, mode = name.split("/")
        row: dict[str, Any] = {"name": name, "precision": precision, "mode": mode, "takes": len(examples),
                               "max_new_tokens": max_new_tokens, "ok": bool(seen[name])}  # fmt: skip
        if seen[name]:
            for label in EVAL_PARTS + CPU_PARTS:
                row[label] = Spread.of([r[label] for r in seen[name]]).to_dict()
        if name in errors:
            row["error"] = errors[name]
        rows.append(row)
    return rows


def _collator(processor: Any) -> Any:
    from voxspace.data import TranscriptionCollator

    return TranscriptionCollator(processor)


def measure_features(audio: dict[str, np.ndarray], repeats: int) -> Spread:
    """CPU seconds per take of mel-feature extraction (Voxtral's Whisper extractor), over `repeats`."""
    extractor = feature_extractor()
    per_take = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for signal in audio.values():
            mel_features(signal, extractor)
        per_take.append((time.perf_counter() - t0) / len(audio))
    return Spread.of(per_take)


def measure_encoder(model: Any, examples: list[Any], device: str, repeats: int) -> Spread:
    """Seconds per take of the frozen audio encoder + projector (what the encoder cache saves)."""
    per_take = []
    for _ in range(repeats):
        _sync()
        t0 = time.perf_counter()
        for e in examples:
            audio_embeds(model, e.input_features.to(device))
        _sync()
        per_take.append((time.perf_counter() - t0) / len(examples))
    return Spread.of(per_take)


# --- the report ------------------------------------------------------------------------------------------
def add_ratios(rows: list[dict[str, Any]], epochs: int) -> None:
    """x-columns against upstream, from this run's medians; an "upstream@3ep" row after upstream."""
    up = next((r for r in rows if r["name"] == "upstream" and r["ok"]), None)
    if up is None:
        return
    for r in rows:
        if r["ok"]:
            r["projected_run_s"] = round(projected_run_s(r, epochs), 2)
            r["vs_upstream"] = ratio(r, up, epochs=epochs)
    shipped = {**up, "name": f"upstream@{VOXFACTORY_EPOCHS}ep", "what": "upstream as VoxFactory ships it"}
    shipped["config"] = {**up["config"], "epochs": VOXFACTORY_EPOCHS}
    shipped["projected_run_s"] = round(projected_run_s(up, VOXFACTORY_EPOCHS), 2)
    shipped["vs_upstream"] = ratio(up, up, epochs=VOXFACTORY_EPOCHS, ref_epochs=epochs)
    rows.insert(rows.index(up) + 1, shipped)


def _spread(d: dict[str, Any]) -> Spread:
    return Spread(d["median"], d["low"], d["high"], d["n"])


def format_table(rows: list[dict[str, Any]], *, cpu: bool = False) -> str:
    """One line per variant (medians; ± = half the range over the rounds, relative); r = rounds that
    ran; on a CPU also process CPU-seconds per step (steadier than wall time under other load)."""
    head = ["variant", "prec", "batch", "r", "pass", "s/step", "takes/s", "audio-s/s", "peak MiB",
            "steps% s1/s2", "run_s", "x takes/s", "x run", "x mem"]  # fmt: skip
    head += ["cpu-s/step"] if cpu else []
    lines, errors = [head], []
    for r in rows:
        c = r["config"]
        cells = [
            r["name"],
            c["precision"],
            f"{c['batch_size']}x{c['grad_accum']}",
            str(r.get("rounds_ok", 0)),
        ]
        if not r["name"].startswith("upstream@"):
            errors += [f"{r['name']}: {e}" for e in r.get("errors", [])]
        if not r["ok"]:
            lines.append([*cells, "-", "FAILED", *["-"] * (len(head) - 6)])
            continue
        sp = {k: _spread(d) for k, d in r["spread"].items()}
        x = r.get("vs_upstream", {})
        lines.append([
            *cells, str(r["takes_per_pass"]), sp["s_per_step"].cell(), sp["takes_per_s"].cell(".2f"),
            sp["audio_s_per_s"].cell(".1f"), sp["peak_mib"].cell(".0f"),
            "/".join(f"{100 * s:.0f}" for s in r["step_share"]),
            f"{r.get('projected_run_s', projected_run_s(r, c['epochs'])):.1f}",
            *(f"{x[k]:.2f}" if k in x else "-" for k in ("takes_per_s", "run", "peak_mem")),
            *([sp["cpu_s_per_step"].cell()] if cpu else []),
        ])  # fmt: skip
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in lines]
    return "\n".join(table + errors)


def format_eval(rows: list[dict[str, Any]], *, cpu: bool = False) -> str:
    """One line per precision/mode (medians, ± half the range over the rounds) and, per precision,
    the run's encoder cache against none from this run's medians; on a CPU (`cpu`) also process
    CPU seconds, steadier than wall time when other work shares the cores."""
    parts = EVAL_PARTS + CPU_PARTS if cpu else EVAL_PARTS
    lines = ["evaluation (generate, before = adapter off, after = on, each pass as its own GPU call;"
             " fitted: calls hold what the free GPU memory allows (8 on a CPU); fitted/batch8: the run's"
             " encoder cache on disk, after reads what before wrote; batch8_nocache: the encoder runs in"
             " both passes):"]  # fmt: skip
    for r in rows:
        if not r["ok"]:
            lines.append(f"  {r['name']}: FAILED {r.get('error', '')}")
            continue
        b, a, t = (_spread(r[k]) for k in EVAL_PARTS)
        lines.append(f"  {r['name']:20s} {r['takes']} takes, {r['max_new_tokens']} new tokens:"
                     f" before {b.cell()} s, after {a.cell()} s, both {t.cell()} s")  # fmt: skip
        if cpu:
            b, a, t = (_spread(r[k]) for k in CPU_PARTS)
            lines.append(f"  {'':20s} process CPU s: before {b.cell()}, after {a.cell()}, both {t.cell()}")
    ok = {r["name"]: r for r in rows if r["ok"]}
    for r in ok.values():
        if r["mode"] == "batch8" and (none := ok.get(f"{r['precision']}/batch8_nocache")):
            x = ", ".join(f"{k[:-2]} {none[k]['median'] / r[k]['median']:.2f}" for k in parts)
            lines.append(f"  {r['precision']}: seconds without / with the encoder cache (batch8): {x}")
        if r["mode"] == "batch8" and (fit := ok.get(f"{r['precision']}/fitted")):
            x = ", ".join(f"{k[:-2]} {r[k]['median'] / fit[k]['median']:.2f}" for k in parts)
            lines.append(f"  {r['precision']}: seconds in batches of 8 / in fitted calls: {x}")
    return "\n".join(lines)


def unit_costs(
    default: dict[str, Any],
    evals: list[dict[str, Any]],
    mel: Spread | None,
    encoder: Spread | None,
    mode: str,
) -> UnitCosts | None:
    """Per-unit seconds for run_budget from this run's medians (None when a part is missing)."""
    ev = next((r for r in evals if r["precision"] == default.get("config", {}).get("precision")
               and r["mode"] == mode and r["ok"]), None)  # fmt: skip
    if not default.get("ok") or ev is None or mel is None or encoder is None:
        return None
    c = default["config"]
    return UnitCosts(
        mel_s_per_take=mel.median,
        encoder_s_per_take=encoder.median,
        s_per_step=default["s_per_step"],
        step_size=c["batch_size"] * c["grad_accum"],
        eval_before_s_per_take=ev["before_s"]["median"] / ev["takes"],
        eval_after_s_per_take=ev["after_s"]["median"] / ev["takes"],
        slice_setup_s=max(0.0, default["setup_and_save_s"] - default["save_s"]),
        save_s=default["save_s"],
    )


def budgets(now: UnitCosts | None, batch8: UnitCosts | None, epochs: int) -> dict[str, Any]:
    """The whole-run tables: as the app runs now (features on the CPU before the first slice, at most
    TrainConfig.eval_max_takes held-out takes in generate calls fitted to memory, the encoder run once
    per take for both evaluations) and the same with evaluation in batches of 8."""
    cap = TrainConfig().eval_max_takes or None
    out: dict[str, Any] = {}
    if now is not None:
        out["now"] = [run_budget(now, n, epochs, eval_cap=cap) for n in RUN_SIZES]
    if batch8 is not None:
        out["eval_batch8"] = [run_budget(batch8, n, epochs, eval_cap=cap) for n in RUN_SIZES]
    return out


# --- main ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full-size", action="store_true", help="Voxtral-Mini-3B dimensions (for a GPU)")
    ap.add_argument("--layers", type=int, default=None, help="encoder and LM layers (also the tiny model's)")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--takes", type=int, default=None, help="training takes (default 16 tiny, 50 full size)")
    ap.add_argument("--eval-takes", type=int, default=None, help="held-out takes timed with generate")
    ap.add_argument("--steps", type=int, default=6, help="steady-state steps per variant (slice 2)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds of every variant")
    ap.add_argument("--eval-repeats", type=int, default=None, help="rounds of the evaluation timing")
    ap.add_argument("--epochs", type=int, default=5, help="epochs of the projected run")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="as voxspace.evaluate")
    ap.add_argument("--synthetic", action="store_true", help="random takes even for the tiny model")
    ap.add_argument(
        "--variants", default=None, help="comma-separated names, run in this order (default: all)"
    )
    ap.add_argument(
        "--precision",
        choices=("configured", "fp32"),
        default=None,
        help="each variant's own precision (default on a GPU) or fp32 for all (default on a CPU)",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    ap.add_argument(
        "--gpu-memory-gib", type=float, default=None, help="act as a card of this size (48: ZeroGPU)"
    )
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    if args.repeats < 1 or (args.eval_repeats is not None and args.eval_repeats < 0):
        ap.error("--repeats must be at least 1 and --eval-repeats at least 0")
    if args.eval_takes is not None and args.eval_takes < 0:
        ap.error("--eval-takes must be at least 0")
    if args.eval_takes == 0:  # no held-out takes: nothing to time (generate of 0 takes divides by 0)
        args.eval_repeats = 0

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu_cap = None
    if args.gpu_memory_gib:
        if not device.startswith("cuda"):
            ap.error("--gpu-memory-gib needs a GPU")
        gpu_cap = int(args.gpu_memory_gib * 2**30)
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, gpu_cap / total))
    if args.threads:
        torch.set_num_threads(args.threads)
    n_takes = args.takes or (50 if args.full_size else 16)
    n_eval = args.eval_takes if args.eval_takes is not None else (10 if args.full_size else 4)
    encoder_layers = args.layers or (32 if args.full_size else TINY_LAYERS)
    variants = build_variants(args.epochs, encoder_layers)
    if (args.precision or ("fp32" if device == "cpu" else "configured")) == "fp32":
        # A CPU without AVX512-BF16 emulates bf16 (and 8-bit computes in bf16): a 400x3072x8192
        # matmul took 278 s in bf16 vs 1 s in fp32 here. That would time the emulation, not the levers.
        fp32 = [replace(v, config=replace(v.config, precision="fp32")) for v in variants]
        variants = [v for v in fp32 if v.name not in GPU_ONLY]
    try:
        variants = select_variants(variants, args.variants)
    except ValueError as e:
        ap.error(str(e))
    work = Path(tempfile.mkdtemp(prefix="voxspace-bench-"))
    started = time.monotonic()
    runs: dict[str, list[dict[str, Any]]] = {v.name: [] for v in variants}
    extra: dict[str, Any] = {}
    try:
        wav_dir = None
        if args.full_size:
            t0 = time.monotonic()
            vocab = write_random_voxtral(work / "model", layers=args.layers, device=device)
            print(f"random full-size Voxtral written in {time.monotonic() - t0:.1f} s", flush=True)
            takes = synthetic_examples(n_takes, vocab_size=vocab, seed=0)
            eval_takes = synthetic_examples(n_eval, vocab_size=vocab, seed=1, prefix="eval")

            def load(precision: str) -> tuple[Any, Any]:
                cfg = ModelConfig(str(work / "model"), precision=precision, device=device)
                return load_model(cfg), SyntheticProcessor()
        else:
            from voxspace.devtools.tiny_voxtral import build

            tiny, processor = build(work / "model", layers=args.layers or TINY_LAYERS)
            vocab = tiny.config.text_config.vocab_size
            del tiny

            def load(precision: str) -> tuple[Any, Any]:
                return load_base(ModelConfig(str(work / "model"), precision=precision, device=device))

            if args.synthetic or shutil.which("espeak-ng") is None:
                takes = synthetic_examples(n_takes, vocab_size=vocab, seed=0)
                eval_takes = synthetic_examples(n_eval, vocab_size=vocab, seed=1, prefix="eval")
            else:
                wav_dir = work / "wav"
                takes = espeak_takes(n_takes, wav_dir, processor, seed=0)
                eval_takes = espeak_takes(n_eval, wav_dir, processor, seed=1)
        audio = takes_audio(takes, wav_dir)

        meta = {
            "machine": machine(device),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "model": "full-size Voxtral (random weights)" if args.full_size else "tiny Voxtral",
            "takes": n_takes,
            "audio_s": round(sum(t.seconds for t in takes), 1),
            "order": [v.name for v in variants],
            "executed": [],  # (round, variant) as they ran
        }
        # Every precision's base stays loaded so the rounds can interleave; each variant's peak
        # excludes the other bases' bytes (PeakMemory).
        bases: dict[str, tuple[Any, Any]] = {}
        base_bytes: dict[str, int] = {}
        failed_load: dict[str, str] = {}
        by_name = {v.name: v for v in variants}
        for round_, name in schedule([v.name for v in variants], args.repeats):
            v = by_name[name]
            precision = v.config.precision
            if precision not in bases and precision not in failed_load:
                _free_memory()
                t0, held = time.monotonic(), resident_bytes(device)
                try:
                    bases[precision] = load(precision)
                except Exception as e:  # e.g. bitsandbytes missing: report it, measure the rest
                    traceback.print_exc()
                    failed_load[precision] = f"loading the {precision} base: {type(e).__name__}: {e}"
                else:
                    base_bytes[precision] = resident_bytes(device) - held
                    print(f"{precision} base loaded in {time.monotonic() - t0:.1f} s", flush=True)
                    warm = Variant("warmup", v.config, "", v.recipe)  # first CUDA/bitsandbytes calls
                    run_variant(warm, bases[precision], takes[:2], audio, steps=1, device=device, work=work)
            if precision in failed_load:
                row = failed_row(v, failed_load[precision])
            else:
                others = sum(b for p, b in base_bytes.items() if p != precision)
                row = run_variant(v, bases[precision], takes, audio, steps=args.steps, device=device,
                                  work=work, exclude_bytes=others, gpu_cap_bytes=gpu_cap)  # fmt: skip
            runs[name].append({**row, "round": round_})
            meta["executed"].append([round_, name])
            print(f"  round {round_} {name}: {'ok' if row['ok'] else row['error']}", flush=True)
            write_report(runs, variants, args, meta, started, extra)

        eval_repeats = args.repeats if args.eval_repeats is None else args.eval_repeats
        if eval_repeats and bases:
            examples = [t.example for t in eval_takes]
            extra["eval"] = measure_evaluation(bases, examples, repeats=eval_repeats,
                                               max_new_tokens=args.max_new_tokens, work=work)  # fmt: skip
        extra["mel_s_per_take"] = measure_features(audio, args.repeats).to_dict()
        default_precision = by_name["default"].config.precision if "default" in by_name else None
        if default_precision in bases:
            model = bases[default_precision][0]
            enc = measure_encoder(model, [t.example for t in takes], device, args.repeats)
            extra["encoder_s_per_take"] = enc.to_dict()
        del bases
        _free_memory()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    return write_report(runs, variants, args, meta, started, extra, final=True)


def write_report(
    runs: dict[str, list[dict[str, Any]]],
    variants: list[Variant],
    args: argparse.Namespace,
    meta: dict[str, Any],
    started: float,
    extra: dict[str, Any],
    *,
    final: bool = False,
) -> dict[str, Any]:
    """The JSON (and the table next to it, as .txt) after every round, so a timeout keeps the rest."""
    ordered = [combine(runs[v.name]) for v in variants if runs.get(v.name)]
    add_ratios(ordered, args.epochs)
    evals = extra.get("eval", [])
    default = next((r for r in ordered if r["name"] == "default"), {})
    mel = _spread(extra["mel_s_per_take"]) if "mel_s_per_take" in extra else None
    enc = _spread(extra["encoder_s_per_take"]) if "encoder_s_per_take" in extra else None
    now, batch8 = (unit_costs(default, evals, mel, enc, mode) for mode in ("fitted", "batch8"))
    whole = budgets(now, batch8, args.epochs)
    result = {
        **meta,
        "complete": final,
        "repeats": args.repeats,
        "variants": ordered,
        "rounds": runs,
        **extra,
        "whole_run": whole,
        "bench_wall_s": round(time.monotonic() - started, 1),
    }
    device = meta["machine"]["device"]
    table = format_table(ordered, cpu=device == "cpu")
    if evals:
        table += "\n\n" + format_eval(evals, cpu=device == "cpu")
    if mel is not None:
        table += f"\n\nmel features (CPU): {mel.cell('.4f')} s per take"
        if enc is not None:
            table += f"; audio encoder + projector ({device}): {enc.cell('.4f')} s per take"
    titles = {
        "now": "as the app runs now: features on the CPU before the first slice, at most"
        f" {TrainConfig().eval_max_takes} held-out takes in generate calls fitted to memory, the encoder"
        " once per take",
        "eval_batch8": "the same with evaluation in batches of 8 (as before the calls were fitted)",
    }
    for key, title in titles.items():
        if key in whole:
            table += f"\n\nwhole run, {args.epochs} epochs, seconds ({title}):\n" + format_budget(whole[key])
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        head = (
            f"{meta['model']} on {device}, {args.repeats} interleaved rounds, order {','.join(meta['order'])}"
        )
        args.out.with_suffix(".txt").write_text(f"{head}\n{table}\n")
    if final:
        print(f"\n{table}\n\n{text}")
    return result


def machine(device: str) -> dict[str, Any]:
    import transformers

    info = {
        "device": device,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1))
    for name in ("peft", "bitsandbytes"):
        try:
            info[name] = __import__(name).__version__
        except Exception as e:  # report, do not fail: the table is still worth having
            info[name] = f"unavailable ({type(e).__name__})"
    return info


if __name__ == "__main__":
    main()
