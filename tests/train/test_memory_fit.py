"""Gradient checkpointing switches itself on for a small GPU, and only there; the memory meter that
fits takes per pass reads CUDA's counters as documented.

No GPU exists here, so the device's memory counters are faked (torch.cuda's functions are the one
thing mocked); the decision logic is the real one.
"""

from types import SimpleNamespace

import torch

from voxspace import train


def _fake_gpu(monkeypatch, gb: float) -> None:
    props = SimpleNamespace(total_memory=int(gb * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: props)


def test_small_gpu_gets_checkpointing(monkeypatch):
    _fake_gpu(monkeypatch, 15.0)  # a T4
    assert train.needs_checkpointing(torch.device("cuda", 0))


def test_large_gpu_and_cpu_do_not(monkeypatch):
    _fake_gpu(monkeypatch, 48.0)  # a ZeroGPU slice
    assert not train.needs_checkpointing(torch.device("cuda", 0))
    assert not train.needs_checkpointing(torch.device("cpu"))


def test_cuda_counters_give_free_memory_and_the_peak_of_one_pass(monkeypatch):
    """CudaMemory reads torch.cuda's real function names (monkeypatch refuses a name torch lacks)."""
    from voxspace.batching import CudaMemory

    state = {"allocated": 5 * 2**30, "peak": 0}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (3 * 2**30, 16 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 7 * 2**30)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: state["allocated"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: state["peak"])
    monkeypatch.setattr(
        torch.cuda, "reset_peak_memory_stats", lambda device: state.update(peak=state["allocated"])
    )
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: state.update(emptied=True))
    _fake_gpu(monkeypatch, 16.0)

    meter = CudaMemory(torch.device("cuda", 0))
    assert meter.free_bytes() == 5 * 2**30  # 3 free in the driver + 2 held by torch's cache, unused
    assert meter.total_bytes() == 16 * 2**30
    meter.start_pass()
    state["peak"] = 6 * 2**30  # the pass's activations peaked 1 GiB above what it started with
    assert meter.pass_peak() == 2**30
    meter.release()
    assert state["emptied"]
