"""Assemble the VoxSpace page: the sign-in header, a plain-language status line, one tab per step.

    python app.py            (serves http://127.0.0.1:7860; GRADIO_SERVER_NAME/PORT override)

Imports only gradio and the light voxspace modules (no torch, no transformers): the page answers
within seconds of start-up, and the training/publishing code loads on first use.
"""

from __future__ import annotations

import logging
import threading

import gradio as gr

from voxspace import page_watch
from voxspace.settings import Settings
from voxspace.ui import assets, publish, record, train
from voxspace.ui.session import Session, start_session, status_line

log = logging.getLogger(__name__)
QUEUE_MAX_SIZE = 512  # events waiting for a worker, all visitors together


def _show_login_button(settings: Settings) -> bool:
    """In a Space the button runs real OAuth. Locally gradio mocks it with the cached token and
    refuses to start without one, so without a token the page goes straight to local-folder mode."""
    if settings.in_space:
        return True
    from huggingface_hub import get_token

    return get_token() is not None


def build_app(settings: Settings | None = None) -> gr.Blocks:
    settings = settings or Settings.from_env()
    with gr.Blocks(title="VoxSpace") as demo:
        # One Session per visitor, built on page load; a closed page frees its phrase (PhraseClaims).
        session = gr.State(None, delete_callback=lambda s: s.release() if s is not None else None)
        with gr.Row(elem_id="vx-header", equal_height=True):
            gr.Markdown("# VoxSpace\nTeach speech recognition your own voice: read phrases aloud, "
                        "train, publish.", elem_id="vx-title")
            if _show_login_button(settings):
                gr.LoginButton("Sign in with Hugging Face", elem_id="login-btn", scale=0, min_width=260)
        status = gr.Markdown("Loading…", elem_id="identity-status")
        with gr.Tabs(elem_id="vx-tabs"):
            with gr.Tab("Record", id="record", elem_id="tab-record") as record_tab:
                rec = record.build(session, status)
            with gr.Tab("Train", id="train", elem_id="tab-train") as train_tab:
                train_view = train.build(session)
            with gr.Tab("Publish", id="publish", elem_id="tab-publish") as publish_tab:
                runs = publish.build(session)
        train_tab.select(train.on_open, train_view.open_inputs, train_view.open_outputs,
                         show_progress="hidden")
        publish_tab.select(publish.refresh_runs, [session], [runs], show_progress="hidden")
        next_up = rec.suggestions
        record_tab.select(next_up.refresh, next_up.inputs, next_up.outputs, show_progress="hidden")

        def _start(profile: gr.OAuthProfile | None, token: gr.OAuthToken | None,
                   request: gr.Request) -> tuple[Session, str]:
            sess = start_session(settings, profile=profile, token=token)
            page_watch.opened(sess.identity, request.session_hash)
            return sess, status_line(sess)

        def _closed(request: gr.Request) -> None:
            """The page's heartbeat ended (tab closed, reloaded, left): a ZeroGPU run of the
            visitor's, paid from their quota, pauses at its next checkpoint if no page is left."""
            page_watch.closed(request.session_hash)

        demo.unload(_closed)

        demo.load(_start, inputs=None, outputs=[session, status], show_progress="hidden").then(
            rec.on_load, rec.load_inputs, rec.load_outputs, show_progress="hidden").then(
            None, rec.load_js_inputs, None, js=rec.load_js).then(
            rec.resend, rec.resend_inputs, rec.resend_outputs, js=rec.resend_js, show_progress="hidden").then(
            next_up.refresh, next_up.inputs, next_up.outputs, show_progress="hidden")
    return demo


def _recover_in_background(settings: Settings) -> None:
    """Push takes a previous run acknowledged but had not pushed (e.g. after a kill -9)."""

    def run() -> None:
        from voxspace.store import recover_pending

        try:
            recover_pending(settings)
        except Exception:  # the page must come up even if the Hub is unreachable; retried next start
            log.exception("recovering unpushed takes failed")

    threading.Thread(target=run, name="voxspace-recover", daemon=True).start()


def _load_base_on_zerogpu(settings: Settings) -> None:
    """On ZeroGPU the base model is loaded now, in the main thread (the only one where spaces emulates
    CUDA), before launch() packs it for the GPU calls, with a page on the port that says so
    (startup_page); elsewhere a run loads it on first use and the page is served at once."""
    from voxspace import gpu, startup_page

    if not gpu.on_zerogpu():
        return
    with startup_page.loading_page(settings.base_model):
        gpu.load_base_at_startup(settings.base_model)


def queued(demo: gr.Blocks) -> gr.Blocks:
    """The page's event queue. max_size: on ZeroGPU gradio defaults it to ONE waiting event for the
    whole Space (meant for demos whose every event is a GPU call); a VoxSpace page sends several at
    once (its load chain, the Train tab's timer) and got "Queue is full" before it had loaded. GPU
    work here runs in the run's own thread, never in a queued event."""
    return demo.queue(default_concurrency_limit=8, max_size=QUEUE_MAX_SIZE)


def launch(settings: Settings | None = None) -> None:
    settings = settings or Settings.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from voxspace.quiet import quiet_third_party

    quiet_third_party()
    _recover_in_background(settings)
    _load_base_on_zerogpu(settings)
    queued(build_app(settings)).launch(
        css_paths=[assets.CSS], head=assets.head(), footer_links=[],
        theme=gr.themes.Default())
