"""torch.cuda's memory counters for a GPU that is not here: the one seam of the memory-fit tests.

A fake does not trust the engine's own arithmetic: it counts the tokens that really reach the
language model (a forward pre-hook) and can run out of memory above a token count, as a real GPU
would. Subclasses say, in `seen`, which passes they count and what a pass holds.
"""

from __future__ import annotations

from voxspace.batching import RESERVE_BYTES, RESERVE_SHARE

GiB = 2**30
BYTES_PER_TOKEN = 2**20  # the fake GPU's cost of one token held by the language model


class FakeCudaMemory:
    """The MemoryMeter protocol for a GPU with `fits` tokens of room beyond the reserve (+ `extra_bytes`)."""

    total = 20 * GiB  # 5% of it is a whole number of bytes

    def __init__(self, model, *, fits: int, extra_bytes: int = 0) -> None:
        self.free = int(RESERVE_BYTES + RESERVE_SHARE * self.total + extra_bytes + fits * BYTES_PER_TOKEN)
        self.released = 0
        self._peak = 0  # the most tokens held since start_pass
        self._hook = model.model.language_model.register_forward_pre_hook(self._hooked, with_kwargs=True)

    def _hooked(self, module, args, kwargs) -> None:
        x = kwargs.get("inputs_embeds")
        x = kwargs.get("input_ids") if x is None else x
        self.seen(int(x.shape[0]), int(x.shape[1]))

    def seen(self, takes: int, length: int) -> None:
        raise NotImplementedError

    # the MemoryMeter protocol
    def start_pass(self) -> None:
        self._peak = 0

    def pass_peak(self) -> int:
        return self._peak * BYTES_PER_TOKEN

    def free_bytes(self) -> int:
        return self.free

    def total_bytes(self) -> int:
        return self.total

    def release(self) -> None:
        self.released += 1

    def close(self) -> None:
        self._hook.remove()
