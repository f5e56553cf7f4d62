"""The Record tab's other ways in: your own phrases, many files at once, a Hub dataset.

Each section calls the same functions as `python -m voxspace data add|import`; what is shown here
is only the form and the result table.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr

from voxspace import ingest, phrases
from voxspace.errors import VoxSpaceError
from voxspace.settings import language_choices
from voxspace.ui import unsent
from voxspace.ui.progress import status_html
from voxspace.ui.session import Session

log = logging.getLogger(__name__)

RESULT_HEADERS = ingest.as_table([])[0]


def summary(rows: list[ingest.IngestRow]) -> str:
    ok = sum(r.accepted for r in rows)
    return f"{ok} of {len(rows)} added; {len(rows) - ok} rejected (the table says why)."


def _result(rows: list[ingest.IngestRow]) -> tuple[str, list[list[Any]]]:
    kind = "saved" if any(r.accepted for r in rows) else "rejected"
    return status_html(kind, summary(rows)), ingest.as_table(rows)[1]


def set_custom_phrases(sess: Session, text: str, file: str | None) -> str:
    """Use the visitor's own phrases (pasted lines, or a .txt file) instead of the bundled list."""
    source: str | bytes = Path(file).read_bytes() if file else (text or "")
    try:
        custom = phrases.parse_custom(source, sess.language)
    except VoxSpaceError as e:
        return status_html("error", e.user_message)
    if not custom:
        sess.custom = []
        return status_html("info", "No phrases found, so the bundled list is used.")
    sess.custom = custom
    sess.skipped.clear()
    return status_html("done", f"Using your {len(custom)} phrases.")


def upload_files(sess: Session, files: list[str] | None, transcripts: str | None, language: str):
    """Check and add the files. Returns (status, table, kept): `kept` names the new takes for the
    page to remember where a restart would lose them (ui.unsent.hand_back_uploads)."""
    if not sess.can_record:
        return status_html("info", "Sign in with Hugging Face first."), [], ""
    if not files:
        return status_html("info", "Choose some audio files (or one zip) first."), [], ""
    try:
        rows = ingest.ingest_upload([Path(f) for f in files], transcripts=Path(transcripts) if transcripts
                                    else None, language=language or "", save=sess.store.save,
                                    limits=sess.settings.limits)
    except VoxSpaceError as e:
        return status_html("error", e.user_message), [], ""
    return *_result(rows), unsent.hand_back_uploads(sess, rows)


def import_dataset(sess: Session, repo_id: str, audio_col: str, text_col: str, lang_col: str, language: str,
                   config: str, split: str, max_takes: float, max_minutes: float,
                   progress: gr.Progress = gr.Progress()):  # noqa: B008 - gradio's documented idiom
    if not sess.can_record:
        return status_html("info", "Sign in with Hugging Face first."), []
    progress(0, desc="Connecting to the dataset…")
    seen: list[ingest.IngestRow] = []

    def report(row: ingest.IngestRow) -> None:
        seen.append(row)
        ok = sum(r.accepted for r in seen)
        goal = int(max_takes) if max_takes else None
        progress((ok, goal) if goal else None, desc=f"{ok} imported, {len(seen) - ok} rejected",
                 unit="takes")

    try:
        rows = ingest.import_hub_dataset(
            (repo_id or "").strip(), audio_column=audio_col or "audio", text_column=text_col or "text",
            language_column=lang_col or None, language=language or None, config=config or None,
            split=split or "train", max_takes=int(max_takes) if max_takes else None,
            max_minutes=float(max_minutes) if max_minutes else None, token=sess.identity.token,
            endpoint=sess.settings.hub_endpoint, save=sess.store.save, progress=report)
    except VoxSpaceError as e:
        return status_html("error", e.user_message), []
    except Exception:  # never a bare "Error" on the page: the cause goes to the log
        log.exception("importing %s failed", repo_id)
        return status_html("error", f"The import of {repo_id} stopped on an unexpected problem; the takes "
                                    "saved so far are kept. Try again, or check the log."), []
    return _result(rows)


def build(session: gr.State, *, on_phrases_changed: tuple) -> None:
    refresh, refresh_inputs, refresh_outputs = on_phrases_changed
    with gr.Accordion("Your own phrases", open=False, elem_id="custom-section"):
        gr.Markdown("Names, places, work or medical words: the words you say most are the ones your "
                    "model most needs to learn. One phrase per line.")
        custom_text = gr.Textbox(lines=5, label="Paste phrases, one per line", elem_id="custom-text")
        custom_file = gr.File(file_types=[".txt"], label="…or upload a .txt file", elem_id="custom-file",
                              type="filepath")
        custom_btn = gr.Button("Use these phrases", elem_id="custom-btn")
        custom_status = gr.HTML(elem_id="custom-status")
    custom_btn.click(set_custom_phrases, [session, custom_text, custom_file], [custom_status],
                     show_progress="hidden").then(refresh, refresh_inputs, refresh_outputs,
                                                  show_progress="hidden")

    with gr.Accordion("Upload recordings you already have", open=False, elem_id="upload-section"):
        gr.Markdown("Audio files (wav, flac, ogg, mp3), with their transcripts in a csv, tsv or jsonl "
                    "file (columns `file_name` and `text`), or one zip holding both. Every file gets the "
                    "same checks as a recorded take.")
        files = gr.File(file_count="multiple", label="Audio files or a zip", elem_id="upload-files",
                        type="filepath")
        transcripts = gr.File(file_types=[".csv", ".tsv", ".jsonl"], label="Transcripts (csv, tsv or jsonl)",
                              elem_id="upload-transcripts", type="filepath")
        up_lang = gr.Dropdown(language_choices("Detect it in each file"), value="", label="Language",
                              elem_id="upload-language")
        up_btn = gr.Button("Check and add", elem_id="upload-btn")
        up_status = gr.HTML(elem_id="upload-status")
        up_table = gr.Dataframe(headers=RESULT_HEADERS, interactive=False, label="What was added",
                                elem_id="upload-results", wrap=True)
    up_kept = gr.Textbox("", visible=False)  # the new takes' names for the browser (ui.unsent)
    up_btn.click(upload_files, [session, files, transcripts, up_lang], [up_status, up_table, up_kept]).then(
        None, [up_kept], None, js=unsent.KEEP_JS)

    with gr.Accordion("Import a Hub dataset", open=False, elem_id="import-section"):
        gr.Markdown("Copy takes from an audio dataset on the Hub into your repo (streamed; nothing else "
                    "is downloaded). Say which columns hold the audio and the transcript, and how much "
                    "to take.")
        repo = gr.Textbox(label="Dataset id (owner/name)", elem_id="import-repo")
        with gr.Row():
            a_col = gr.Textbox("audio", label="Audio column", elem_id="import-audio-col")
            t_col = gr.Textbox("text", label="Transcript column", elem_id="import-text-col")
            l_col = gr.Textbox("", label="Language column (optional)", elem_id="import-lang-col")
        with gr.Row():
            lang = gr.Dropdown(language_choices("Not set"), value="", label="Language (if no column)",
                               elem_id="import-language")
            config = gr.Textbox("", label="Config (optional)", elem_id="import-config")
            split = gr.Textbox("train", label="Split", elem_id="import-split")
        with gr.Row():
            max_takes = gr.Number(100, label="At most this many takes", precision=0, minimum=1,
                                  elem_id="import-max-takes")
            max_minutes = gr.Number(30, label="At most this many minutes", minimum=0.1,
                                    elem_id="import-max-minutes")
        imp_btn = gr.Button("Import", elem_id="import-btn")
        imp_status = gr.HTML(elem_id="import-status")
        imp_table = gr.Dataframe(headers=RESULT_HEADERS, interactive=False, label="What was imported",
                                 elem_id="import-results", wrap=True)
    imp_btn.click(import_dataset, [session, repo, a_col, t_col, l_col, lang, config, split, max_takes,
                                   max_minutes], [imp_status, imp_table])
