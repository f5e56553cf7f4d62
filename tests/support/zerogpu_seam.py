"""The one step of ZeroGPU that cannot run without a GPU: the forked worker's move to real CUDA.

    import spaces                      # first, as app.py does, with SPACES_ZERO_GPU=true
    from tests.support.zerogpu_seam import install_cpu_worker_seam
    install_cpu_worker_seam()          # no-op where torch sees a real GPU

In ZeroGPU mode every `@spaces.GPU` call runs in a forked worker whose start (spaces/zero/
wrappers.py worker_init) calls `spaces.zero.torch.init(uuid)` (touches CUDA) and
`spaces.zero.torch.move()` (copies every tensor registered at start-up, in memory or packed to disk
at launch, to CUDA and points the fake CUDA tensors at the copies). On a machine without CUDA this
seam replaces exactly those two functions: `init` sets one CPU thread (see _init_cpu), `move`
points each fake tensor at its CPU original (read back from the pack file for packed ones).
Everything else of `spaces` (the patching, the pack, the fork, the pickling, the scheduler client)
runs unchanged, and on a machine with a GPU the seam installs nothing, so the same tests run the
real move.
"""

from __future__ import annotations

import os
from typing import Any


def real_cuda_available() -> bool:
    """torch.cuda.is_available() as it was before spaces patched it to say True."""
    from spaces.zero.torch import patching

    return bool(patching._cuda_available())


def install_cpu_worker_seam() -> bool:
    """Replace the worker's CUDA init and move by CPU ones; False (nothing done) on a GPU machine."""
    import spaces.zero.torch as zero_torch

    if real_cuda_available():
        return False
    zero_torch.init = _init_cpu
    zero_torch.move = _move_to_cpu
    return True


def _init_cpu(nvidia_uuid: str) -> None:
    """Instead of touching the GPU: one CPU thread. The parent used OpenMP's thread pool before the
    fork, and GNU OpenMP is not fork-safe (the child's first parallel region waits for threads that
    were not copied), which is why PyTorch's own DataLoader workers also run on one thread. On a GPU
    the worker computes on CUDA and never meets this."""
    import torch

    torch.set_num_threads(1)


def _move_to_cpu(callback: Any = None) -> None:
    import torch
    from spaces.zero.torch import patching

    for fake, original in patching.cuda_aliases.items():
        if original is not None:
            fake.data = torch.Tensor(original)  # unwrap a subclass, as spaces' own move does
    for pack in patching.tensor_packs:
        _unpack_to_cpu(pack)


def _unpack_to_cpu(pack: Any) -> None:
    """The pack file's layout (spaces/zero/torch/packing.py): batches then big tensors, each tensor
    padded to a page; read it back into CPU tensors instead of CUDA ones."""
    import torch

    entries = [e for batch in pack.batches for e in batch] + list(pack.big_tensors)
    with open(pack.path(), "rb") as f:
        data = bytearray(f.read())
    storage = torch.frombuffer(data, dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
    offset = 0
    for tensor, size, aligned_size in entries:
        raw = storage[offset : offset + size].clone().untyped_storage()
        cpu = torch.tensor([], dtype=tensor.dtype).set_(raw, 0, tensor.shape, tensor.stride())
        for fake in pack.fakes[tensor]:
            fake.data = cpu
        offset += aligned_size
    assert offset == os.path.getsize(pack.path()) or not entries
