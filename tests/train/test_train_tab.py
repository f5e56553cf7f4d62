"""The Train tab's handlers, called directly: presets, plan, start, live view, WER tables, cancel."""

from __future__ import annotations

import dataclasses
import shutil
import time

import pytest

from voxspace import run_service, timings
from voxspace.auth import Identity
from voxspace.store import TakeStore, local_folder
from voxspace.train import ACOUSTIC_LAYERS
from voxspace.ui import publish, train
from voxspace.ui.session import Session


@pytest.fixture
def sess(hub_settings, tiny_voxtral_dir, takes_dir) -> Session:
    """A visitor on their own machine, not signed in: takes in the local folder, runs under runs_root."""
    settings = dataclasses.replace(hub_settings, base_model=str(tiny_voxtral_dir))
    shutil.copytree(takes_dir, local_folder(settings))
    nobody = Identity(None)
    return Session(settings=settings, identity=nobody, store=TakeStore.for_identity(settings, nobody))


def test_presets_fill_the_advanced_fields_and_the_plan_names_the_hardware(sess):
    assert train.preset_values("thorough") == [32, 64, 2e-4, 10, 4, 2, "8bit", 110, True]
    values = train.preset_values("quick")
    assert "CPU only" in train.plan(sess, "quick", *values) and "CPU minutes" in train.plan(
        sess, "quick", *values
    )
    values[2] = 5.0  # a learning rate of 5: said before anything starts
    assert "Learning rate must be" in train.plan(sess, "quick", *values)
    assert train.plan(None, "quick", *values).startswith("Hardware:")
    values[8] = False  # the "fit takes per pass to the GPU" box unticked
    assert train.config_from("quick", *values).auto_batch is False
    assert train.config_from("quick", *train.preset_values("quick")).auto_batch is True


def test_bad_settings_are_refused_with_a_sentence_and_nothing_starts(sess):
    values = train.preset_values("quick")
    values[3] = 0  # epochs
    before = run_service.active_run(sess.identity)  # an earlier test's finished run, or None
    status, start_btn, *_ = train.start(sess, "quick", *values, False)
    assert "Epochs must be a whole number" in status and "Error" in status
    assert start_btn["interactive"] is True and run_service.active_run(sess.identity) is before
    assert "No training run is going" in train.cancel(sess)


def test_start_follows_the_run_live_and_ends_with_the_wer_tables(sess):
    values = [8, 16, 5e-4, 1, 2, 1, "fp32", 60, True]
    assert "a first guess" in train.plan(sess, "quick", *values)  # nothing measured on this machine yet
    t0 = time.monotonic()
    status, start_btn, cancel_btn, _ = train.start(sess, "quick", *values, True)
    assert "Starting" in status and cancel_btn["interactive"] is True
    assert start_btn["interactive"] is False  # one run at a time per person
    final = run_service.wait(run_service.active_run(sess.identity))
    elapsed = time.monotonic() - t0
    assert final.phase == "done"
    # The next estimate comes from what this run measured (issue 16: "about 15 CPU minutes" for 20 s).
    assert "from the speed your last run here measured" in train.plan(sess, "quick", *values)
    measured = timings.load(sess.settings.data_dir, "cpu", "fp32", sess.settings.base_model)
    st = sess.store.stats()
    estimate_s = 60 * run_service.estimate(train.config_from("quick", *values), st.takes, st.minutes, "cpu",
                                           measured)
    assert elapsed / 5 < estimate_s < elapsed * 5, (estimate_s, elapsed)

    status, bar, curve, log, scores, per_take, estimate, start_btn, *_ = train.poll(sess, "quick", *values)
    assert "Done" in status and "step 2 of 2" in bar and start_btn["interactive"] is True
    # the page's estimate is redrawn once the run has ended: no stale first guess beside "Done"
    assert "from the speed your last run here measured" in estimate
    assert curve.startswith("<svg") and 'role="img"' in curve and len(final.losses) == 2
    assert "slice:" in log  # the box on the page asked for slices
    assert [row[0] for row in scores] == ["Word error rate (WER)", "Character error rate (CER)"]
    assert all(cell.endswith("%") for cell in scores[0][1:3])
    assert len(per_take) == 2 and all(row[3] != "-" for row in per_take)
    # the run is where the Publish tab looks, by the same rule as run_service
    assert run_service.runs_root(sess.settings, sess.identity) == publish.runs_root(sess)
    assert publish.list_runs(sess) == [final.run_dir.rsplit("/", 1)[1]]
    assert train.poll(sess) == train.NO_CHANGE  # nothing new: the tick sends nothing
    text, estimate, cmd, *_ = train.on_open(sess, "quick", *values)
    assert "**6** takes" in text and "Hardware" in estimate and "--data" in cmd
    assert "Done" in train.poll(sess)[0]  # after the tab opened, the next tick shows the run again


def test_cancel_then_resume_from_the_page(sess):
    status, *_, resume_btn = train.resume(sess)
    assert "no stopped run" in status and resume_btn["visible"] is False

    values = [8, 16, 5e-4, 2, 2, 1, "fp32", 60, True]
    train.start(sess, "quick", *values, False)
    assert "Stopping at the end of this step" in train.cancel(sess)
    stopped = run_service.wait(run_service.active_run(sess.identity))
    status, *_, start_btn, cancel_btn, resume_btn = train.poll(sess)
    assert start_btn["interactive"] is True
    assert "Cancelled" in status and cancel_btn["interactive"] is False
    assert resume_btn["visible"] is True and f"step {stopped.step} of 4" in resume_btn["value"]

    status, start_btn, *_ = train.resume(sess)
    assert "Resuming" in status and start_btn["interactive"] is False
    final = run_service.wait(run_service.active_run(sess.identity))
    assert final.phase == "done" and final.run_dir == stopped.run_dir and final.step == 4
    assert train.poll(sess)[-1]["visible"] is False  # nothing left to resume


def test_a_page_that_missed_every_event_still_shows_the_run(sess):
    """A second tab, a reload, or a Start whose answer was overwritten by the tab's opening: a new
    Session for the same person sees the run from its first tick, and keeps following it."""
    values = [8, 16, 5e-4, 1, 2, 1, "fp32", 60, True]
    train.start(sess, "quick", *values, False)
    other = Session(settings=sess.settings, identity=sess.identity, store=sess.store)  # never clicked
    first = train.poll(other)
    assert first[0] != train.NO_CHANGE[0] and first[-3]["interactive"] is False  # Start greyed
    final = run_service.wait(run_service.active_run(sess.identity))
    status, bar, *_, start_btn, cancel_btn, _ = train.poll(other)
    assert final.phase == "done" and "Done" in status and f"step {final.step} of" in bar
    assert start_btn["interactive"] is True and cancel_btn["interactive"] is False


def test_the_acoustic_box_adapts_the_encoder_and_its_cost_is_shown_before_start(sess):
    values = train.preset_values("quick")
    sliced, acoustic = False, True
    config = train.config_from("quick", *values, sliced, acoustic)
    assert config.adapt_encoder == ACOUSTIC_LAYERS > 0
    assert train.config_from("quick", *values, sliced, False).adapt_encoder == 0
    assert train.config_from("quick", *values).adapt_encoder == 0  # missing box: unticked
    assert "Acoustic adaptation is on" not in train.plan(sess, "quick", *values, sliced, False)
    ticked = train.plan(sess, "quick", *values, sliced, acoustic)
    assert f"top {ACOUSTIC_LAYERS} audio-encoder layers" in ticked and "% longer" in ticked
    for hardware in ("zerogpu", "cuda", "cpu"):  # the estimate grows by the option's share
        lm_only = run_service.estimate(train.config_from("quick", *values), 200, 30.0, hardware)
        assert run_service.estimate(config, 200, 30.0, hardware) > lm_only


def test_the_comparison_is_offered_only_with_enough_held_out_takes(sess):
    from voxspace.compare import MIN_HELD_OUT

    held_out = sess.store.stats().test
    assert held_out < MIN_HELD_OUT
    said = list(train.compare(sess, "quick", *train.preset_values("quick")))
    assert len(said) == 1 and f"at least {MIN_HELD_OUT} held-out takes" in said[0]
    assert f"you have {held_out}" in said[0]
    assert run_service.active_run(sess.identity) is None or run_service.progress(
        run_service.active_run(sess.identity)).finished  # nothing was started
    assert "Sign in" in next(train.compare(None, "quick"))
