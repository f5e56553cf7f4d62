"""The Record tab's spontaneous mode: answer a question in your own words, type what you said,
save (voxspace.spontaneous). The take goes through the same checks and store as a read phrase."""

from __future__ import annotations

import html
import logging
from typing import Any

import gradio as gr

from voxspace import audio, spontaneous
from voxspace.errors import BadAudio, VoxSpaceError
from voxspace.ui import unsent
from voxspace.ui.progress import status_html
from voxspace.ui.session import Session

log = logging.getLogger(__name__)


def _answered(sess: Session) -> list[str]:
    if sess.store is None:
        return []
    return [i for i in sess.store.stats().done_phrase_ids if i.startswith("question-")]


def ask(sess: Session | None, after: str | None = None) -> tuple[str, str | None]:
    """(the question as HTML, its id) for this person's language."""
    if sess is None:
        return "", None
    q = spontaneous.next_question(sess.language, _answered(sess), after=after)
    return f'<p class="vx-question" lang="{q.language}">{html.escape(q.text)}</p>', q.question_id


def save_answer(
    sess: Session | None, question_id: str | None, source: Any, transcript: str
) -> tuple[Any, ...]:
    """Check and store the answer with its typed transcript.

    Returns (status, question, question id, audio, transcript): after a save the next question is
    shown and the form cleared; after a refusal everything is kept so nothing typed is lost.
    """
    keep = (gr.skip(), gr.skip(), gr.skip(), gr.skip())
    if sess is not None:
        sess.last_saved = None
    if sess is None or not sess.can_record:
        return status_html("info", "Sign in with Hugging Face first."), *keep
    if source is None:
        return status_html("info", "Nothing recorded yet: record your answer first."), *keep
    try:
        text = spontaneous.clean_transcript(transcript)
        clean = audio.prepare_take(source, sess.settings.limits)
        wav = clean.wav_bytes()
        take = sess.store.save(
            wav,
            clean.duration,
            text=text,
            language=sess.language,
            phrase_id=question_id or "",
            source=spontaneous.SOURCE,
        )
    except BadAudio as e:
        return status_html("rejected", f"{e.user_message} Your answer and transcript are kept."), *keep
    except VoxSpaceError as e:
        log.info("answer not saved: %s", e)
        return status_html("rejected", e.user_message), *keep
    sess.last_saved = (take, wav)  # for the browser to keep (ui.unsent.hand_back)
    question, qid = ask(sess, after=question_id)
    message = f"Answer saved ({take.duration:.1f} s) with your transcript. Here is another question."
    return status_html("saved", message), question, qid, None, ""


def build(session: gr.State) -> None:
    """The form, inside an accordion that asks its question when opened."""
    with gr.Accordion("Answer a question in your own words", open=False, elem_id="spontaneous") as box:
        gr.Markdown(
            "Everyday speech is not read speech. Answer the question as you would talk, then "
            "type what you said, word for word (ums and restarts too, if you like)."
        )
        question = gr.HTML(elem_id="spontaneous-question")
        question_id = gr.State(None)
        another = gr.Button("Another question", size="sm", elem_id="spontaneous-another")
        answer = gr.Audio(
            sources=["microphone"],
            type="filepath",
            label="Your answer",
            elem_id="spontaneous-audio",
            editable=False,
        )
        transcript = gr.Textbox(
            label="What you said",
            lines=3,
            elem_id="spontaneous-transcript",
            placeholder="Type your answer exactly as you spoke it.",
        )
        save = gr.Button("Save answer", variant="primary", elem_id="spontaneous-save")
        status = gr.HTML(elem_id="spontaneous-status")
        kept = gr.Textbox("", visible=False)  # the saved answer for the browser to keep (ui.unsent)
    another.click(ask, [session, question_id], [question, question_id], show_progress="hidden")
    save.click(
        lambda *a: (*save_answer(*a), unsent.hand_back(a[0])),
        [session, question_id, answer, transcript],
        [status, question, question_id, answer, transcript, kept],
        show_progress="hidden",
    ).then(None, [kept], None, js=unsent.KEEP_JS)
    box.expand(ask, [session], [question, question_id], show_progress="hidden")
