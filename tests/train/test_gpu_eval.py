"""Evaluation across several GPU calls gives exactly the one-call result, and keeps what it has.

Outside a Space spaces.GPU returns the function unchanged (FACTS), so each "call" runs here with the
real decorator; the same code runs under the real ZeroGPU machinery in test_zerogpu_world.py.
"""

from __future__ import annotations

import pytest

from voxspace import features, gpu, gpu_eval
from voxspace.data import TranscriptionCollator
from voxspace.encoder_cache import run_cache_dir, voxtral_of
from voxspace.errors import QuotaExceeded, TrainError
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
    """Also: no GPU call extracts mel features (seam: TranscriptionCollator.prompt, where the
    processor reads the audio), and the audio encoder runs once per held-out take across both
    evaluations and all four calls (a forward pre-hook on the served base's audio_tower counts the
    30 s chunks it is given), even though the fp32 training run cached those takes in its own
    precision: the bf16 evaluation never reads another precision's outputs."""
    run_dir, cfg = trained_run
    calls, in_call, extracted, encoded = [], [False], [], []
    real, prompt = gpu_eval.transcribe_on_gpu, TranscriptionCollator.prompt

    def counted(run_dir, take_ids, base_texts, max_new_tokens, duration_s):
        calls.append((list(take_ids), duration_s))
        in_call[0] = True
        try:
            return real(run_dir, take_ids, base_texts, max_new_tokens, duration_s)
        finally:
            in_call[0] = False

    def extracting(self, take):
        extracted.append((take.take.take_id, in_call[0]))
        return prompt(self, take)

    monkeypatch.setattr(gpu_eval, "transcribe_on_gpu", counted)
    monkeypatch.setattr(TranscriptionCollator, "prompt", extracting)
    takes = Trainer(run_dir).prepare().test_takes
    assert features.is_current(run_dir, "test", [t.take.take_id for t in takes])
    (run_dir / "heldout_examples.json").unlink()  # store gone: the CPU makes it again, before any call
    served = gpu.preload_base(served_config(cfg))  # evaluation runs on the base as the demo serves it
    tower = voxtral_of(served[0]).model.audio_tower
    hook = tower.register_forward_pre_hook(lambda m, args: encoded.append(args[0].shape[0]))
    cap = gpu_eval.CALL_OVERHEAD_S + 1  # room for one take per call
    try:
        before = gpu_eval.evaluate_in_slices(run_dir, None, cap_s=cap, max_new_tokens=TOKENS)
        after = gpu_eval.evaluate_in_slices(run_dir, before, cap_s=cap, max_new_tokens=TOKENS)
    finally:
        hook.remove()

    assert len(takes) == 2 and [len(ids) for ids, _ in calls] == [1, 1, 1, 1]  # 2 takes, 2 passes
    assert all(duration <= cap for _, duration in calls)
    assert sorted(extracted) == sorted((t.take.take_id, False) for t in takes)  # once each, off the GPU
    assert sum(encoded) == 2  # one chunk per take, encoded once for before and after together
    assert sorted(p.stem for p in run_cache_dir(run_dir, "bf16").glob("*.pt")) == sorted(
        t.take.take_id for t in takes
    )
    trained_in = {p.stem for p in run_cache_dir(run_dir, "fp32").glob("*.pt")}  # training's held-out loss
    assert trained_in >= {t.take.take_id for t in takes}
    monkeypatch.setattr(TranscriptionCollator, "prompt", prompt)
    uncached = evaluate_adapter(
        served, takes, run_dir / ADAPTER_DIR, max_new_tokens=TOKENS, encoder_cache=False
    )
    assert after == uncached  # every transcript, WER and CER exactly as one uncached call makes them
    assert before.per_take == [type(r)(r.take_id, r.reference, r.base) for r in uncached.per_take]


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


def test_a_gpu_call_never_extracts_features_itself(tmp_path, takes_dir, tiny_voxtral_dir):
    """evaluate_in_slices stores the held-out features before its first call; a call that finds none
    (the store deleted in between) says so in a sentence instead of extracting them on the GPU clock."""
    cfg = ModelConfig(str(tiny_voxtral_dir), precision="fp32")
    run_dir = tmp_path / "run"
    trainer = Trainer(run_dir, TrainConfig(precision="fp32"), takes_dir, cfg).prepare()
    ids = [t.take.take_id for t in trainer.test_takes]
    with pytest.raises(TrainError) as e:
        gpu_eval.transcribe_on_gpu(str(run_dir), ids, None, TOKENS, 10)
    assert "start the evaluation again" in e.value.user_message
