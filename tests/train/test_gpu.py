"""Where training runs: ZeroGPU slice chaining, Hub checkpoints, scheduler errors, the queue, the CLI.

Outside a Space `spaces.GPU` returns the function unchanged (FACTS), so the chaining loop runs
here with the real decorator. ZeroGPU's refusals, through the real `spaces` client and a local
device API, are in test_zerogpu.py.
"""

from __future__ import annotations

import json
import math
import time

import pytest
import torch
from safetensors.torch import load_file

from voxspace import checkpoint, gpu
from voxspace.errors import Busy, SliceTimeout, VoxSpaceError
from voxspace.model import ModelConfig
from voxspace.train import STOP_MARGIN, TrainConfig, Trainer, one_step_budget


@pytest.fixture
def tiny_cfg(tiny_voxtral_dir) -> ModelConfig:
    return ModelConfig(str(tiny_voxtral_dir), precision="fp32")


def test_slices_chain_until_done_and_the_hub_copy_resumes_after_a_restart(
    tmp_path, takes_dir, tiny_cfg, hub, hub_tokens
):
    alice, repo = hub_tokens["alice"], "alice/voxspace-run"
    config = TrainConfig(precision="fp32", batch_size=2, epochs=3)
    Trainer(tmp_path / "run", config, takes_dir, tiny_cfg).prepare()  # CPU-only checks, writes run.json
    gpu.preload_base(tiny_cfg)  # once, at start-up
    assert checkpoint.find_remote_checkpoint(repo, alice, hub.url) is None

    seen = []
    pushed = []

    def push(run_dir):
        pushed.append(checkpoint.push_checkpoint(run_dir, repo, alice, hub.url))

    hub.fail_next_commits(1)  # the first checkpoint commit meets a 500 and is retried
    last = gpu.run_in_slices(
        tmp_path / "run", cap_s=120, on_slice=seen.append, push=push, max_steps_per_slice=2
    )
    assert last.done and last.step == last.total_steps == 6
    # each slice stops at 2 steps, or earlier if its planned time runs out (the machine may be busy)
    assert len(seen) >= 3 and all(0 < s.steps_run <= 2 for s in seen)
    assert [s.done for s in seen] == [False] * (len(seen) - 1) + [True]
    assert all(s.step_seconds > 0 and s.overhead_seconds >= 0 for s in seen)  # bench reads these
    # the overhead's parts (the slice log shows them): each slice built a trainer of its own, put LoRA on
    # the base, read the checkpoint back (after the first) and saved one
    parts = [(s.attach_seconds, s.load_seconds, s.save_seconds) for s in seen]
    assert all(
        a > 0 and save > 0 and a + load + save <= s.overhead_seconds
        for s, (a, load, save) in zip(seen, parts, strict=True)
    )
    assert all(load > 0 for _, load, _ in parts[1:])
    assert len(pushed) == len(seen) and hub.is_private(repo)

    remote = checkpoint.find_remote_checkpoint(repo, alice, hub.url)
    assert remote["step"] == 6 and remote["total_steps"] == 6
    assert checkpoint.find_remote_checkpoint(repo, hub_tokens["bob"], hub.url) is None  # private
    with pytest.raises(VoxSpaceError) as e:  # bob may not write into alice's namespace
        checkpoint.push_checkpoint(tmp_path / "run", repo, hub_tokens["bob"], hub.url)
    assert "checkpoint" in e.value.user_message and hub_tokens["bob"] not in str(e.value)

    # "After a Space restart": nothing local but the Hub copy; it must rebuild the same Trainer.
    restored = tmp_path / "restored"
    checkpoint.pull_checkpoint(restored, repo, alice, hub.url)
    local = load_file(str(tmp_path / "run" / "checkpoint" / "adapter_model.safetensors"))
    pulled = load_file(str(restored / "checkpoint" / "adapter_model.safetensors"))
    assert all(torch.equal(local[k], pulled[k]) for k in local)
    trainer = Trainer(restored, base=gpu.preload_base(tiny_cfg)).setup()
    assert trainer.step == 6 and trainer.done and trainer.config == config
    gpu._return_base(tiny_cfg, trainer.close())


def test_slice_duration_follows_the_planned_work_and_the_cap():
    assert gpu.plan_slice(120, remaining_steps=None, step_time_s=None, overhead_s=None) == (100.0, 120)
    budget, duration = gpu.plan_slice(120, remaining_steps=10, step_time_s=2.0, overhead_s=5.0, save_s=1.0)
    assert 20 + 1 < budget <= 40 and duration == math.ceil(budget + 5)
    budget, duration = gpu.plan_slice(120, remaining_steps=1000, step_time_s=2.0, overhead_s=5.0)
    assert duration == 120 and budget == 115
    # what spaces asks before reserving the GPU: the planned duration, with or without optional args
    assert gpu._slice_duration("run", budget, duration) == duration == 120
    with pytest.raises(SliceTimeout, match="smaller batch") as e:
        gpu.plan_slice(60, remaining_steps=10, step_time_s=50.0, overhead_s=5.0)
    assert "50.0 s" in e.value.user_message
    # a large overhead alone (one-off work in the slice it was measured in) still plans one step
    budget, duration = gpu.plan_slice(3, remaining_steps=10, step_time_s=0.1, overhead_s=6.0, save_s=0.1)
    assert budget == one_step_budget(0.1, 0.1) and duration == 3
    assert budget - 0.1 > STOP_MARGIN * 0.1  # the slice's stop rule lets that step start


def _cap_for_a_few_steps(run_dir, config, takes_dir, tiny_cfg) -> float:
    """A slice cap a few steps fit in on this machine as loaded as it is now: one step measured in
    a slice of its own (first-step warm-up included), times three, never under 3 s."""
    Trainer(run_dir, config, takes_dir, tiny_cfg).prepare()
    probe = gpu.gpu_slice(str(run_dir), 600.0, 600, None, 1)
    assert probe.steps_run == 1 and probe.step_time_s
    return max(3.0, 3 * one_step_budget(probe.step_time_s, checkpoint.read_state(run_dir)["save_s"]))


def test_a_slow_first_slice_does_not_make_the_later_ones_look_impossible(tmp_path, takes_dir, tiny_cfg):
    # A tracker whose first start is slow (trackio's first init on a loaded machine): the first
    # slice's overhead then exceeds the whole cap, yet every later slice starts in a moment.
    # The cap comes from a step measured here and now: a fixed one failed when load made a step slow.
    config = TrainConfig(precision="fp32", batch_size=1, epochs=3)
    gpu.preload_base(tiny_cfg)
    cap = _cap_for_a_few_steps(tmp_path / "probe", config, takes_dir, tiny_cfg)

    class SlowFirstStart:
        calls = 0

        def start(self, config):
            SlowFirstStart.calls += 1
            if SlowFirstStart.calls == 1:
                time.sleep(cap + 1)

        def log(self, metrics, step): ...
        def finish(self): ...

    Trainer(tmp_path / "run", config, takes_dir, tiny_cfg).prepare()
    seen = []
    last = gpu.run_in_slices(tmp_path / "run", cap_s=cap, on_slice=seen.append, tracker=SlowFirstStart())
    assert last.done and seen[0].overhead_seconds > cap and len(seen) >= 2
    assert all(s.steps_run > 0 for s in seen)  # no GPU call wasted on a slice too short for a step


def test_one_run_at_a_time_and_the_second_caller_learns_their_place():
    queue = gpu.RunQueue()
    queue.require_turn("alice")
    with pytest.raises(Busy) as e:
        queue.require_turn("bob")
    assert "number 2 in the queue" in e.value.user_message
    with pytest.raises(Busy, match="number 3"):
        queue.require_turn("carol")
    queue.leave("alice")
    queue.require_turn("bob")
    assert queue.position("carol") == 1
    with pytest.raises(Busy, match="number 3"):  # the ZeroGPU path asks the same queue
        gpu.run_in_slices("unused", cap_s=60, owner="dave", queue=queue)


def test_on_zerogpu_several_runs_go_at_once_and_the_next_one_waits():
    queue = gpu.RunQueue(capacity=2)
    assert queue.join("alice") == 0 and queue.join("bob") == 0  # each call gets a GPU of its own
    assert queue.join("carol") == 1
    with pytest.raises(Busy, match="number 2 in the queue"):
        queue.require_turn("carol")
    queue.leave("alice")
    assert queue.join("carol") == 0


def test_hardware_detection():
    assert gpu.detect_hardware({"SPACES_ZERO_GPU": "true"}).kind == "zerogpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert gpu.detect_hardware({}).kind == expected


def test_cli_trains_in_slices_resumes_and_evaluates(tmp_path, takes_dir, tiny_voxtral_dir, capsys):
    from voxspace.cli import main

    out = tmp_path / "run"
    args = [
        "train",
        "--data",
        str(takes_dir),
        "--base-model",
        str(tiny_voxtral_dir),
        "--out",
        str(out),
        "--preset",
        "quick",
        "--precision",
        "fp32",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--fixed-batch",
        "--max-new-tokens",
        "6",
    ]
    assert main([*args, "--slice-seconds", "60"]) == 0
    printed = capsys.readouterr().out
    assert "step 2/2" in printed and "slice:" in printed and "WER" in printed
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((out / "run.json").read_text())["config"]["auto_batch"] is False  # --fixed-batch

    assert main(args) == 2  # would overwrite a run
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--no-eval"]) == 0  # data and model from run.json
    assert "adapter:" in capsys.readouterr().out
    assert (
        main(["train", "--data", "x", "--base-model", "y", "--out", str(tmp_path / "new"), "--lr", "-1"]) == 2
    )
    assert "Learning rate" in capsys.readouterr().err

    assert (
        main(
            [
                "evaluate",
                "--data",
                str(takes_dir),
                "--base-model",
                str(tiny_voxtral_dir),
                "--precision",
                "fp32",
                "--adapter",
                str(out / "adapter"),
                "--max-new-tokens",
                "6",
            ]
        )
        == 0
    )
    report = capsys.readouterr().out
    assert "held-out takes: 2" in report and "after" in report
