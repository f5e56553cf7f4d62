"""Data-parallel training on N processes against one, on the tiny Voxtral: the same adapter? how long?

    python bench/data_parallel_check.py                       # a GPU machine: N = its GPU count, 8-bit
    python bench/data_parallel_check.py --processes 2 --precision bf16 --epochs 3
    python bench/data_parallel_check.py --processes 2         # no GPU: 2 gloo processes in fp32 (a dry run)

The N-process run is started as a multi-GPU Hugging Face Job starts it (voxspace.data_parallel.launcher:
accelerate launch, NCCL on GPUs); the one-process run is the same worker without a launcher
(voxspace.devtools.data_parallel_run). Takes: quiet noise with short texts (the weights, not WER,
are compared). Prints the largest difference of any adapter weight (against the largest weight),
both runs' loss per step and held-out loss, and each run's wall time (one measurement each,
start-up included: the tiny model says nothing about speed at full size). LoRA dropout is 0:
with dropout on, masks are drawn per process and the runs differ by design.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = ["hello world", "open the door", "good morning", "read the book", "it is raining", "the cat sat"]


def write_takes(root: Path, n_train: int) -> None:
    """Takes until `n_train` of them are for training (layout.split_for holds others out)."""
    import soundfile as sf

    from voxspace.devtools.voxfactory import synthetic_audio
    from voxspace.layout import Take, split_for, write_take

    seq = 0
    while sum(split_for(i) == "train" for i in range(seq)) < n_train:
        seconds = 1.0 + 0.25 * seq
        buf = io.BytesIO()
        sf.write(buf, synthetic_audio(seconds, seed=seq), 16000, subtype="PCM_16", format="WAV")
        text = WORDS[seq % len(WORDS)]
        take = Take(f"t{seq:03d}", text, "en", seconds, f"en-{seq:04d}", split_for(seq), seq, 0.0)
        write_take(root, take, buf.getvalue())
        seq += 1


def run(command: list[str], label: str) -> float:
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        print(done.stdout[-4000:], done.stderr[-4000:], sep="\n")
        raise SystemExit(f"{label}: exit code {done.returncode}")
    return wall


def main() -> None:
    import torch
    from safetensors.torch import load_file

    from voxspace import checkpoint, data_parallel
    from voxspace.devtools.tiny_voxtral import build

    gpus = torch.cuda.device_count()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--processes", type=int, default=max(2, gpus))
    ap.add_argument("--precision", default="8bit" if gpus else "fp32")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = ap.parse_args()
    n = args.processes
    if gpus and n > gpus:
        raise SystemExit(f"{n} processes need {n} GPUs; this machine has {gpus}.")
    tmp = Path(tempfile.mkdtemp(prefix="dp-check-"))
    build(tmp / "model")
    # steps of one take per process, and a last step of one take: there the other processes have
    # no take and add zeros to the gradient sum
    write_takes(tmp / "takes", 2 * n + 1)
    config = json.dumps(dict(precision=args.precision, batch_size=n, epochs=args.epochs, dropout=0.0))
    worker = ["-m", "voxspace.devtools.data_parallel_run"]
    walls, states, adapters = {}, {}, {}
    for label, prefix in (("1 process", [sys.executable]), (f"{n} processes", data_parallel.launcher(n))):
        prefix[0] = sys.executable
        run_dir = tmp / label.replace(" ", "-")
        walls[label] = run(
            prefix + worker + [str(run_dir), str(tmp / "takes"), str(tmp / "model"), config], label
        )
        states[label] = checkpoint.read_state(run_dir)
        adapters[label] = load_file(str(checkpoint.checkpoint_dir(run_dir) / "adapter_model.safetensors"))
    one, many = adapters.values()
    diff = max(float((many[k].float() - v.float()).abs().max()) for k, v in one.items())
    scale = max(float(v.float().abs().max()) for v in one.values())
    figures = {
        "device": torch.cuda.get_device_name(0) if gpus else "cpu (gloo)",
        "processes": n,
        "precision": args.precision,
        "max_abs_weight_diff": diff,
        "max_abs_weight": scale,
        "wall_s": walls,
        "loss_history": {k: s["loss_history"] for k, s in states.items()},
        "heldout_history": {k: s["heldout_history"] for k, s in states.items()},
    }
    print(f"{figures['device']}, {args.precision}, {n} processes, {states['1 process']['step']} steps")
    print(f"adapter: largest |difference| {diff:.3g} (largest |weight| {scale:.3g})")
    for label in walls:
        losses = " ".join(f"{loss:.5f}" for _, loss in states[label]["loss_history"])
        held = " ".join(f"{loss:.5f}" for _, loss in states[label]["heldout_history"])
        print(f"{label:>12}: {walls[label]:6.1f} s wall; step losses {losses}; held-out {held}")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
