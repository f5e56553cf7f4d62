"""VoxSpace through ZeroGPU's real machinery on a lent GPU: slices, evaluation, resume.

    python bench/zerogpu_check.py model DIR [--tiny]                       # writes the base model folder
    python bench/zerogpu_check.py run --model DIR --precision bf16 [--tiny] [--out X.json]

`run` is a ZeroGPU Space process: the local device API (tests/support/zerogpu_api.py) is started,
then the real `spaces` package in ZeroGPU mode (SPACES_ZERO_GPU=true, imported first); the base is
loaded at start-up in the main thread and packed by launch(); every GPU call forks a worker that
moves the weights to real CUDA. It trains three slices of two steps on synthetic-noise takes (as a
visitor: each call carries their X-IP-Token), evaluates in one call (bf16 only: evaluation runs on
the served bf16 base, which a Space holding an 8-bit base does not have), then trains the same six
steps unbroken in one call, and prints per call: seconds outside the slice (GPU wait, fork, move to
the GPU), setup + save, seconds in steps, peak GPU memory; and whether the resumed adapter equals
the unbroken one. A failure prints its sentence and the script goes on to the next part.
`--tiny`: the tiny model on a CPU machine, with the CPU worker seam (a dry run of this script).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORDS = ("open the door read a green book the cat sat on a mat it is raining again good morning").split()  # noqa: SIM905


def write_model(out: Path, tiny: bool) -> None:
    """Random weights with Voxtral-Mini-3B's dimensions (or the tiny model) and the tiny processor."""
    from voxspace.devtools.tiny_voxtral import build, build_processor

    if tiny:
        build(out)
        return
    sys.path.insert(0, str(ROOT / "bench"))
    from train_speed import write_random_voxtral

    write_random_voxtral(out, layers=None, device="cuda")
    build_processor(out)


def write_takes(root: Path, n: int) -> None:
    """`n` takes of 2-8 s of quiet noise with random text, in the dataset layout (no espeak needed)."""
    import numpy as np

    from voxspace.layout import Take, split_for, write_take

    rng = random.Random(0)
    noise = np.random.default_rng(0)
    for seq in range(n):
        seconds = rng.uniform(2, 8)
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(noise.integers(-300, 300, int(seconds * 16000), dtype=np.int16).tobytes())
        text = " ".join(rng.choice(WORDS) for _ in range(int(seconds * 2.5)))
        take = Take(
            take_id=f"t{seq:03d}",
            text=text,
            language="en",
            duration=seconds,
            phrase_id=f"en-{seq:04d}",
            split=split_for(seq),
            seq=seq,
            created_at=0.0,
        )
        write_take(root, take, buf.getvalue())


def run(model: Path, precision: str, tiny: bool, out: Path | None) -> int:
    from tests.support.zerogpu_api import DeviceAPI, visitor_token

    work = Path(tempfile.mkdtemp(prefix="zerogpu-check-"))
    api = DeviceAPI(max_duration_s=300).start()
    os.environ.update(
        SPACES_ZERO_GPU="true", SPACES_ZERO_DEVICE_API_URL=api.url, ZEROGPU_OFFLOAD_DIR=str(work / "offload")
    )
    import spaces  # noqa: F401 - first, as on a Space

    if tiny:
        from tests.support.zerogpu_seam import install_cpu_worker_seam

        install_cpu_worker_seam()
    import gradio as gr
    from gradio.context import LocalContext

    from voxspace import gpu, gpu_eval
    from voxspace.errors import VoxSpaceError
    from voxspace.model import ModelConfig
    from voxspace.train import TrainConfig, Trainer

    result: dict = {"precision": precision, "model": "tiny" if tiny else "full-size random Voxtral-Mini-3B"}
    t0 = time.monotonic()
    gpu.preload_base(ModelConfig(str(model), precision=precision))  # main thread, before launch()
    result["load_s"] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    with gr.Blocks() as demo:
        gr.Markdown("zerogpu_check")
    demo.launch(prevent_thread_lock=True)  # spaces' start-up: the base is packed to disk
    result["pack_s"] = round(time.monotonic() - t0, 1)
    LocalContext.request.set(gr.Request(headers={"x-ip-token": visitor_token("bench")}))
    write_takes(work / "takes", 12)
    config = TrainConfig(precision=precision, batch_size=4, epochs=3, auto_batch=not tiny)  # 6 steps
    cfg = ModelConfig(str(model), precision=precision)
    rows: list[dict] = []

    def part(name: str, fn) -> None:
        try:
            fn()
        except VoxSpaceError as e:
            print(f"{name}: FAILED: {e.user_message} ({e.detail})", flush=True)
            result[f"{name}_error"] = e.user_message
        except Exception as e:  # a bench reports and goes on
            print(f"{name}: FAILED: {type(e).__name__}: {e}", flush=True)
            result[f"{name}_error"] = f"{type(e).__name__}: {e}"

    def record(label: str):
        def on_slice(s) -> None:
            rows.append(
                {
                    "part": label,
                    "steps": s.steps_run,
                    "step_s": round(s.step_seconds, 2),
                    "setup_save_s": round(s.overhead_seconds, 2),
                    "attach_s": round(s.attach_seconds, 2),
                    "load_s": round(s.load_seconds, 2),
                    "save_s": round(s.save_seconds, 2),
                    "outside_s": round(s.outside_seconds, 2),
                    "call_s": round(s.call_seconds, 2),
                    "peak_gpu_gb": s.peak_gpu_gb,
                    "encoder_runs": s.encoder_runs,
                }
            )

        return on_slice

    def sliced() -> None:
        Trainer(work / "sliced", config, work / "takes", cfg).prepare()
        gpu.run_in_slices(work / "sliced", cap_s=120, max_steps_per_slice=2, on_slice=record("slice"))

    def evaluate() -> None:
        t = time.monotonic()
        report = gpu_eval.evaluate_in_slices(work / "sliced", None, cap_s=120, max_new_tokens=16)
        result["eval"] = {"takes": report.n_takes, "wall_s": round(time.monotonic() - t, 2)}

    def unbroken() -> None:
        Trainer(work / "unbroken", config, work / "takes", cfg).prepare()
        gpu.run_in_slices(work / "unbroken", cap_s=120, on_slice=record("unbroken"))

    part("slices", sliced)
    if precision == "bf16":
        part("eval", evaluate)
    part("unbroken", unbroken)
    result["same_weights"] = _same_adapter(work / "sliced", work / "unbroken")
    result["calls"] = [
        f"{c.visitor}: asked {c.duration_s} s, {c.answer}, held {c.seconds:.1f} s" for c in api.calls
    ]
    result["slices"] = rows
    for r in rows:
        print("  ".join(f"{k}={v}" for k, v in r.items()), flush=True)
    print(json.dumps({k: v for k, v in result.items() if k not in ("slices",)}, indent=1), flush=True)
    if out is not None:
        out.write_text(json.dumps(result, indent=1))
    return 0 if "slices_error" not in result else 1


def _same_adapter(a: Path, b: Path) -> str:
    """Whether the resumed run's adapter equals the unbroken run's (max abs difference otherwise)."""
    from safetensors.torch import load_file

    name = "checkpoint/adapter_model.safetensors"
    if not (a / name).is_file() or not (b / name).is_file():
        return "n/a (a run did not finish)"
    x, y = load_file(str(a / name)), load_file(str(b / name))
    diff = max(float((x[k].float() - y[k].float()).abs().max()) for k in x)
    return "identical" if diff == 0 else f"max abs difference {diff:.3g}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("model")
    m.add_argument("dir", type=Path)
    m.add_argument("--tiny", action="store_true")
    r = sub.add_parser("run")
    r.add_argument("--model", type=Path, required=True)
    r.add_argument("--precision", choices=("bf16", "8bit"), default="bf16")
    r.add_argument("--tiny", action="store_true")
    r.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.cmd == "model":
        write_model(args.dir, args.tiny)
        return 0
    return run(args.model, args.precision, args.tiny, args.out)


if __name__ == "__main__":
    sys.exit(main())
