"""Hands-free recording: countdown, record, stop by itself after silence, check, save, next phrase.

How it works in gradio 6.31: a streaming gr.Audio sends the microphone to `on_chunk` every half
second; the chunks pile up in the visitor's Session and voxspace.vad decides when the speech is
over. The server cannot press Stop, so it writes a token into a hidden textbox whose change event
runs voxspace.js, which presses the recorder's Stop. Stopping fires `stop_recording`, which saves
the take through the same path as the Save button; then the page counts down to the next phrase.
Where a restart would lose the saved take before it reaches the Hub, the page keeps a copy of it
(ui.unsent.hand_back).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np
import soundfile as sf

from voxspace import vad
from voxspace.ui import unsent
from voxspace.ui.progress import status_html
from voxspace.ui.session import Session

log = logging.getLogger(__name__)

CHUNK_S = 0.5  # how often the browser sends audio; also the VAD's reaction time

EXPLAIN = ("In hands-free mode each phrase is recorded by itself: after a short countdown the "
           "microphone turns on, and it stops once you have been silent for the time set below. The "
           "take is then checked and saved, and the next phrase appears. Turn it off with the same "
           "switch or the H key.")


def _mono_float(chunk: np.ndarray) -> np.ndarray:
    x = np.asarray(chunk)
    x = x.astype(np.float32) / 32768.0 if x.dtype.kind == "i" else x.astype(np.float32)
    return x.mean(axis=1) if x.ndim == 2 else x


def on_start(sess: Session | None) -> None:
    if sess is not None:
        sess.chunks, sess.chunk_sr = [], 0


def on_chunk(sess: Session | None, chunk: tuple[int, np.ndarray] | None, silence_s: float) -> Any:
    """Collect one chunk; answer "stop-N" once the take is over (silence after speech, or too long)."""
    if sess is None or chunk is None:
        return gr.skip()
    sr, data = chunk
    sess.chunk_sr = sr
    sess.chunks.append(_mono_float(data))
    captured = np.concatenate(sess.chunks)
    seconds = len(captured) / sr
    cfg = vad.VadConfig(silence_stop_s=float(silence_s))
    # No take can be over before speech + silence have both been heard: skip the VAD until then.
    done = seconds >= cfg.min_speech_s + cfg.silence_stop_s and vad.should_stop(captured, sr, cfg)
    if done or seconds >= sess.settings.limits.max_take_s:
        return f"stop-{len(sess.chunks)}"
    return gr.skip()


def captured_wav(sess: Session) -> bytes | None:
    if not sess.chunks or not sess.chunk_sr:
        return None
    buf = io.BytesIO()
    sf.write(buf, np.concatenate(sess.chunks), sess.chunk_sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def finish(sess: Session | None, save_take: Callable[[Session, Any], tuple[str, str, str, bool]]) -> tuple:
    """The recorder stopped: save the captured take. Returns (status, phrase, progress, player, kept):
    a rejected take goes into the main player so the person can listen to it; `kept` is the saved
    take for the browser to keep (ui.unsent.hand_back), always set so an old one is never kept twice."""
    if sess is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), ""
    wav = captured_wav(sess)
    sess.chunks = []
    st, ph, pr, saved = save_take(sess, wav)
    return st, ph, pr, (gr.skip() if saved or wav is None else wav), unsent.hand_back(sess)


def build(session: gr.State, *, toggle: gr.Checkbox, outputs_after_save: tuple,
          save_take: Callable[[Session, Any], tuple[str, str, str, bool]]) -> None:
    status, phrase, progress, take_audio = outputs_after_save
    with gr.Accordion("Hands-free settings", open=False, elem_id="handsfree-section"):
        gr.Markdown(EXPLAIN)
        silence = gr.Slider(0.6, 5.0, value=1.5, step=0.1, label="Stop after this much silence (seconds)",
                            elem_id="handsfree-silence")
        countdown = gr.Slider(0, 5, value=3, step=1, label="Countdown before each recording (seconds)",
                              elem_id="handsfree-countdown-s")
    mic = gr.Audio(sources=["microphone"], streaming=True, type="numpy", label="Hands-free microphone",
                   elem_id="handsfree-audio", visible=False, buttons=[])
    flag = gr.Textbox(visible="hidden", elem_id="vad-flag", label="Voice activity signal")

    def on_toggle(sess: Session | None, on: bool):
        if on and (sess is None or not sess.can_record):
            return gr.update(value=False), gr.update(visible=False), status_html(
                "info", "Sign in with Hugging Face first.")
        msg = ("Hands-free mode on. Recording starts after the countdown." if on
               else "Hands-free mode off. Press R to record.")
        return gr.skip(), gr.update(visible=on), status_html("ready", msg)

    toggle.input(on_toggle, [session, toggle], [toggle, mic, status], show_progress="hidden").then(
        None, [toggle, countdown], None, js="(on, n) => { window.voxspace && voxspace.handsFree(on, n); }")

    mic.start_recording(on_start, [session], None, show_progress="hidden")
    mic.stream(on_chunk, [session, mic, silence], [flag], stream_every=CHUNK_S, time_limit=60,
               show_progress="hidden", concurrency_limit=None)
    flag.change(None, [flag], None, js="(v) => { window.voxspace && voxspace.vadSignal(v); }")

    kept = gr.Textbox("", visible=False)  # the saved take for the browser's IndexedDB (ui.unsent)
    mic.stop_recording(lambda sess: finish(sess, save_take), [session],
                       [status, phrase, progress, take_audio, kept], show_progress="hidden").then(
        None, [countdown, kept], None,
        js="(n, k) => { if (window.voxspace) { voxspace.keepHandedBack(k); voxspace.handsFreeNext(n); } }")

