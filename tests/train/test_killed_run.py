"""A training process killed without warning (SIGKILL, as ZeroGPU ends a worker or a Space restarts)
resumes from its last checkpoint to exactly the weights of a run that was never interrupted.

Real processes, no mocks: `python -m voxspace train` on the tiny Voxtral, in ZeroGPU-style slices or
in one go (a dedicated GPU, checkpointing every second here), killed as soon as its first checkpoint
is on disk, then `--resume`d.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from voxspace import checkpoint
from voxspace.run_record import RunRecord

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _train_cmd(out: Path, takes_dir: Path, model_dir: Path, how: str) -> list[str]:
    # 4 takes x 40 epochs, one take per step: 160 short steps, checkpointed every second or two
    return [sys.executable, "-m", "voxspace", "train", "--data", str(takes_dir),
            "--base-model", str(model_dir), "--out", str(out), "--preset", "quick", "--precision", "fp32",
            "--epochs", "40", "--batch-size", "1", "--no-eval",
            # 6 s slices: several per run, and room for two steps of a loaded CI machine (2 s each)
            *(["--slice-seconds", "6"] if how == "slices" else [])]  # fmt: skip


def _env() -> dict[str, str]:
    # the same thread count in every process, so the float reductions (and the weights) match
    return {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": str(ROOT), "VOXSPACE_CHECKPOINT_EVERY_S": "1"}


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize("how", ["slices", "one go"])
def test_a_killed_run_resumes_to_the_weights_of_an_unbroken_one(tmp_path, takes_dir, tiny_voxtral_dir, how):
    unbroken, killed = tmp_path / "unbroken", tmp_path / "killed"
    _run(_train_cmd(unbroken, takes_dir, tiny_voxtral_dir, how))

    proc = subprocess.Popen(_train_cmd(killed, takes_dir, tiny_voxtral_dir, how), cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        while not checkpoint.has_checkpoint(killed):
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    at_kill = checkpoint.read_state(killed)
    assert 0 < at_kill["step"] < at_kill["total_steps"] == 160
    assert not (killed / "adapter").exists()  # it really was stopped part-way

    resumed = _run([sys.executable, "-m", "voxspace", "train", "--out", str(killed), "--resume", "--no-eval"])
    assert "adapter:" in resumed.stdout
    # it went on from the checkpoint (Trainer._restore logs where), not from step 0
    # the CLI keeps its log lines in <out>/train.log (the terminal shows one line per step)
    said = resumed.stderr + resumed.stdout + (killed / "train.log").read_text()
    assert re.search(rf"resumed \S+ at step {at_kill['step']}/160", said), said[-2000:]

    a = load_file(str(unbroken / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(killed / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert RunRecord.load(killed).loss_history == RunRecord.load(unbroken).loss_history
