"""Assemble the VoxSpace Blocks: the sign-in header and one tab per step.

Imports only gradio and light voxspace modules: torch/transformers load on first use, so the
page answers within seconds of start-up.
"""

from __future__ import annotations

import gradio as gr

from voxspace.settings import Settings


def build_app(settings: Settings | None = None) -> gr.Blocks:
    settings = settings or Settings.from_env()
    with gr.Blocks(title="VoxSpace") as demo:
        gr.Markdown("# VoxSpace\nFine-tune Voxtral speech recognition on your own voice.")
    return demo


def launch(settings: Settings | None = None) -> None:
    build_app(settings).queue(default_concurrency_limit=8).launch()
