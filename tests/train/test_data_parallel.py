"""Data-parallel training on several GPUs (issue 14 item 5), checked on the CPU: two processes
started the way a multi-GPU Job starts them (accelerate launch, gloo here instead of NCCL) learn
the same adapter as one process on the same steps."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from voxspace import checkpoint, data_parallel, jobs
from voxspace.errors import BadInput
from voxspace.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[2]
# 4 training takes (takes_dir) in steps of 2: one epoch is 2 steps, and each rank's share of a step
# is 1 take. No dropout: its masks are random per process, the one thing that may differ.
CONFIG = dict(precision="fp32", batch_size=2, epochs=1, dropout=0.0)
# float32 sums in another order (two shares of a step, then the all-reduce) differ in the last bits
TOLERANCE = dict(rtol=1e-4, atol=1e-6)


def _adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint.checkpoint_dir(run_dir) / "adapter_model.safetensors"))


def test_two_processes_train_to_the_same_weights_as_one(tmp_path, takes_dir, tiny_voxtral_dir, base):
    from peft import get_peft_model_state_dict

    one = Trainer(tmp_path / "one", TrainConfig(**CONFIG), takes_dir, base=base).setup()
    initial = {k: v.detach().clone() for k, v in get_peft_model_state_dict(one.model).items()}
    assert one.train_slice(budget_s=1e9).done and one.step == 2

    command = data_parallel.launcher(2)  # what jobs.job_command puts before the entry on 2 GPUs
    command[0] = sys.executable
    command += ["-m", "voxspace.devtools.data_parallel_run", str(tmp_path / "two"), str(takes_dir)]
    command += [str(tiny_voxtral_dir), json.dumps(CONFIG)]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"two processes: {time.monotonic() - started:.1f} s")

    ones, twos = _adapter(tmp_path / "one"), _adapter(tmp_path / "two")
    assert ones.keys() == twos.keys() == initial.keys()
    for k, v in ones.items():
        torch.testing.assert_close(twos[k], v, **TOLERANCE)
    assert any(not torch.equal(ones[k], initial[k]) for k in ones)  # the runs did train
    # the global loss each rank logged, and the held-out loss of the two shares added up
    a, b = checkpoint.read_state(tmp_path / "one"), checkpoint.read_state(tmp_path / "two")
    assert b["step"] == b["total_steps"] == 2
    torch.testing.assert_close(torch.tensor(b["loss_history"]), torch.tensor(a["loss_history"]), **TOLERANCE)
    torch.testing.assert_close(
        torch.tensor(b["heldout_history"]), torch.tensor(a["heldout_history"]), **TOLERANCE
    )


def test_a_multi_gpu_job_starts_one_training_process_per_gpu():
    one = jobs.job_command(jobs.FLAVORS["l4x1"], "alice/voxspace-checkpoints", "run-1", "abc123")
    assert one == [
        "python", "-m", "voxspace.job_entry",
        "--repo", "alice/voxspace-checkpoints", "--run", "run-1", "--spec-revision", "abc123",
    ]  # fmt: skip
    for name, gpus in (("a10g-largex2", 2), ("l4x4", 4)):
        many = jobs.job_command(
            jobs.FLAVORS[name], "alice/voxspace-checkpoints", "run-1", "abc123", resume=True
        )
        assert many[:3] == ["python", "-m", "accelerate.commands.launch"]
        assert many[many.index("--num_processes") + 1] == str(gpus)
        assert many[-len(one) :] == [*one[1:], "--resume"]
    assert "accelerate" not in " ".join(one)


def test_a_model_must_fit_on_each_gpu_of_a_multi_gpu_flavor():
    with pytest.raises(BadInput, match=r"needs about 40 GB.*l4x4 has 24 GB on each of its 4 GPUs.*l40sx4"):
        jobs.check_fits(jobs.FLAVORS["l4x4"], "mistralai/Voxtral-Small-24B-2507", "8bit")
    jobs.check_fits(jobs.FLAVORS["l40sx4"], "mistralai/Voxtral-Small-24B-2507", "8bit")  # 40 GB of 48
    # four cards share the steps: the same run is planned shorter, and billed at the machine's price
    single = jobs.plan(TrainConfig(), 500, 40.0, "l4x1")
    four = jobs.plan(TrainConfig(), 500, 40.0, "l4x4")
    assert four.minutes < single.minutes
    assert "4 × NVIDIA L4, 24 GB each, $3.80/h" in four.describe()
