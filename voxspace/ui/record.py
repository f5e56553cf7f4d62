"""The Record tab: one phrase, the microphone, Save and next. Keyboard-first, hands-free optional.

The tab owns no logic: takes are checked by voxspace.audio, stored by voxspace.store, phrases come
from voxspace.phrases, exactly as the CLI does it. Every handler takes the visitor's Session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gradio as gr

from voxspace import audio
from voxspace.errors import BadAudio, DuplicateTake, VoxSpaceError
from voxspace.settings import LANGUAGES, language_choices
from voxspace.ui import bulk, handsfree, spontaneous, suggestions, unsent
from voxspace.ui.progress import LOADING_PHRASE, phrase_html, progress_html, rest_reminder, status_html
from voxspace.ui.session import Session, recheck_sign_in, status_line

log = logging.getLogger(__name__)

SHORTCUTS_HTML = """
<section class="vx-shortcuts" aria-labelledby="vx-shortcuts-title">
<h2 id="vx-shortcuts-title">Keyboard shortcuts</h2>
<ul>
<li><kbd>R</kbd> record, or stop (recording goes on for half a second so your last word is kept)</li>
<li><kbd>P</kbd> play back your take</li>
<li><kbd>X</kbd> record the phrase again</li>
<li><kbd>S</kbd> save and go to the next phrase</li>
<li><kbd>N</kbd> skip this phrase</li>
<li><kbd>H</kbd> hands-free mode on or off</li>
</ul>
<p>Shortcuts work whenever you are not typing in a text field. After each step the focus moves
to the next thing to do, so <kbd>Enter</kbd> or <kbd>Space</kbd> also works. You can turn
single-key shortcuts off if they clash with your screen reader or switch access.</p>
</section>
"""

STATE_BADGE_HTML = ('<div id="vx-rec-state" class="vx-rec-state" data-state="ready">'
                    '<span class="vx-shape" aria-hidden="true">▶</span> <span class="vx-state-text">'
                    "Ready to record</span></div>"
                    '<div id="vx-countdown" class="vx-countdown" aria-hidden="true"></div>')


@dataclass
class RecordTab:
    """What app.py chains after the visitor's session exists (page load)."""

    on_load: Any
    load_inputs: list
    load_outputs: list
    load_js_inputs: list
    load_js: str
    suggestions: suggestions.SuggestionsPanel | None = None  # refreshed whenever the tab is shown
    resend: Any = None  # after on_load: takes the browser kept from before are sent again (ui.unsent)
    resend_inputs: list | None = None
    resend_outputs: list | None = None
    resend_js: str = ""


def _progress(sess: Session) -> str:
    if sess.store is None:
        return progress_html(takes=0, minutes=0.0, pending=0, last_error=None, repo_id=None)
    st = sess.store.stats()
    return progress_html(takes=st.takes, minutes=st.minutes, pending=st.pending,
                         last_error=st.last_error, repo_id=sess.store.repo_id, next_push_s=st.next_push_s,
                         notice=st.notice, survives_restart=st.survives_restart)


def _phrase(sess: Session) -> str:
    p = sess.current
    return phrase_html(p.text if p else None, p.language if p else sess.language, p.phrase_id if p else "")


def _done_ids(sess: Session) -> set[str]:
    return set(sess.store.stats().done_phrase_ids) if sess.store is not None else set()


def refresh(sess: Session | None, language: str) -> tuple[str, str, str]:
    """(phrase, progress, status) for a fresh page or a new language / phrase list."""
    if sess is None:
        return LOADING_PHRASE, "", status_html("info", "Loading your progress…")
    sess.language = language if language in LANGUAGES else "en"
    sess.advance(_done_ids(sess))
    if not sess.can_record:
        return _phrase(sess), _progress(sess), status_html("info", "Sign in with Hugging Face to start.")
    return _phrase(sess), _progress(sess), status_html("ready", "Press R (or the Record button) and "
                                                       "read the phrase aloud.")


def save_take(sess: Session, source: Any) -> tuple[str, str, str, bool]:
    """Check and store one take. Returns (status, phrase, progress, saved).

    A take that fails a check is never dropped: the caller keeps it in the player so the person
    can listen to it and record again.
    """
    sess.last_take_id, sess.last_saved = None, None
    if not sess.can_record:
        return status_html("info", "Sign in with Hugging Face first."), _phrase(sess), _progress(sess), False
    if source is None:
        return (status_html("info", "Nothing recorded yet. Press R to record the phrase."), _phrase(sess),
                _progress(sess), False)
    if sess.current is None:
        return status_html("info", "There is no phrase to record."), _phrase(sess), _progress(sess), False
    try:
        clean = audio.prepare_take(source, sess.settings.limits)
    except BadAudio as e:
        log.info("take rejected: %s", e)
        kept = "Your take is still in the player above: listen to it, or press X to record again."
        return status_html("rejected", f"{e.user_message} {kept}"), _phrase(sess), _progress(sess), False
    phrase = sess.current
    wav = clean.wav_bytes()
    try:
        take = sess.store.save(wav, clean.duration, text=phrase.text,
                               language=phrase.language, phrase_id=phrase.phrase_id, source="mic")
    except VoxSpaceError as e:
        log.exception("saving a take failed")
        if isinstance(e, DuplicateTake):
            sess.last_take_id = e.take_id
        return status_html("rejected", e.user_message), _phrase(sess), _progress(sess), False
    sess.last_take_id, sess.last_saved = take.take_id, (take, wav)
    sess.spoken_s_since_rest += clean.duration
    sess.skipped.discard(phrase.phrase_id)
    stats = sess.store.stats()
    sess.advance(set(stats.done_phrase_ids) | {phrase.phrase_id})
    log.debug("take %s saved; next phrase %s (%d done, %d skipped, language %s, %d custom)", take.take_id,
             sess.current and sess.current.phrase_id, len(stats.done_phrase_ids), len(sess.skipped),
             sess.language, len(sess.custom))
    message = f"Take {stats.takes} saved ({clean.duration:.1f} s). Here is the next phrase."
    reminder = rest_reminder(sess.spoken_s_since_rest)
    if reminder:
        message += " " + reminder
        sess.spoken_s_since_rest = 0.0
    return status_html("saved", message, rest=bool(reminder)), _phrase(sess), _progress(sess), True


def build(session: gr.State, identity_status: gr.Markdown) -> RecordTab:
    """The tab's components and handlers; `identity_status` is the page's sign-in line, which the
    tick updates when a sign-in checked again in the background comes back."""
    prefs = gr.BrowserState({"language": "en", "size": 40, "keys": True}, storage_key="voxspace-prefs")
    with gr.Row(equal_height=True):
        language = gr.Dropdown(language_choices(), value="en", label="Language of the phrases",
                               elem_id="language", scale=1)
        size = gr.Slider(24, 80, value=40, step=4, label="Phrase text size", elem_id="phrase-size", scale=1)
    with gr.Row(equal_height=True):
        hf_on = gr.Checkbox(False, label="Hands-free mode (H)", elem_id="handsfree-toggle")
        keys_on = gr.Checkbox(True, label="Single-key shortcuts", elem_id="shortcuts-toggle")
    phrase = gr.HTML(LOADING_PHRASE, elem_id="phrase")
    gr.HTML(STATE_BADGE_HTML, elem_id="rec-state-box")
    take_audio = gr.Audio(sources=["microphone"], type="filepath", label="Your recording",
                          elem_id="take-audio", editable=False, buttons=[])
    with gr.Row(elem_id="vx-controls"):
        save_btn = gr.Button("Save and next (S)", variant="primary", elem_id="save-btn", size="lg")
        again_btn = gr.Button("Record again (X)", elem_id="rerecord-btn", size="lg")
        skip_btn = gr.Button("Skip phrase (N)", elem_id="skip-btn", size="lg")
    status = gr.HTML(status_html("info", "Loading…"), elem_id="take-status")
    progress = gr.HTML("", elem_id="progress")
    # The browser's copies of unsent takes (voxspace.js, ui/unsent.py): the key of the take being
    # saved, the takes a page sends again, and the receipts that let the browser forget them.
    browser_key = gr.Textbox("", visible=False)
    kept_takes = gr.Textbox("", visible=False)
    receipts = gr.HTML(unsent.receipts_html(None), elem_id="vx-receipts", elem_classes=["vx-hidden"])
    timer = gr.Timer(2.0)
    next_up = suggestions.build(session, on_queued=(refresh, [session, language], [phrase, progress, status]))
    handsfree.build(session, toggle=hf_on, outputs_after_save=(status, phrase, progress, take_audio),
                    save_take=save_take)
    gr.HTML(SHORTCUTS_HTML, elem_id="shortcuts-help")
    spontaneous.build(session)
    bulk.build(session, on_phrases_changed=(refresh, [session, language], [phrase, progress, status]))

    # --- the manual loop -----------------------------------------------------------------------
    def on_save(sess: Session, src: Any, key: str):
        st, ph, pr, saved = save_take(sess, src)
        unsent.remember(sess, key, sess.last_take_id)
        sess.last_saved = None  # the page kept its own recording (voxspace.keepTake)
        return st, ph, pr, (None if saved else gr.skip()), unsent.receipts_html(sess)

    def on_skip(sess: Session):
        if sess.current is not None:
            sess.skipped.add(sess.current.phrase_id)
            sess.advance(_done_ids(sess))
        return status_html("ready", "Skipped. Here is another phrase."), _phrase(sess), None

    save_btn.click(on_save, [session, take_audio, browser_key],
                   [status, phrase, progress, take_audio, receipts],
                   js="(...a) => window.voxspace ? voxspace.keepTake(a) : a",
                   show_progress="hidden").then(None, js="() => window.voxspace && voxspace.afterSave()")
    skip_btn.click(on_skip, [session], [status, phrase, take_audio], show_progress="hidden").then(
        None, js="() => window.voxspace && voxspace.focusRecord()")
    again_btn.click(lambda: (None, status_html("ready", "Ready. Press R to record again.")), None,
                    [take_audio, status], show_progress="hidden").then(
        None, js="() => window.voxspace && voxspace.focusRecord()")
    take_audio.stop_recording(None, js="() => window.voxspace && voxspace.afterRecording()")

    def on_tick(sess: Session | None):
        if sess is None:
            return gr.skip(), gr.skip(), gr.skip()
        sess.keep_claim()  # this page is still open: its phrase stays its own
        signed_in_again = recheck_sign_in(sess)
        return (_progress(sess), unsent.receipts_html(sess),
                status_line(sess) if signed_in_again else gr.skip())

    timer.tick(on_tick, [session], [progress, receipts, identity_status], show_progress="hidden")

    # --- preferences: language, text size, shortcuts; remembered in this browser ------------
    def on_language(sess: Session | None, lang: str, p: dict):
        return (*refresh(sess, lang), {**(p or {}), "language": lang})

    language.input(on_language, [session, language, prefs], [phrase, progress, status, prefs],
                   show_progress="hidden")
    size.input(lambda v, p: {**(p or {}), "size": v}, [size, prefs], [prefs],
               js="(v, p) => { window.voxspace && voxspace.setPhraseSize(v); return [v, p]; }",
               show_progress="hidden")
    keys_on.input(lambda on, p: {**(p or {}), "keys": on}, [keys_on, prefs], [prefs],
                  js="(on, p) => { window.voxspace && voxspace.setShortcuts(on); return [on, p]; }",
                  show_progress="hidden")

    def on_load(sess: Session | None, p: dict | None):
        """After the session exists: restore this browser's preferences, then show the phrase."""
        p = p or {}
        lang = p.get("language", "en")
        return (lang, p.get("size", 40), p.get("keys", True), *refresh(sess, lang))

    return RecordTab(on_load=on_load, load_inputs=[session, prefs],
                     load_outputs=[language, size, keys_on, phrase, progress, status],
                     load_js_inputs=[size, keys_on],
                     load_js="(size, keys) => { window.voxspace && voxspace.restore(size, keys); }",
                     resend=unsent.resend, resend_inputs=[session, kept_takes],
                     resend_outputs=[status, receipts],
                     resend_js="async (s, _) => [s, window.voxspace ? await voxspace.keptTakes() : '[]']",
                     suggestions=next_up)
