"""The Train tab's "Train on Hugging Face Jobs": machine, timeout, minutes and dollars, launch, resume.

A launched Job becomes the person's active run (run_service.follow_elsewhere with a
jobs.JobHandle), so the tab's own timer, progress bar, loss curve, log, WER tables and Cancel
follow it exactly as a run here. After a Space restart, opening the tab finds the Job again from
job.json in the run folder (`reattach`). All logic is in voxspace.jobs; these are thin handlers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import gradio as gr

from voxspace.auth import sign_in_hint
from voxspace.errors import VoxSpaceError
from voxspace.ui.progress import status_html
from voxspace.ui.publish import runs_root
from voxspace.ui.session import Session

log = logging.getLogger(__name__)

BUSY = "You already have a training run going: wait for it to finish or cancel it."
UNEXPECTED = "The Job could not start (the Hub did not answer as expected). Try again in a minute."


def _timeout(value: Any) -> int | None:
    return int(value) if value not in (None, "", 0) else None


def estimate(sess: Session | None, flavor: str, timeout: Any, preset: str, *values: Any) -> str:
    """Minutes, dollars and the timeout on the chosen machine, before anything is launched."""
    from voxspace import jobs
    from voxspace.ui.train import config_from

    if sess is None or not sess.identity.signed_in or sess.store is None:
        return sign_in_hint(sess.settings if sess else None, "To train on Hugging Face Jobs")
    try:
        cfg = config_from(preset, *values).validate()
        st = sess.store.stats()
        plan = jobs.plan(cfg, st.takes, st.minutes, flavor, _timeout(timeout))
        jobs.check_fits(plan.flavor, sess.settings.base_model, cfg.precision)
    except VoxSpaceError as e:
        return e.user_message
    return (
        f"{plan.describe()} It runs on your Hugging Face account and needs credits there; "
        "you can close this page, and Cancel stops it."
    )


def _busy(sess: Session) -> bool:
    from voxspace import run_service

    run = run_service.active_run(sess.identity)
    return run is not None and not run_service.progress(run).finished


def _follow(sess: Session, job: Any) -> None:
    from voxspace import jobs, run_service

    run_service.follow_elsewhere(sess.identity, jobs.JobHandle(job).start())


def launch(sess: Session | None, flavor: str, timeout: Any, preset: str, *values: Any) -> tuple[Any, ...]:
    """Start the run as a Job; returns (status, start, cancel, resume) like train.start."""
    from voxspace import jobs
    from voxspace.ui.train import _follow_again, _idle_buttons, _running_buttons, config_from

    _follow_again(sess)
    if sess is None or not sess.identity.signed_in or sess.store is None:
        return (
            status_html(
                "info", sign_in_hint(sess.settings if sess else None, "To train on Hugging Face Jobs")
            ),
            *_idle_buttons(sess),
        )
    if _busy(sess):
        return status_html("error", BUSY), *_running_buttons()
    try:
        config = config_from(preset, *values)
        sess.store.flush(timeout=60)  # takes still on their way to the repo are trained on too
        job = jobs.launch(
            sess.settings,
            sess.identity,
            run_dir=runs_root(sess) / time.strftime("job-%Y%m%d-%H%M%S"),
            flavor_name=flavor,
            data=sess.store.stats().location,
            config=config,
            timeout_min=_timeout(timeout),
        )
        _follow(sess, job)
    except VoxSpaceError as e:
        log.info("job refused: %s", e)
        return status_html("error", e.user_message), *_idle_buttons(sess)
    except Exception:
        log.exception("job could not start")
        return status_html("error", UNEXPECTED), *_idle_buttons(sess)
    return status_html("info", f"Job started on {flavor}: {job.url}"), *_running_buttons()


def resume(sess: Session | None, flavor: str, timeout: Any) -> tuple[Any, ...]:
    """The newest Job that stopped before its end (failed, timed out, cancelled), as a new Job."""
    from voxspace import jobs
    from voxspace.ui.train import _follow_again, _idle_buttons, _running_buttons

    _follow_again(sess)
    if sess is None or not sess.identity.signed_in:
        return status_html("info", "There is no stopped Job to resume."), *_idle_buttons(sess)
    if _busy(sess):
        return status_html("error", BUSY), *_running_buttons()
    try:
        job = jobs.unfinished(sess.settings, sess.identity)
        if job is None or jobs.progress(job).phase not in ("failed", "cancelled"):
            return status_html("info", "There is no stopped Job to resume."), *_idle_buttons(sess)
        job = jobs.launch(
            sess.settings,
            sess.identity,
            run_dir=job.run_dir,
            flavor_name=flavor,
            timeout_min=_timeout(timeout),
            resume=True,
        )
        _follow(sess, job)
    except VoxSpaceError as e:
        return status_html("error", e.user_message), *_idle_buttons(sess)
    except Exception:
        log.exception("job could not resume")
        return status_html("error", UNEXPECTED), *_idle_buttons(sess)
    return status_html("info", f"Resumed as a new Job on {flavor}: {job.url}"), *_running_buttons()


def reattach(sess: Session | None) -> None:
    """After a reload in a new process (a Space restart): follow this person's unfinished Job again."""
    from voxspace import jobs, run_service

    if sess is None or not sess.identity.signed_in or run_service.active_run(sess.identity) is not None:
        return
    try:
        job = jobs.unfinished(sess.settings, sess.identity)
        if job is not None:
            _follow(sess, job)
    except Exception:  # the page must open even when the Hub does not answer
        log.warning("could not follow the unfinished Job again", exc_info=True)


@dataclass
class JobsPanel:
    flavor: Any
    timeout: Any
    estimate: Any
    launch: Any
    resume: Any


def build() -> JobsPanel:
    from voxspace.jobs import DEFAULT_FLAVOR, FLAVORS

    with gr.Accordion(
        "Train on Hugging Face Jobs (your account, billed per minute)", open=False, elem_id="train-jobs"
    ):
        gr.Markdown(
            "For runs too large for your daily ZeroGPU minutes: the same training runs on a machine "
            "of your choice on your own Hugging Face account, and the adapter and error rates come "
            "back here."
        )
        with gr.Row():
            flavor = gr.Dropdown(
                [(f.label(), f.name) for f in FLAVORS.values()],
                value=DEFAULT_FLAVOR,
                label="Machine",
                elem_id="train-jobs-flavor",
            )
            timeout = gr.Number(
                None,
                label="Stop after (minutes; empty or 0: twice the estimate)",
                precision=0,
                elem_id="train-jobs-timeout",
            )
        est = gr.Markdown(elem_id="train-jobs-estimate")
        with gr.Row():
            go = gr.Button("Train on Hugging Face Jobs", elem_id="train-jobs-start")
            again = gr.Button("Resume the stopped Job", elem_id="train-jobs-resume")
    return JobsPanel(flavor, timeout, est, go, again)


def wire(
    p: JobsPanel, session: Any, preset: Any, advanced: list[Any], status: Any, buttons: list[Any]
) -> None:
    inputs = [session, p.flavor, p.timeout, preset, *advanced]
    for c in [p.flavor, p.timeout, preset, *advanced]:
        c.change(estimate, inputs, [p.estimate], show_progress="hidden")
    p.launch.click(launch, inputs, [status, *buttons])
    p.resume.click(resume, [session, p.flavor, p.timeout], [status, *buttons])
