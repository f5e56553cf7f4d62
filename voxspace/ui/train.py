"""The Train tab: how ready your data is, and how to train on it today.

Training from this page needs one function that both the CLI and the page call (today the run's
orchestration lives in `python -m voxspace train`), so until then the tab says how far the data
is and gives the exact command, writing the run where the Publish tab finds it.
"""

from __future__ import annotations

import shlex

import gradio as gr

from voxspace.ui.progress import MILESTONES
from voxspace.ui.publish import runs_root
from voxspace.ui.session import Session


def readiness(sess: Session | None) -> tuple[str, str]:
    """(what the data is ready for, the command that trains on it now)."""
    if sess is None or sess.store is None:
        return "Sign in with Hugging Face, then record some takes: training uses them.", ""
    st = sess.store.stats()
    first = MILESTONES[0][0]
    text = (f"You have **{st.takes}** takes ({st.minutes:.1f} minutes): **{st.train}** to train on and "
            f"**{st.test}** held out to measure the error rate before and after.")
    if st.takes < first:
        text += f" Record at least {first} takes for a first useful model ({first - st.takes} to go)."
    where = ("on a machine of your own (see the README)" if sess.settings.in_space else "on this machine")
    text += (f" Training from this page is coming next; until then, train {where} with the command "
             "below, and the run appears on the Publish tab when it finishes.")
    cmd = shlex.join(["python", "-m", "voxspace", "train", "--data", st.location, "--base-model",
                      sess.settings.base_model, "--out", str(runs_root(sess) / "my-first-run"),
                      "--preset", "quick"])
    return text, cmd


def build(session: gr.State) -> list[gr.components.Component]:
    """Returns the readiness text and command, which app.py refreshes when the tab opens."""
    gr.Markdown("## Train your model\nA small LoRA adapter is fine-tuned on your takes (on ZeroGPU in a "
                "Space, or a GPU of your own), and the takes held out are used to measure the error rate "
                "before and after.")
    text, cmd = readiness(None)
    return [gr.Markdown(text, elem_id="train-readiness"),
            gr.Textbox(cmd, label="Command", interactive=False, buttons=["copy"], elem_id="train-command")]
