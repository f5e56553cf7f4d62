"""ZeroGPU's refusals and VoxSpace's typed errors, through the real `spaces` client.

The refusals are made by the real spaces 0.51.3 client (spaces.zero.client.schedule, which every
`@spaces.GPU` call runs first) talking HTTP to the local device API of tests/support/zerogpu_api.py,
which answers as ZeroGPU's scheduler does. Only the scheduler is fake; nothing of `spaces` is.
"""

from __future__ import annotations

import pickle
from datetime import timedelta

import gradio as gr
import pytest

from tests.support.zerogpu_api import DeviceAPI, visitor_token
from voxspace import gpu
from voxspace.errors import (
    BadHyperparameter,
    GpuUnavailable,
    NaNLoss,
    QuotaExceeded,
    RateLimited,
    SliceTimeout,
    SpaceGpuLimit,
    VoxSpaceError,
)


@pytest.fixture
def device_api(monkeypatch):
    from spaces.config import Config

    api = DeviceAPI(quota_s={"alice": 30}, max_duration_s=300).start()
    monkeypatch.setattr(Config, "zero_device_api_url", api.url)
    yield api
    api.stop()


def _schedule(visitor: str | None, duration_s: int = 60) -> BaseException:
    """What a @spaces.GPU call does first, as a visitor's Gradio request; returns what it raised."""
    from spaces.zero import client

    headers = {"x-ip-token": visitor_token(visitor)} if visitor else {}
    try:
        client.schedule(
            task_id=1, request=gr.Request(headers=headers), duration=timedelta(seconds=duration_s)
        )
    except Exception as e:
        return e
    raise AssertionError("the device API approved a call it should have refused")


@pytest.mark.parametrize(
    ("visitor", "duration_s", "forced", "error", "phrases"),
    [
        (
            "alice",
            60,
            None,
            QuotaExceeded,
            [
                "quota for today is used up",
                "60s requested vs. 30s left",
                "5:32:10",
                "press Resume",
                "PRO account gets 40",
            ],
        ),
        (None, 60, None, SpaceGpuLimit, ["Space's own GPU allowance", "logged in to Hugging Face"]),
        ("bob", 600, None, SliceTimeout, ["600s", "VOXSPACE_SLICE_CAP_S", "press Resume"]),
        ("bob", 60, "no-gpu", GpuUnavailable, ["No GPU is free", "press Resume"]),
        ("bob", 60, "queue-timeout", GpuUnavailable, ["within a minute", "press Resume"]),
        ("bob", 60, "runs-limit", QuotaExceeded, ["too many ZeroGPU tasks"]),
    ],
    ids=["visitor-quota", "space-limit", "illegal-duration", "no-gpu", "queue-timeout", "runs-limit"],
)
def test_each_zerogpu_refusal_becomes_its_own_sentence(
    device_api, visitor, duration_s, forced, error, phrases
):
    if forced:
        device_api.refuse_next(forced)
    raised = _schedule(visitor, duration_s)
    assert isinstance(raised, gr.Error)  # what spaces itself raises: a title and a text
    typed = gpu.zerogpu_error(raised)
    assert type(typed) is error
    for phrase in phrases:
        assert phrase in typed.user_message
    call = device_api.calls[-1]
    assert call.visitor == visitor and call.duration_s == duration_s and call.allow_token is None


def test_a_visitor_quota_and_the_space_limit_are_told_apart(device_api):
    mine = gpu.zerogpu_error(_schedule("alice"))
    anonymous = gpu.zerogpu_error(_schedule(None))
    assert not isinstance(mine, SpaceGpuLimit) and isinstance(anonymous, SpaceGpuLimit)
    assert "Your ZeroGPU quota" in mine.user_message and "Your ZeroGPU quota" not in anonymous.user_message


def test_the_worker_s_own_errors_have_sentences_and_the_rest_stay_unexpected():
    from spaces.zero.gradio import error  # the helper spaces' worker wrapper raises with

    aborted = gpu.zerogpu_error(error("ZeroGPU worker error", "GPU task aborted"))
    assert isinstance(aborted, SliceTimeout) and "ran past the time reserved" in aborted.user_message
    oom = gpu.zerogpu_error(error("ZeroGPU worker error", "OutOfMemoryError"))
    assert "ran out of memory" in oom.user_message
    assert gpu.zerogpu_error(error("ZeroGPU worker error", "KeyError")) is None
    assert gpu.zerogpu_error(RuntimeError("boom")) is None


def test_a_typed_error_raised_inside_a_gpu_task_reaches_the_caller_whole():
    @gpu.gpu_task(duration=lambda lr: 30)
    def diverge(lr: float) -> float:
        raise NaNLoss("Training diverged at step 3.", detail=f"lr={lr}")

    with pytest.raises(NaNLoss) as e:
        diverge(0.1)
    assert e.value.user_message == "Training diverged at step 3." and e.value.detail == "lr=0.1"
    # what crosses ZeroGPU's process boundary: the carried error, pickled with all its attributes
    carried = pickle.loads(pickle.dumps(gpu.Raised(RateLimited("Slow down.", retry_after_s=12.5))))
    assert type(carried.error) is RateLimited and carried.error.retry_after_s == 12.5
    assert carried.error.user_message == "Slow down." and isinstance(carried.error, VoxSpaceError)


def test_8bit_is_refused_on_zerogpu_before_anything_is_spent():
    zero = gpu.Hardware("zerogpu", "ZeroGPU")
    with pytest.raises(BadHyperparameter, match="bf16") as e:
        gpu.check_precision("8bit", zero)
    assert "not yet verified" in e.value.user_message
    gpu.check_precision("bf16", zero)
    gpu.check_precision("8bit", gpu.Hardware("cuda", "H100"))  # dedicated GPUs keep 8-bit
    assert gpu.default_precision(zero) == "bf16" and gpu.default_precision(gpu.Hardware("cpu", "CPU")) is None
