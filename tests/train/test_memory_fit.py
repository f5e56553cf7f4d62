"""Gradient checkpointing switches itself on for a small GPU, and only there.

No GPU exists here, so the device's reported memory is faked (torch.cuda.get_device_properties is
the one thing mocked); the decision logic is the real one.
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
