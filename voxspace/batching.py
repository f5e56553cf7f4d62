"""Which takes make each optimizer step, and how many of them go through the model at once.

An optimizer step always learns from `batch_size x grad_accum` takes: the effective batch, a
hyperparameter that shapes what is learned. How many of those takes share one forward/backward pass
is only a question of memory. On a GPU (`TrainConfig.auto_batch`) it is fitted to the free memory:
the run's first step passes one take at a time and measures what a padded token costs, then every
later pass holds as many takes as fit. Elsewhere a pass holds `batch_size` takes. The loss is summed
over the whole step's label tokens and divided once, so any split learns the same thing, up to
float rounding (tests/train/test_batching.py). The evaluation fits its `generate` calls the same way
(`takes_per_generate`, used by voxspace.evaluate.transcribe).
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)
GiB = 2**30
RESERVE_BYTES = 1 * GiB  # allocator slack and fragmentation, kept free on top of RESERVE_SHARE
RESERVE_SHARE = 0.05  # of the GPU's total memory


def plan_steps(
    lengths: list[int], step_size: int, seed: int, epoch: int, length_aware: bool
) -> list[list[int]]:
    """The epoch's optimizer steps (indices into the examples), a pure function of its arguments.

    Length-aware: shuffle, sort by length (stable), cut into steps, shuffle the step order, so a step
    holds takes of similar length (little padding) yet the steps arrive in a new order every epoch.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if length_aware:
        order.sort(key=lambda i: lengths[i])
    steps = [order[i : i + step_size] for i in range(0, len(order), step_size)]
    if length_aware:
        rng.shuffle(steps)
    return steps


def split_step(
    ids: list[int], lengths: list[int], *, takes_per_pass: int = 1, token_budget: int | None = None
) -> list[list[int]]:
    """One step's takes cut into passes, in order.

    Without a token budget a pass holds `takes_per_pass` takes. With one, a pass holds as many takes
    as keep (takes x its longest take, the padded size) within the budget, and always at least one.
    """
    if token_budget is None:
        return [ids[i : i + takes_per_pass] for i in range(0, len(ids), takes_per_pass)]
    passes: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in ids:
        grown = max(longest, lengths[i])
        if current and (len(current) + 1) * grown > token_budget:
            passes.append(current)
            current, grown = [], lengths[i]
        current.append(i)
        longest = grown
    if current:
        passes.append(current)
    return passes


def takes_per_generate(prompt_lens: list[int], limits: list[int], token_budget: int) -> int:
    """How many of the next takes (in order) one `generate` call may hold: its padded size, takes x
    (longest prompt + largest token limit among them), stays within `token_budget`; at least one."""
    n, longest, limit = 0, 0, 0
    for prompt, new in zip(prompt_lens, limits, strict=True):
        longest, limit = max(longest, prompt), max(limit, new)
        if n and (n + 1) * (longest + limit) > token_budget:
            break
        n += 1
    return max(n, 1)


@dataclass
class MemoryFit:
    """What the first step measured, kept in the checkpoint so every later slice splits alike."""

    bytes_per_token: float  # activation memory one padded token costs in a training pass
    token_budget: int  # padded tokens (takes x longest) one pass may hold on this GPU

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> MemoryFit | None:
        return cls(**raw) if raw else None


def token_budget(free_bytes: float, bytes_per_token: float, reserve_bytes: float) -> int:
    """Padded tokens one pass may hold: the free memory beyond the reserve, over the measured cost."""
    return max(0, int((free_bytes - reserve_bytes) / max(bytes_per_token, 1.0)))


class MemoryMeter(Protocol):
    """The device-memory counters the fit needs (CUDA's; a test may stand in for them)."""

    def start_pass(self) -> None: ...
    def pass_peak(self) -> int: ...
    def free_bytes(self) -> int: ...
    def total_bytes(self) -> int: ...
    def release(self) -> None: ...


class CudaMemory:
    """torch.cuda's counters for one device."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self._before = 0

    def start_pass(self) -> None:
        import torch

        torch.cuda.reset_peak_memory_stats(self.device)
        self._before = torch.cuda.memory_allocated(self.device)

    def pass_peak(self) -> int:
        """Bytes the pass added at its peak, over what was allocated when it started."""
        import torch

        return torch.cuda.max_memory_allocated(self.device) - self._before

    def free_bytes(self) -> int:
        """Free to this process: the driver's free memory plus what torch holds but does not use."""
        import torch

        free, _ = torch.cuda.mem_get_info(self.device)
        return free + torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)

    def total_bytes(self) -> int:
        import torch

        return torch.cuda.get_device_properties(self.device).total_memory

    def release(self) -> None:
        import torch

        torch.cuda.empty_cache()


class PassFitter:
    """Chooses each step's passes and learns from the memory they use (see the module docstring)."""

    def __init__(self, meter: MemoryMeter | None, takes_per_pass: int, extra_reserve_bytes: int = 0) -> None:
        self.meter = meter  # None: a CPU, or fitting switched off
        self.takes_per_pass = takes_per_pass
        self.extra_reserve = extra_reserve_bytes
        self.fit: MemoryFit | None = None  # set by the measuring step, or restored from a checkpoint
        self._measured = 0.0  # the largest bytes-per-token seen in the measuring step

    @property
    def measuring(self) -> bool:
        return self.meter is not None and self.fit is None

    def passes(self, ids: list[int], lengths: list[int]) -> list[list[int]]:
        if self.meter is None:
            return split_step(ids, lengths, takes_per_pass=self.takes_per_pass)
        if self.fit is None:
            return split_step(ids, lengths, takes_per_pass=1)  # measure on one take at a time
        return split_step(ids, lengths, token_budget=self.fit.token_budget)

    def before_pass(self) -> None:
        if self.measuring:
            self.meter.start_pass()

    def after_pass(self, padded_tokens: int) -> None:
        if self.measuring:
            self._measured = max(self._measured, self.meter.pass_peak() / max(padded_tokens, 1))

    def after_step(self) -> MemoryFit | None:
        """Once the measuring step is done (optimizer state now allocated): fix the budget."""
        if not self.measuring or self._measured <= 0:
            return None
        reserve = RESERVE_BYTES + RESERVE_SHARE * self.meter.total_bytes() + self.extra_reserve
        self.fit = MemoryFit(self._measured, token_budget(self.meter.free_bytes(), self._measured, reserve))
        log.info("memory fit: %.0f KB per padded token, %d tokens per pass", self._measured / 1024,
                 self.fit.token_budget)  # fmt: skip
        return self.fit

    def remeasure(self) -> None:
        """Forget the fit (the cost per token changed, e.g. checkpointing went on): measure again."""
        self.fit, self._measured = None, 0.0
        if self.meter is not None:
            self.meter.release()

    def shrink(self, failed_pass: list[int], lengths: list[int]) -> bool:
        """After running out of memory on `failed_pass`: halve what such a pass holds. False if it was
        one take already (nothing left to split) or the split is not fitted to memory."""
        if self.meter is None or len(failed_pass) <= 1 or self.fit is None:
            return False
        longest = max(lengths[i] for i in failed_pass)
        self.fit.token_budget = min(self.fit.token_budget, (len(failed_pass) // 2) * longest)
        self.meter.release()
        log.info("out of memory with %d takes per pass: now at most %d tokens per pass",
                 len(failed_pass), self.fit.token_budget)  # fmt: skip
        return True
