"""Train and Publish tabs until voxspace.train / voxspace.publish land: say what will be here."""

from __future__ import annotations

import gradio as gr


def train_tab() -> None:
    gr.Markdown(
        "## Train your model\n"
        "Here you will fine-tune Voxtral on your takes: a small LoRA adapter trained on ZeroGPU or a "
        "dedicated GPU, with the error rate on your held-out takes before and after. Record at least "
        "50 takes first; this tab is being built.", elem_id="train-placeholder")


def publish_tab() -> None:
    gr.Markdown(
        "## Publish\n"
        "Here you will push your trained adapter to your own model repo, with a model card, and create "
        "a demo Space you can share. This tab is being built.", elem_id="publish-placeholder")
