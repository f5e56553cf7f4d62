"""Data-parallel training on several GPUs of one machine (a multi-GPU Hugging Face Job).

    python -m accelerate.commands.launch --multi_gpu --num_processes 4 ... -m voxspace.job_entry ...

`accelerate launch` (torch.distributed.run underneath) starts one process per GPU. Rank 0 is the
run as on one GPU (takes, evaluation, checkpoints, progress, trackio, the Hub); the other ranks
only train (`train_as_helper`). Each optimizer step's takes are split between the ranks, every
rank divides its loss sum by the label tokens of the WHOLE step, and one all-reduce sums the
gradients: the optimizer sees the mean gradient of the whole step, as one GPU would, so the
weights are the same up to float rounding. Rank 0 decides, and broadcasts, whether another step
runs (cancel, checkpoint time), so every rank makes the same calls in the same order.

No DDP wrapper: the passes a step is split into are fitted to each GPU's free memory and retried
smaller after an out-of-memory error, so ranks differ in how many backward passes a step takes;
one all-reduce per step, after them all, is the same arithmetic. LoRA keeps it cheap: only the
adapter's gradients travel.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# What rank 0 tells the others before each step (Ranks.decide).
STEP, PAUSE, END = 0, 1, 2  # run one step | end this slice (a checkpoint), more follow | no more steps
# Rank 0 fetches the takes and measures the base model before training while the others wait: the
# collectives' default 10 to 30 minutes would not cover a big held-out set. A failure on any rank
# ends the launcher's whole group at once, so a long timeout does not keep a dead Job billing.
WAIT = datetime.timedelta(hours=12)


@dataclass(frozen=True)
class Ranks:
    """This process's place in the group: rank 0 of 1 is a plain single-process run."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"  # where collective tensors live (NCCL wants them on this rank's GPU)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def shard(self, items: list[T]) -> list[T]:
        """This rank's part of one step's takes, or of the held-out takes (interleaved: a
        length-sorted step stays balanced)."""
        return items[self.rank :: self.world]

    def sum_grads(self, params: list[Any]) -> None:
        """Sum every rank's gradients in place, in one all-reduce (a rank without takes adds zeros)."""
        if not self.parallel:
            return
        import torch
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1).float() for g in grads]).to(self.device)
        dist.all_reduce(flat)
        offset = 0
        for p, g in zip(params, grads, strict=True):
            n = g.numel()
            p.grad = flat[offset : offset + n].view_as(g).to(device=p.device, dtype=g.dtype)
            offset += n

    def share_weights(self, params: list[Any]) -> None:
        """Rank 0's values of `params` on every rank (the same seed and checkpoint give the same
        already; this makes sure of it before the first step)."""
        if not self.parallel:
            return
        import torch.distributed as dist

        for p in params:
            t = p.data.to(self.device)
            dist.broadcast(t, src=0)
            p.data.copy_(t)

    def sum(self, *values: float) -> tuple[float, ...]:
        """The sum of each value over all ranks."""
        if not self.parallel:
            return values
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return tuple(float(x) for x in t.tolist())

    def decide(self, move: int) -> int:
        """Rank 0's `move` (STEP, PAUSE or END), the same on every rank."""
        if not self.parallel:
            return move
        import torch
        import torch.distributed as dist

        t = torch.tensor([move], dtype=torch.int64, device=self.device)
        dist.broadcast(t, src=0)
        return int(t.item())

    def main_ready(self) -> None:
        """Rank 0: the run folder (run.json, encoded takes, checkpoint) is ready; the others read it now."""
        if self.parallel:
            import torch.distributed as dist

            dist.barrier()


SINGLE = Ranks()


def current() -> Ranks:
    """This process's Ranks: the group started by `join` (or by the caller), else SINGLE."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    return Ranks(dist.get_rank(), dist.get_world_size(), _device())


def _device() -> str:
    import torch

    return f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"


def launched(env: dict[str, str] | None = None) -> bool:
    """Whether this process was started by a launcher for more than one process."""
    env = os.environ if env is None else env
    return int(env.get("WORLD_SIZE", "1")) > 1


def join() -> Ranks:
    """Join the launcher's group (NCCL on GPUs, gloo on a CPU); each rank on its own GPU."""
    import torch
    import torch.distributed as dist

    if not launched():
        return SINGLE
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=WAIT)
    return current()


def leave() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def launcher(num_processes: int) -> list[str]:
    """The command prefix that runs `-m MODULE ...` once per GPU (empty for one GPU)."""
    if num_processes <= 1:
        return []
    return [
        "python",
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(num_processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",  # the Trainer keeps its own precision
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "0",  # a free port
    ]


def train_as_helper(run_dir: str | Path, ranks: Ranks) -> None:
    """A rank other than 0: wait for rank 0's run folder, then train this rank's share of every
    step until rank 0 says the run has ended (done or cancelled). Writes nothing. If rank 0 fails
    instead, its process ends with an error and the launcher ends this one."""
    from voxspace.train import Trainer

    ranks.main_ready()
    trainer = Trainer(run_dir, ranks=ranks)
    trainer.model_cfg.device = ranks.device  # this rank's own GPU, by index (8-bit's device_map too)
    trainer.setup()
    while not trainer.ended:
        trainer.train_slice(budget_s=float("inf"))
