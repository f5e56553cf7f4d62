"""run_service: a person's run from the queue to WER before/after, its refusals, cancel and resume.

Everything runs for real on the tiny Voxtral and espeak-ng takes, with checkpoints mirrored to the
local Hub; ZeroGPU's scheduler is the only thing absent (outside a Space spaces.GPU is a no-op).
"""

from __future__ import annotations

import dataclasses
import shutil
import time

import pytest

from voxspace import checkpoint, gpu, page_watch, run_service
from voxspace.auth import Identity
from voxspace.errors import BadHyperparameter, BadInput, HubError, NotEnoughTakes
from voxspace.run_record import RunRecord
from voxspace.train import TrainConfig

from .conftest import make_take

SMALL = dict(precision="fp32", batch_size=2, epochs=1)  # 4 training takes: 2 steps


@pytest.fixture
def settings(hub_settings, tiny_voxtral_dir):
    return dataclasses.replace(hub_settings, base_model=str(tiny_voxtral_dir))


@pytest.fixture
def alice(hub_tokens) -> Identity:
    return Identity("alice", token=hub_tokens["alice"], source="local")


def _until(check, what: str):
    """Poll a condition the run reaches by itself (pytest-timeout bounds it, not a clock here)."""
    while not (value := check()):
        time.sleep(0.05)
    return value


def test_a_queued_run_trains_in_slices_and_reports_wer_before_and_after(settings, alice, takes_dir, hub):
    gpu.QUEUE.join("someone-else")  # another person's run holds the GPU
    try:
        handle = run_service.start_run(
            settings,
            alice,
            data=str(takes_dir),
            run_dir=run_service.runs_root(settings, alice) / "first",
            config=TrainConfig(**SMALL),
            sliced=True,
            max_steps_per_slice=1,
            max_new_tokens=6,
        )
        queued = _until(lambda: (p := run_service.progress(handle)).runs_ahead == 1 and p, "queued")
        assert queued.phase == "queued" and "number 2 in the queue" in run_service.describe_phase(queued)
        with pytest.raises(BadInput, match="already have a training run going"):  # one run per person
            run_service.start_run(
                settings,
                alice,
                data=str(takes_dir),
                run_dir=handle.run_dir.parent / "second",
                config=TrainConfig(),
            )
    finally:
        gpu.QUEUE.leave("someone-else")
    final = run_service.wait(handle)

    assert final.phase == "done" and final.step == final.total == 2
    assert sum(line.startswith("slice:") for line in handle.lines()) == 2  # one step each
    record = RunRecord.load(handle.run_dir)
    assert record.finished and record.eval is not None and record.eval.n_takes == 2
    assert record.eval.wer_after is not None and all(r.finetuned is not None for r in record.eval.per_take)
    assert final.eval == record.eval and len(final.losses) == 2
    # one epoch: its held-out loss reaches the page (curve and log) and its adapter is the one kept
    assert [s for s, _ in final.heldout] == [2] and final.best_step == 2 == record.best_step
    assert any(line.startswith("held-out loss after step 2") for line in handle.lines())
    from voxspace.loss_curve import loss_svg

    assert "held-out (each epoch)" in loss_svg(final.losses, heldout=final.heldout, best_step=final.best_step)
    remote = checkpoint.find_remote_checkpoint("alice/voxspace-checkpoints", alice.token, hub.url)
    assert remote["step"] == 2 and hub.is_private("alice/voxspace-checkpoints")
    assert gpu.QUEUE.position("alice") is None  # the GPU is free again
    assert run_service.find_resumable(settings, alice) is None  # finished and evaluated


def test_a_bad_hyperparameter_is_refused_before_takes_or_model_are_touched(settings, alice, tmp_path):
    with pytest.raises(BadHyperparameter, match="Learning rate"):
        run_service.start_run(
            settings,
            alice,
            data="alice/no-such-dataset",  # fetching it would fail differently
            run_dir=tmp_path / "run",
            config=TrainConfig(lr=-1.0),
        )
    assert not (tmp_path / "run").exists()


def test_too_few_takes_says_how_many_more_to_record(settings, alice, tmp_path):
    for seq in range(2):  # one to train on, one held out: too few of both
        make_take(tmp_path / "takes", seq, "hello world")
    with pytest.raises(NotEnoughTakes, match=r"Record \d+ more take"):
        run_service.start_run(
            settings,
            alice,
            data=str(tmp_path / "takes"),
            run_dir=tmp_path / "run",
            config=TrainConfig(**SMALL),
        )


def test_takes_that_cannot_be_fetched_are_a_sentence_not_a_trace(settings, alice, tmp_path, fresh_repo_id):
    with pytest.raises(HubError, match="the repository was not found"):
        run_service.start_run(
            settings,
            alice,
            data=fresh_repo_id("alice", "never-recorded"),
            run_dir=tmp_path / "run",
            config=TrainConfig(**SMALL),
        )


def test_cancel_keeps_a_checkpoint_that_resumes_from_the_hub_after_a_restart(settings, alice, takes_dir):
    run_dir = run_service.runs_root(settings, alice) / "cancelled"
    config = TrainConfig(**{**SMALL, "epochs": 2})
    handle = run_service.start_run(
        settings, alice, data=str(takes_dir), run_dir=run_dir, config=config, sliced=False, evaluate=False
    )
    run_service.cancel(handle)
    stopped = run_service.wait(handle)
    assert stopped.phase == "cancelled" and stopped.step < 4 and checkpoint.has_checkpoint(run_dir)
    found = run_service.find_resumable(settings, alice)
    assert found == run_service.Resumable(run_dir, stopped.step, 4, on_hub_only=False)
    with pytest.raises(BadInput, match="resume it"):  # a new run must not overwrite it
        run_service.start_run(settings, alice, data=str(takes_dir), run_dir=run_dir, config=config)

    shutil.rmtree(run_service.runs_root(settings, alice))  # a Space restart: local disk gone
    found = run_service.find_resumable(settings, alice)
    assert found is not None and found.on_hub_only and (found.step, found.total) == (stopped.step, 4)
    resumed = run_service.wait(
        run_service.start_run(settings, alice, run_dir=found.run_dir, resume=True, max_new_tokens=6)
    )
    assert resumed.phase == "done" and resumed.step == 4
    record = RunRecord.load(found.run_dir)
    assert record.finished and record.eval.wer_after is not None
    assert TrainConfig.from_dict(record.config) == config


def test_a_run_paid_from_the_visitors_quota_pauses_when_their_last_page_closes(settings, alice, takes_dir):
    # As on ZeroGPU (pause_when_page_closed=True; the Train tab passes None, ZeroGPU only), where
    # Gradio's unload of the visitor's last page calls page_watch.closed.
    page_watch.opened(alice, "tab-1")
    page_watch.opened(alice, "tab-2")
    page_watch.closed("tab-2")
    assert page_watch.is_open("alice")  # another tab of alice's still follows the run
    handle = run_service.start_run(
        settings,
        alice,
        data=str(takes_dir),
        run_dir=run_service.runs_root(settings, alice) / "paused",
        config=TrainConfig(**{**SMALL, "epochs": 2}),  # 4 steps, one per slice
        sliced=True,
        max_steps_per_slice=1,
        evaluate=False,
        pause_when_page_closed=True,
    )
    _until(lambda: handle.step >= 1, "a first slice")
    page_watch.closed("tab-1")  # the last page: no GPU call after the slice going now
    paused = run_service.wait(handle)
    assert paused.phase == "paused" and 1 <= paused.step < 4
    assert sum(line.startswith("slice:") for line in handle.lines()) == paused.step  # no slice after
    assert run_service.describe_phase(paused).startswith("Paused: the page was closed")
    assert checkpoint.read_state(handle.run_dir)["step"] == paused.step
    assert run_service.find_resumable(settings, alice) == run_service.Resumable(
        handle.run_dir, paused.step, 4, on_hub_only=False
    )
    # Resume, as the Train tab does (None: pauses on ZeroGPU only): on this CPU, as on a dedicated
    # GPU, the run goes on with no page open at all
    resumed = run_service.wait(
        run_service.start_run(
            settings, alice, run_dir=handle.run_dir, resume=True, evaluate=False, pause_when_page_closed=None
        )
    )
    assert resumed.phase == "done" and resumed.step == 4 and not page_watch.is_open("alice")


def test_a_run_in_one_go_mirrors_its_checkpoint_on_the_hub_on_the_way(settings, alice, takes_dir, hub):
    # a dedicated GPU: no slices, yet a Space restart must not lose more than checkpoint_every_s
    repo = "alice/voxspace-checkpoints"
    before = len(hub.commits(repo)) if hub.repo_exists(repo, "model") else 0
    handle = run_service.start_run(
        dataclasses.replace(settings, checkpoint_every_s=0.0),  # a checkpoint after (about) every step
        alice,
        data=str(takes_dir),
        run_dir=run_service.runs_root(settings, alice) / "one-go",
        config=TrainConfig(**{**SMALL, "epochs": 3}),  # 6 steps
        sliced=False,
        evaluate=False,
    )
    final = run_service.wait(handle)
    assert final.phase == "done" and final.step == 6
    assert not any(line.startswith("slice:") for line in handle.lines())  # one run, not GPU slices
    said = [line for line in handle.lines() if line.startswith("checkpoint saved at step")]  # on the page
    assert said and "step 1/6" in said[0]  # the first stretch is one step: nothing measured before it
    assert len(hub.commits(repo)) - before >= 1 + len(said)  # a copy at each of them, then the final one
    assert checkpoint.find_remote_checkpoint(repo, alice.token, hub.url)["step"] == 6


def test_nothing_to_resume_is_a_plain_message(settings, tmp_path):
    nobody = Identity(None)
    with pytest.raises(BadInput, match="Nothing to resume"):
        run_service.start_run(settings, nobody, run_dir=tmp_path / "empty", resume=True)
    assert run_service.find_resumable(settings, nobody) is None


def test_the_estimate_grows_with_the_work_and_is_smaller_on_a_gpu():
    quick, thorough = TrainConfig.quick(), TrainConfig.thorough()
    gpu_min = run_service.estimate(quick, 50, 5.0, "zerogpu")
    assert 0 < gpu_min < run_service.estimate(thorough, 50, 5.0, "zerogpu")
    assert gpu_min < run_service.estimate(quick, 200, 20.0, "zerogpu")
    assert run_service.estimate(quick, 50, 5.0, "cuda") < run_service.estimate(quick, 50, 5.0, "cpu")
    assert run_service.estimate(quick, 0, 0.0, "cpu") == 0.0


def test_the_estimate_uses_what_this_machine_measured(tmp_path):
    from voxspace import timings
    from voxspace.layout import split_for

    assert timings.load(tmp_path, "cpu", "fp32", "m") is None
    timings.record(tmp_path, "cpu", "fp32", "m", train_s_per_audio_s=0.5, eval_s_per_take=None)
    timings.record(tmp_path, "cpu", "fp32", "m", eval_s_per_take=2.0)  # a later figure keeps the first
    measured = timings.load(tmp_path, "cpu", "fp32", "m")
    assert measured == timings.Measured(train_s_per_audio_s=0.5, eval_s_per_take=2.0)
    assert timings.load(tmp_path, "cpu", "8bit", "m") is None  # another setup is not this one
    quick = TrainConfig.quick(precision="fp32")
    marks = [split_for(i) for i in range(50)]
    train_audio_s = 5.0 * 60 * marks.count("train") / 50
    expected = (train_audio_s * quick.epochs * 0.5 + 2 * marks.count("test") * 2.0) / 60
    assert run_service.estimate(quick, 50, 5.0, "cpu", measured) == pytest.approx(expected)
    assert run_service.estimate(quick, 50, 5.0, "cpu", measured) < run_service.estimate(quick, 50, 5.0, "cpu")
