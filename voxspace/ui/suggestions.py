"""The Record tab's "Record more like these": phrases holding the words the last run still got
wrong (voxspace.suggest), each with why, and one button that puts them next in line."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from typing import Any

import gradio as gr

from voxspace.ui.progress import status_html
from voxspace.ui.session import Session

log = logging.getLogger(__name__)

NOTHING_YET = (
    "After your first training run, the phrases with the words the model still gets wrong are listed here."
)


def _language(sess: Session, record: Any) -> str | None:
    langs = [lang for lang in record.languages if lang]
    return langs[0] if len(langs) == 1 else (sess.language or None)


def suggestions_for(sess: Session | None) -> list[Any]:
    """Ranked suggestions from the person's latest evaluated run (empty when there is none)."""
    from voxspace import phrases
    from voxspace.suggest import latest_evaluated_run, missed_words, rank_phrases
    from voxspace.ui.publish import runs_root

    if sess is None or sess.store is None:
        return []
    record = latest_evaluated_run(runs_root(sess))
    if record is None:
        return []
    language = _language(sess, record)
    missed = missed_words(record.eval, language)
    candidates = [*sess.custom, *phrases.bundled(sess.language)]
    done = set(sess.store.stats().done_phrase_ids)
    return rank_phrases(candidates, missed, language=language, done_ids=done)


def panel(sess: Session | None) -> tuple[str, Any]:
    """(the list as HTML, the "Record these next" button) for the current suggestions."""
    try:
        found = suggestions_for(sess)
    except Exception:  # a broken run folder must not break the Record tab
        log.exception("could not rank the next phrases")
        found = []
    if not found:
        return f"<p>{NOTHING_YET}</p>", gr.update(visible=False)
    items = "".join(
        f"<li><strong>{html.escape(s.phrase.text)}</strong><br><span>{html.escape(s.why)}</span></li>"
        for s in found
    )
    text = (
        "<p>Your last run still got these words wrong on your held-out takes. Recording phrases that "
        f'contain them teaches the model most:</p><ol class="vx-suggestions">{items}</ol>'
    )
    return text, gr.update(visible=True)


def record_these(sess: Session | None) -> str:
    """Put the suggested phrases first in line (the phrase shown next is the first of them)."""
    found = suggestions_for(sess) if sess is not None else []
    if not found:
        return status_html("info", "There are no suggested phrases yet.")
    sess.suggested = [s.phrase for s in found]
    sess.skipped.difference_update(p.phrase_id for p in sess.suggested)
    return status_html("ready", f"The {len(found)} suggested phrases come next. Press R to record the first.")


@dataclass
class SuggestionsPanel:
    """What app.py refreshes when the Record tab is shown."""

    refresh: Any
    inputs: list
    outputs: list


def build(session: gr.State, *, on_queued: tuple[Any, list, list]) -> SuggestionsPanel:
    with gr.Accordion("Record more like these", open=True, elem_id="suggestions"):
        listing = gr.HTML(f"<p>{NOTHING_YET}</p>", elem_id="suggestions-list")
        button = gr.Button("Record these next", visible=False, elem_id="suggestions-record")
    status = gr.HTML(elem_id="suggestions-status")
    fn, inputs, outputs = on_queued
    button.click(record_these, [session], [status], show_progress="hidden").then(
        fn, inputs, outputs, show_progress="hidden"
    )
    return SuggestionsPanel(panel, [session], [listing, button])
