"""The Train tab's "Train on Hugging Face Jobs" handlers, called directly: estimate, launch, follow
through the tab's own poll, Cancel, resume as a new Job, and following again after a restart."""

from __future__ import annotations

import dataclasses
import time

import pytest

from voxspace import jobs, run_service
from voxspace.auth import Identity
from voxspace.store import TakeStore
from voxspace.ui import jobs_panel, train
from voxspace.ui.session import Session

SMALL = [8, 16, 5e-4, 1, 2, 1, "fp32", 60, True]  # the ADVANCED fields: 2 steps on the tiny model


@pytest.fixture
def sess(hub_settings, tiny_voxtral_dir, recordings, hub_tokens, close_stores) -> Session:
    """alice signed in, her takes in `recordings` on the local Hub, Jobs run from this checkout."""
    settings = dataclasses.replace(
        hub_settings,
        base_model=str(tiny_voxtral_dir),
        dataset_repo_name=recordings.split("/")[1],
        jobs_image="hf.co/spaces/spaceowner/voxspace",
    )
    alice = Identity("alice", hub_tokens["alice"], "oauth")
    return Session(settings=settings, identity=alice, store=TakeStore.for_identity(settings, alice))


def _until(check):
    while not (value := check()):
        time.sleep(0.1)
    return value


def test_the_estimate_names_the_machine_its_price_and_what_does_not_fit(sess):
    said = jobs_panel.estimate(sess, "l4x1", None, "quick", *SMALL)
    assert "NVIDIA L4, 24 GB, $0.80/h" in said and "stopped after 15 min at most" in said
    assert "after 45 min" in jobs_panel.estimate(sess, "l4x1", 45, "quick", *SMALL)
    big = dataclasses.replace(
        sess, settings=dataclasses.replace(sess.settings, base_model="mistralai/Voxtral-Small-24B-2507")
    )
    assert "needs about 40 GB" in jobs_panel.estimate(
        big, "t4-small", None, "quick", *SMALL[:6], "8bit", *SMALL[7:]
    )
    assert "sign in" in jobs_panel.estimate(None, "l4x1", None, "quick", *SMALL).lower()
    bad = list(SMALL)
    bad[3] = 0
    assert "Epochs must be" in jobs_panel.estimate(sess, "l4x1", None, "quick", *bad)


@pytest.mark.slow
def test_a_job_is_followed_cancelled_resumed_and_found_again_after_a_restart(sess, hub):
    status, start_btn, cancel_btn, _ = jobs_panel.launch(sess, "l4x1", None, "quick", *SMALL)
    assert "Job started on l4x1" in status and cancel_btn["interactive"] and not start_btn["interactive"]
    handle = run_service.active_run(sess.identity)
    assert isinstance(handle, jobs.JobHandle)
    first = handle.job.record.job_id
    assert "already have a training run going" in train.start(sess, "quick", *SMALL)[0]  # one at a time

    assert "Stopping" in train.cancel(sess)
    _until(lambda: handle.phase == "cancelled")
    assert hub.job(first)["status"]["stage"] == "CANCELED"
    shown = train.poll(sess)
    assert "Cancelled" in shown[0] and any(f"Job {first}" in line for line in shown[3].splitlines())

    status, *_ = jobs_panel.resume(sess, "a10g-large", None)
    assert "Resumed as a new Job on a10g-large" in status
    second = run_service.active_run(sess.identity)
    assert second.job.record.resumed_from == first and second.job.run_dir == handle.job.run_dir

    run_service._ACTIVE.pop("alice")  # a Space restart: the process forgot the run, job.json did not
    jobs_panel.reattach(sess)
    again = run_service.active_run(sess.identity)
    assert isinstance(again, jobs.JobHandle) and again.job.record.job_id == second.job.record.job_id
    train.cancel(sess)
    _until(lambda: again.phase == "cancelled")
