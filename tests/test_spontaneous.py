"""Spontaneous speech: a question answered in one's own words is saved with the typed transcript;
an empty or oversized transcript, or no recording, is refused with a sentence and nothing is lost."""

from __future__ import annotations

import io
import subprocess

import pytest
import soundfile as sf

from voxspace import spontaneous
from voxspace.errors import BadInput
from voxspace.settings import LANGUAGES
from voxspace.ui.session import start_session
from voxspace.ui.spontaneous import ask, save_answer


def _answer_wav() -> bytes:
    out = subprocess.run(
        ["espeak-ng", "--stdout", "well I mostly went for a walk by the river"],
        check=True,
        capture_output=True,
    ).stdout
    x, sr = sf.read(io.BytesIO(out), dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, x, sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_questions_with_stable_ids(language):
    qs = spontaneous.questions(language)
    assert len(qs) >= 5 and all(q.text.strip() and q.language == language for q in qs)
    assert [q.question_id for q in qs] == [f"question-{language}-{n:02d}" for n in range(1, len(qs) + 1)]


def test_questions_go_round_skipping_answered_ones():
    qs = spontaneous.questions("en")
    first, second = qs[0].question_id, qs[1].question_id
    assert spontaneous.next_question("en", []) == qs[0]
    assert spontaneous.next_question("en", [first]) == qs[1]
    assert spontaneous.next_question("en", [], after=first) == qs[1]  # "Another question"
    assert spontaneous.next_question("en", [second], after=first) == qs[2]
    everything = [q.question_id for q in qs]
    assert spontaneous.next_question("en", everything, after=qs[-1].question_id) == qs[0]


def test_transcripts_are_cleaned_and_bad_ones_refused():
    assert spontaneous.clean_transcript("  well,\n I went   out ") == "well, I went out"
    for bad, says in [
        ("", "Type what you said"),
        ("   \n", "Type what you said"),
        ("a \x07 bell", "control characters"),
        ("word " * 91, "91 words"),
    ]:
        with pytest.raises(BadInput, match=says):
            spontaneous.clean_transcript(bad)


def test_an_answer_is_saved_with_its_typed_transcript(hub_settings):
    sess = start_session(hub_settings, profile=None, token=None)  # local folder mode
    question_html, qid = ask(sess)
    assert qid == "question-en-01" and "What did you do yesterday evening?" in question_html
    wav = _answer_wav()

    status, *kept = save_answer(sess, qid, wav, "   ")
    assert "Type what you said" in status and all(k == {"__type__": "update"} for k in kept)
    status, *_ = save_answer(sess, qid, None, "I went for a walk")
    assert "record your answer first" in status
    assert sess.store.stats().takes == 0  # nothing saved by a refusal

    typed = "Well, I mostly went for a walk by the river."
    status, next_html, next_id, audio_out, text_out = save_answer(sess, qid, wav, typed)
    assert "Answer saved" in status and (audio_out, text_out) == (None, "")
    [take] = sess.store.takes()
    assert (take.text, take.phrase_id, take.source, take.language) == (typed, qid, "spontaneous", "en")
    assert next_id == "question-en-02" and "a place you like to visit" in next_html  # the next question
    assert ask(sess)[1] == "question-en-02"  # answered ones are skipped after a reload too
