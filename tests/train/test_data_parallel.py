"""Data-parallel training on several GPUs (issue 14 item 5), checked on the CPU: a Job on a
two-GPU flavor, run by the local Hub as a real process (tests/support/jobs_server.py), starts
voxspace.job_entry twice through accelerate launch (gloo here instead of NCCL), and the two
processes learn the same adapter as one process on the same steps. The seams: CPU processes
stand in for the GPUs, this checkout for the Space's image."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from tests.train.test_jobs import _launch, alice, settings  # noqa: F401 - the Jobs tests' fixtures
from voxspace import jobs
from voxspace.errors import BadInput
from voxspace.run_record import RunRecord
from voxspace.train import TrainConfig, Trainer

# 4 training takes (takes_dir) in steps of 2: one epoch is 2 steps, and each rank's share of a step
# is 1 take. No dropout: its masks are random per process, the one thing that may differ.
CONFIG = dict(precision="fp32", batch_size=2, epochs=1, dropout=0.0)
# float32 sums in another order (two shares of a step, then the all-reduce) differ in the last bits
TOLERANCE = dict(rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_two_processes_train_to_the_same_weights_as_one(
    settings,  # noqa: F811
    alice,  # noqa: F811
    recordings,
    hub,
    takes_dir,
    base,
    tmp_path,
):
    from peft import get_peft_model_state_dict

    one = Trainer(tmp_path / "one", TrainConfig(**CONFIG), takes_dir, base=base).setup()
    initial = {k: v.detach().clone() for k, v in get_peft_model_state_dict(one.model).items()}
    assert one.train_slice(budget_s=1e9).done and one.step == 2
    # the same takes (`recordings` holds takes_dir) as a Job on two GPUs: here two CPU processes
    run_dir = tmp_path / "runs" / "two-gpus"
    config = {k: v for k, v in CONFIG.items() if k != "precision"}
    job = _launch(settings, alice, run_dir, recordings, "a10g-largex2", evaluate=False, **config)
    command = hub.job(job.record.job_id)["command"]
    assert command[command.index("--num_processes") + 1] == "2"
    lines: list[str] = []
    final = jobs.follow(job, on_line=lines.append, poll_s=0.5)
    assert final.phase == "done", (final.message, hub.job_log(job.record.job_id)[-3000:])

    ones = load_file(str(tmp_path / "one" / "adapter" / "adapter_model.safetensors"))
    twos = load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))
    assert ones.keys() == twos.keys() == initial.keys()
    for k, v in ones.items():
        torch.testing.assert_close(twos[k], v, **TOLERANCE)
    assert any(not torch.equal(ones[k], initial[k]) for k in ones)  # the runs did train
    # the loss of every step (each rank's share added up) and the held-out loss, as one process had them
    record = RunRecord.load(run_dir)
    torch.testing.assert_close(torch.tensor(record.loss_history), torch.tensor(one.loss_history), **TOLERANCE)
    torch.testing.assert_close(
        torch.tensor(record.heldout_loss_history), torch.tensor(one.heldout_history), **TOLERANCE
    )
    # only rank 0 speaks: each step is said once
    assert [line.split()[1] for line in lines if line.startswith("step ")] == ["1/2", "2/2"]


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
