"""Training speed: the recipe this project replaces, against its default and each lever switched off.

    python bench/train_speed.py                 # tiny Voxtral on CPU, espeak-ng takes: ~1-2 min on 2 cores
    python bench/train_speed.py --full-size     # a GPU: Voxtral-Mini-3B's real dimensions, random weights
    python bench/train_speed.py --full-size --layers 2 --device cpu --takes 4 --steps 2  # that path, on CPU
    bench/gpu_check.sh OUT_DIR                  # the prepared GPU run (see bench/README.md)

Every variant goes through the engine itself (voxspace.train.Trainer: its loss, cache, logits and
slice code), one after another in this process:
  upstream      bf16, batch 2 x accumulation 4, no encoder cache, no length batching, logits at every
                position, LoRA on q/k/v/o "everywhere": a plain target list also adapts the audio
                encoder, so every step backpropagates through all of its layers
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

Each variant runs two slices (Trainer.train_slice): slice 1 is the first epoch (setup, warm-up, encoder-
cache fill, checkpoint), slice 2 runs --steps steady-state steps (checkpoint). Columns: pass = the most
takes one forward pass held in slice 2 (fitted to free memory on a GPU); s/step and takes/s, audio-s/s
(slice 2); peak memory (GPU: torch.cuda.max_memory_allocated, weights included; CPU: peak RSS sampled
during the variant); steps% = share of each slice's seconds spent in optimizer steps (SliceSummary);
run_s = projected seconds for --epochs epochs over these takes (slice 1 as measured + later epochs at
the slice-2 rate); x-columns: ratios against upstream (>1 is better for speed, <1 is better for memory).
For the default it also times the before/after evaluation (generate on --eval-takes held-out takes, as
voxspace.evaluate does). Random weights never emit EOS, so generation runs to max_new_tokens: an upper
bound. Needs only torch, transformers, peft, bitsandbytes and numpy with --full-size (a lent GPU machine
has no mistral-common or soundfile).
"""

from __future__ import annotations

import argparse
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from voxspace.devtools.synthetic_takes import SyntheticProcessor, SyntheticTake, synthetic_examples
from voxspace.evaluate import adapter_disabled, transcribe
from voxspace.model import ModelConfig, load_base, load_model
from voxspace.train import TrainConfig, Trainer

UPSTREAM = dict(
    precision="bf16",
    batch_size=2,
    grad_accum=4,
    encoder_cache=False,
    length_batching=False,
    label_logits_only=False,
    lora_targets="attention_everywhere",
    auto_batch=False,
)
TINY_LAYERS = 2  # the tiny Voxtral's encoder and LM layers unless --layers says otherwise
GPU_ONLY = ("-8bit", "-auto_batch", "+fit_2x4")  # the same computation as another variant on a CPU


# --- the variants ------------------------------------------------------------------------------------
@dataclass
class Variant:
    name: str
    config: TrainConfig
    what: str


def build_variants(epochs: int = 5, encoder_layers: int = 32) -> list[Variant]:
    """Upstream, the default, the default with each lever switched off, and the encoder option's rows
    for a model with `encoder_layers` audio-encoder layers (see the docstring)."""
    d = TrainConfig(epochs=epochs)
    return [
        Variant("upstream", replace(d, **UPSTREAM), "bf16, 2x4, no cache, all logits, LoRA incl. encoder"),
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


class PeakMemory:
    """Peak memory while the block runs: CUDA allocator peak, else resident set size sampled every 5 ms."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.peak_bytes = 0
        self._stop = threading.Event()

    @staticmethod
    def _rss() -> int:
        try:
            return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:  # not Linux: the process high-water mark is the best we have
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak_bytes = max(self.peak_bytes, self._rss())

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            self.peak_bytes = self._rss()
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


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def failed_row(v: Variant, error: str | None) -> dict[str, Any]:
    """A row that says what was asked for; run_variant fills in the figures when it succeeds."""
    keys = (*UPSTREAM, "gradient_checkpointing", "rank", "epochs")  # UPSTREAM holds auto_batch
    row = {"name": v.name, "what": v.what, "ok": False, "config": {k: getattr(v.config, k) for k in keys}}
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
    eval_takes: list[SyntheticTake] | None,
    *,
    steps: int,
    device: str,
    work: Path,
    max_new_tokens: int,
) -> dict[str, Any]:
    """Slice 1 = the first epoch, slice 2 = `steps` steady steps; optionally time before/after eval."""
    seconds = {t.example.take_id: t.seconds for t in takes}
    n, cfg = len(takes), v.config
    spe = cfg.steps_per_epoch(n)
    cfg = replace(cfg, epochs=min(100, max(cfg.epochs, 1 + math.ceil(steps / spe))))  # never finish early
    run_dir = work / v.name.strip("-+")
    row = failed_row(replace(v, config=cfg), None)
    row["steps_per_epoch"] = spe
    trainer = None
    try:
        with PeakMemory(device) as mem:
            trainer = Trainer(run_dir, cfg, "bench", base=base, examples=[t.example for t in takes]).setup()
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
            peak_mb=round(mem.peak_bytes / 2**20, 1),
            ru_maxrss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            slices=[_slice_row(first), _slice_row(steady)],
            epoch1_s=round(first.step_seconds, 3),
            projected_run_s=round(first.step_seconds + (v.config.epochs - 1) * spe * per_step, 2),
            setup_and_save_s=round(first.overhead_seconds, 3),
            last_loss=steady.last_loss,
            takes_per_pass=steady.takes_per_pass,
            memory_fit=trainer.fitter.fit.to_dict() if trainer.fitter.fit else None,  # what step 1 measured
        )
        if eval_takes:
            row["eval"] = time_evaluation(trainer, [t.example for t in eval_takes], max_new_tokens)
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


def time_evaluation(trainer: Trainer, examples: list[Any], max_new_tokens: int) -> dict[str, float]:
    """Seconds for the before (adapter off) and after (adapter on) transcription of held-out takes."""
    collator = trainer.collator.inner if isinstance(trainer.collator, _CountingCollator) else trainer.collator
    out: dict[str, float] = {"takes": len(examples), "max_new_tokens": max_new_tokens}
    for label in ("before_s", "after_s"):
        _sync()
        t0 = time.perf_counter()
        if label == "before_s":
            with adapter_disabled(trainer.model):
                transcribe(trainer.model, collator, examples, max_new_tokens=max_new_tokens)
        else:
            transcribe(trainer.model, collator, examples, max_new_tokens=max_new_tokens)
        _sync()
        out[label] = round(time.perf_counter() - t0, 3)
    return out


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def add_ratios(rows: list[dict[str, Any]]) -> None:
    up = next((r for r in rows if r["name"] == "upstream" and r["ok"]), None)
    for r in rows:
        if up is None or not r["ok"]:
            continue
        r["vs_upstream"] = {
            "takes_per_s": round(r["takes_per_s"] / up["takes_per_s"], 3),
            "run": round(up["projected_run_s"] / r["projected_run_s"], 3),
            "peak_mem": round(r["peak_mb"] / up["peak_mb"], 3),
        }


def format_table(rows: list[dict[str, Any]], *, cpu: bool = False) -> str:
    """One line per variant; on a CPU also process CPU-seconds per step (steadier than wall time
    when other work shares the cores)."""
    head = ["variant", "prec", "batch", "pass", "s/step", "takes/s", "audio-s/s", "peak MB", "steps% s1/s2",
            "run_s", "x takes/s", "x run", "x mem"] + (["cpu-s/step"] if cpu else [])  # fmt: skip
    lines, errors = [head], []
    for r in rows:
        c = r["config"]
        cells = [r["name"], c["precision"], f"{c['batch_size']}x{c['grad_accum']}"]
        if not r["ok"]:
            lines.append([*cells, "-", "FAILED", *["-"] * (len(head) - 5)])
            errors.append(f"{r['name']}: {r['error']}")
            continue
        ratio = r.get("vs_upstream", {})
        lines.append([
            *cells, str(r["takes_per_pass"]), f"{r['s_per_step']:.3f}", f"{r['takes_per_s']:.2f}",
            f"{r['audio_s_per_s']:.1f}",
            f"{r['peak_mb']:.0f}", "/".join(f"{100 * s['step_share']:.0f}" for s in r["slices"]),
            f"{r['projected_run_s']:.1f}",
            *(f"{ratio[k]:.2f}" if k in ratio else "-" for k in ("takes_per_s", "run", "peak_mem")),
            *([f"{r['cpu_s_per_step']:.3f}"] if cpu else []),
        ])  # fmt: skip
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in lines]
    return "\n".join(table + errors)


def gpu_budget(default: dict[str, Any], takes: int, epochs: int) -> dict[str, Any]:
    """Does the default run (setup, training, before/after evaluation) fit a free day's 5 GPU-minutes?"""
    if not default.get("ok"):
        return {}
    ev = default.get("eval", {})
    evals = ev.get("before_s", 0) + ev.get("after_s", 0)
    total = default["setup_and_save_s"] + default["projected_run_s"] + evals
    return {
        "takes": takes,
        "epochs": epochs,
        "train_s": default["projected_run_s"],
        "setup_and_save_s": default["setup_and_save_s"],
        "eval_before_s": ev.get("before_s"),
        "eval_after_s": ev.get("after_s"),
        "total_s": round(total, 1),
        "fits_5_gpu_minutes": total <= 300,
    }


# --- main ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full-size", action="store_true", help="Voxtral-Mini-3B dimensions (for a GPU)")
    ap.add_argument("--layers", type=int, default=None, help="encoder and LM layers (also the tiny model's)")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--takes", type=int, default=None, help="training takes (default 16 tiny, 50 full size)")
    ap.add_argument("--eval-takes", type=int, default=None, help="held-out takes timed with generate")
    ap.add_argument("--steps", type=int, default=6, help="steady-state steps per variant (slice 2)")
    ap.add_argument("--epochs", type=int, default=5, help="epochs of the projected run")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="as voxspace.evaluate")
    ap.add_argument("--synthetic", action="store_true", help="random takes even for the tiny model")
    ap.add_argument("--variants", default=None, help="comma-separated names (default: all)")
    ap.add_argument(
        "--precision",
        choices=("configured", "fp32"),
        default=None,
        help="each variant's own precision (default on a GPU) or fp32 for all (default on a CPU)",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
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
    if args.variants:
        wanted = set(args.variants.split(","))
        variants = [v for v in variants if v.name in wanted]
    work = Path(tempfile.mkdtemp(prefix="voxspace-bench-"))
    started = time.monotonic()
    try:
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
                takes = espeak_takes(n_takes, work / "wav", processor, seed=0)
                eval_takes = espeak_takes(n_eval, work / "wav", processor, seed=1)

        meta = {
            "machine": machine(device),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "model": "full-size Voxtral (random weights)" if args.full_size else "tiny Voxtral",
            "takes": n_takes,
            "audio_s": round(sum(t.seconds for t in takes), 1),
        }
        # One base per precision, one at a time (a second base would distort peak memory).
        rows: dict[str, dict[str, Any]] = {}
        for precision in dict.fromkeys(v.config.precision for v in variants):
            t0 = time.monotonic()
            group = [v for v in variants if v.config.precision == precision]
            try:
                base = load(precision)
            except Exception as e:  # e.g. bitsandbytes missing: report it, measure the rest
                traceback.print_exc()
                for v in group:
                    rows[v.name] = failed_row(v, f"loading the {precision} base: {type(e).__name__}: {e}")
                continue
            print(f"{precision} base loaded in {time.monotonic() - t0:.1f} s", flush=True)
            warm = Variant("warmup", group[0].config, "")  # first CUDA/bitsandbytes calls, not measured
            run_variant(warm, base, takes[:2], None, steps=1, device=device, work=work, max_new_tokens=1)
            for v in group:
                rows[v.name] = run_variant(
                    v, base, takes, eval_takes if v.name == "default" else None,
                    steps=args.steps, device=device, work=work, max_new_tokens=args.max_new_tokens,
                )  # fmt: skip
                print(f"  {v.name}: {'ok' if rows[v.name]['ok'] else rows[v.name]['error']}", flush=True)
                write_report(rows, variants, args, meta, started)
            del base
            _free_memory()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    return write_report(rows, variants, args, meta, started, final=True)


def write_report(
    rows: dict[str, dict[str, Any]],
    variants: list[Variant],
    args: argparse.Namespace,
    meta: dict[str, Any],
    started: float,
    *,
    final: bool = False,
) -> dict[str, Any]:
    """The JSON (and the table next to it, as .txt) after every variant, so a timeout keeps the rest."""
    ordered = [rows[v.name] for v in variants if v.name in rows]
    add_ratios(ordered)
    result = {
        **meta,
        "complete": final,
        "variants": ordered,
        "default_gpu_budget": gpu_budget(rows.get("default", {}), meta["takes"], args.epochs),
        "bench_wall_s": round(time.monotonic() - started, 1),
    }
    table = format_table(ordered, cpu=meta["machine"]["device"] == "cpu")
    if b := result["default_gpu_budget"]:
        table += (
            f"\n\ndefault, {b['takes']} takes x {b['epochs']} epochs: train {b['train_s']:.1f} s"
            f" + setup/save {b['setup_and_save_s']:.1f} s"
            f" + eval {b['eval_before_s']} s before, {b['eval_after_s']} s after"
            f" = {b['total_s']} s (fits 5 GPU-minutes: {b['fits_5_gpu_minutes']})"
        )
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        args.out.with_suffix(".txt").write_text(f"{meta['model']} on {meta['machine']['device']}\n{table}\n")
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
