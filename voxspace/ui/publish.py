"""The Publish tab: push a finished run's adapter + model card, then create a demo Space.

Calls voxspace.publish / voxspace.card / voxspace.demo, as `python -m voxspace publish|demo` does.
A visitor only ever sees the runs in their own folder (runs_root), never a path they type: in a
Space that is what stops one visitor publishing another's adapter.
"""

from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr

from voxspace import run_record
from voxspace.auth import sign_in_hint
from voxspace.errors import VoxSpaceError
from voxspace.run_record import SUMMARY
from voxspace.ui.progress import status_html
from voxspace.ui.session import Session

log = logging.getLogger(__name__)


def runs_root(sess: Session) -> Path:
    """Where this visitor's training runs live (the Train tab and `train --out` write here)."""
    return run_record.runs_root(sess.settings.data_dir, sess.identity.username)


def list_runs(sess: Session | None) -> list[str]:
    """Names of this visitor's finished runs (folders holding a summary), newest first."""
    if sess is None:
        return []
    return sorted((p.parent.name for p in runs_root(sess).glob(f"*/{SUMMARY}")), reverse=True)


def refresh_runs(sess: Session | None):
    runs = list_runs(sess)
    return gr.update(choices=runs, value=runs[0] if runs else None)


def _run_dir(sess: Session, name: str | None) -> Path:
    if not name or name not in list_runs(sess):
        raise VoxSpaceError("Choose one of your finished training runs first.")
    return runs_root(sess) / name


def _default_repo(sess: Session, name: str) -> str:
    return f"voxtral-{name}"  # a bare name: the signed-in user's namespace (publish.plan)


def _not_better(run: Path) -> str | None:
    from voxspace.run_record import RunRecord

    ev = RunRecord.load(run).eval
    return ev.not_better_sentence() if ev is not None else None


def preview(sess: Session | None, name: str | None, repo_id: str, public: bool, per_take: bool):
    """The card and the files that publishing would push, readable before (and without) signing in."""
    from voxspace.publish import plan

    if sess is None:
        return status_html("info", "The page is still loading; try again in a moment."), ""
    try:
        run = _run_dir(sess, name)
        what = plan(run, (repo_id or "").strip() or _default_repo(sess, name), sess.identity, sess.settings,
                    private=not public, include_per_take=per_take)
    except VoxSpaceError as e:
        return status_html("error", e.user_message), ""
    note = "" if sess.identity.signed_in else " " + sign_in_hint(sess.settings, "To publish it")
    if warning := _not_better(run):  # said before anything is pushed
        return (status_html("info", f"{warning} Publishing asks you to confirm it. {what.summary()}{note}"),
                what.card)
    return status_html("info", f"The model card is below. {what.summary()}{note}"), what.card


def publish(sess: Session | None, name: str | None, repo_id: str, public: bool, per_take: bool,
            anyway: bool = False):
    from voxspace.publish import publish_adapter

    if sess is None or not sess.identity.signed_in:
        return status_html("info", sign_in_hint(sess.settings if sess else None, "To publish")), gr.skip()
    try:
        run = _run_dir(sess, name)
        result = publish_adapter(run, (repo_id or "").strip() or _default_repo(sess, name), sess.identity,
                                 sess.settings, private=not public, include_per_take=per_take,
                                 anyway=bool(anyway))
    except VoxSpaceError as e:
        log.info("publish refused: %s", e)
        return status_html("error", e.user_message), gr.skip()
    who = "only you" if result.private else "everyone"
    return (status_html("done", f"Published to {result.repo_id} ({who} can see it): {result.url}"),
            result.repo_id)


def create_demo(sess: Session | None, adapter_id: str, name: str | None, public: bool, read_token: str):
    """Create the demo Space, then stream its build stages until it runs or fails."""
    from voxspace.demo import create_demo_space, follow_build
    from voxspace.run_record import RunRecord

    if sess is None or not sess.identity.signed_in:
        yield status_html("info", sign_in_hint(sess.settings if sess else None, "To create a demo"))
        return
    try:
        record = RunRecord.load(_run_dir(sess, name))
        result = create_demo_space(sess.identity, sess.settings, (adapter_id or "").strip(),
                                   record.base_model, private=not public,
                                   read_token=(read_token or "").strip() or None,
                                   dataset=sess.store.repo_id if sess.store else None,
                                   languages=record.languages)
        note = f" {result.hardware_note}" if result.hardware_note else ""
        yield status_html("info", f"Demo Space {result.space_id} created; building…{note}")
        for st in follow_build(sess.identity, sess.settings, result.space_id, interval_s=3.0, timeout_s=900):
            kind = "done" if st.ok else ("error" if st.done else "info")
            yield status_html(kind, f"{st.space_id}: {st.stage.lower().replace('_', ' ')}."
                              + (f" {st.message}" if st.message else "") + f" {st.url}")
    except VoxSpaceError as e:
        yield status_html("error", e.user_message)


def build(session: gr.State) -> gr.Dropdown:
    """The tab's controls; returns the run picker, which app.py refreshes when the tab opens."""
    gr.Markdown("## Publish your model\nPush the adapter of a finished training run to a model repo of "
                "your own, with a model card that shows the error rate before and after, then create a "
                "demo Space where anyone you choose can try it. Repos are private unless you tick Public.")
    with gr.Row(equal_height=True):
        run = gr.Dropdown([], label="Training run", elem_id="publish-run", scale=3)
        look = gr.Button("Look for runs again", elem_id="publish-refresh", scale=1)
    repo = gr.Textbox(label="Model repo (owner/name; blank: <you>/voxtral-<run>)", elem_id="publish-repo")
    with gr.Row():
        public = gr.Checkbox(False, label="Public: anyone can see and download it", elem_id="publish-public")
        per_take = gr.Checkbox(False, label="Show held-out transcripts in the card",
                               elem_id="publish-per-take")
        anyway = gr.Checkbox(False, label="Publish even if it is not better than the base model",
                             elem_id="publish-anyway")
    with gr.Row():
        preview_btn = gr.Button("Preview the model card", elem_id="preview-btn")
        publish_btn = gr.Button("Publish the adapter", variant="primary", elem_id="publish-btn")
    status = gr.HTML(elem_id="publish-status")
    card = gr.Markdown(elem_id="publish-card")
    with gr.Accordion("Demo Space", open=False, elem_id="demo-section"):
        adapter = gr.Textbox(label="Adapter repo (filled in after publishing)", elem_id="demo-adapter")
        demo_public = gr.Checkbox(False, label="Public demo Space", elem_id="demo-public")
        read_token = gr.Textbox(type="password", elem_id="demo-read-token",
                                label="Read-only token (only for a private adapter; the Space's secret)")
        demo_btn = gr.Button("Create the demo Space", elem_id="demo-btn")
        demo_status = gr.HTML(elem_id="demo-status")

    look.click(refresh_runs, [session], [run])
    preview_btn.click(preview, [session, run, repo, public, per_take], [status, card])
    publish_btn.click(publish, [session, run, repo, public, per_take, anyway], [status, adapter])
    demo_btn.click(create_demo, [session, adapter, run, demo_public, read_token], [demo_status])
    return run
