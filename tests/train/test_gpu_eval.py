"""Evaluation across several GPU calls gives exactly the one-call result, and keeps what it has.

Outside a Space spaces.GPU returns the function unchanged (FACTS), so each "call" runs here with the
real decorator; the same code runs under the real ZeroGPU machinery in test_zerogpu_world.py.
"""

from __future__ import annotations

import pytest

from voxspace import gpu, gpu_eval
from voxspace.errors import QuotaExceeded
from voxspace.evaluate import evaluate_adapter
from voxspace.model import ModelConfig, served_config
from voxspace.run_record import ADAPTER_DIR
from voxspace.train import TrainConfig, Trainer

TOKENS = 6  # a random model's babble, kept short


@pytest.fixture
def trained_run(tmp_path, takes_dir, tiny_voxtral_dir):
    cfg = ModelConfig(str(tiny_voxtral_dir), precision="fp32")
    run_dir = tmp_path / "run"
    Trainer(run_dir, TrainConfig(precision="fp32", batch_size=2, epochs=1), takes_dir, cfg).prepare()
    assert gpu.run_in_slices(run_dir, cap_s=120).done
    return run_dir, cfg


def test_a_tight_call_budget_splits_evaluation_and_the_result_is_the_one_call_result(
    trained_run, monkeypatch
):
    run_dir, cfg = trained_run
    calls = []
    real = gpu_eval.transcribe_on_gpu

    def counted(run_dir, take_ids, base_texts, max_new_tokens, duration_s):
        calls.append((list(take_ids), duration_s))
        return real(run_dir, take_ids, base_texts, max_new_tokens, duration_s)

    monkeypatch.setattr(gpu_eval, "transcribe_on_gpu", counted)
    cap = gpu_eval.CALL_OVERHEAD_S + 1  # room for one take per call
    before = gpu_eval.evaluate_in_slices(run_dir, None, cap_s=cap, max_new_tokens=TOKENS)
    after = gpu_eval.evaluate_in_slices(run_dir, before, cap_s=cap, max_new_tokens=TOKENS)

    takes = Trainer(run_dir).prepare().test_takes
    assert len(takes) == 2 and [len(ids) for ids, _ in calls] == [1, 1, 1, 1]  # 2 takes, 2 passes
    assert all(duration <= cap for _, duration in calls)
    served = gpu.preload_base(served_config(cfg))  # evaluation runs on the base as the demo serves it
    one_call = evaluate_adapter(served, takes, run_dir / ADAPTER_DIR, max_new_tokens=TOKENS)
    assert after == one_call  # every transcript, WER and CER exactly as one call makes them
    assert before.per_take == [type(r)(r.take_id, r.reference, r.base) for r in one_call.per_take]


def test_a_refusal_halfway_keeps_the_transcripts_made_so_far(trained_run, monkeypatch):
    run_dir, _ = trained_run
    calls = []
    real = gpu_eval.transcribe_on_gpu

    def second_refused(run_dir, take_ids, *args):
        calls.append(list(take_ids))
        if len(calls) == 2:  # stands in for ZeroGPU's scheduler, which does not exist off a Space
            raise QuotaExceeded("quota used up")
        return real(run_dir, take_ids, *args)

    monkeypatch.setattr(gpu_eval, "transcribe_on_gpu", second_refused)
    cap = gpu_eval.CALL_OVERHEAD_S + 1
    with pytest.raises(QuotaExceeded):
        gpu_eval.evaluate_in_slices(run_dir, None, cap_s=cap, max_new_tokens=TOKENS)
    report = gpu_eval.evaluate_in_slices(run_dir, None, cap_s=cap, max_new_tokens=TOKENS)
    assert calls[2] == calls[1] and len(calls) == 3  # only the take still missing was transcribed again
    assert report.n_takes == 2 and all(r.base is not None for r in report.per_take)


def test_calls_are_planned_from_the_measured_time_per_take():
    assert gpu_eval.plan_call(120, 65, None) == (33, 119)  # 2 s per take x 1.5 before any measurement
    n, duration = gpu_eval.plan_call(120, 65, 0.5)
    assert n == 65 and duration <= 120  # measured faster: every take in one call
    assert gpu_eval.plan_call(120, 65, 20.0) == (3, 110)
    assert gpu_eval.plan_call(10, 5, 2.0) == (1, 10)  # a cap under the overhead still plans one take
