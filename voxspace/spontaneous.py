"""Spontaneous speech: a person answers a question in their own words, then types (or corrects) what
they said, and that becomes the take's transcript (issue 15 item 4).

Read and conversational speech differ (pace, fillers, restarts), and a personal model used for
conversation should hear some of the latter. The questions live in phrase_lists/questions.json,
append-only like the phrase lists: a question's id is its position ("question-en-03"), and it is
stored as the take's phrase_id with source "spontaneous".
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

from voxspace.errors import BadInput
from voxspace.settings import LANGUAGES

SOURCE = "spontaneous"
MAX_WORDS = 90  # about 30 s of conversational speech


@dataclass(frozen=True)
class Question:
    question_id: str
    text: str
    language: str


@functools.lru_cache(maxsize=1)
def _bank() -> dict[str, list[str]]:
    raw = resources.files("voxspace.phrase_lists").joinpath("questions.json").read_text("utf-8")
    return json.loads(raw)


def questions(language: str) -> list[Question]:
    if language not in LANGUAGES:
        raise BadInput(f"Unsupported language {language!r}. Choose one of: {', '.join(LANGUAGES)}.")
    return [
        Question(f"question-{language}-{n:02d}", text, language)
        for n, text in enumerate(_bank().get(language, []), start=1)
    ]


def next_question(language: str, answered: Iterable[str], after: str | None = None) -> Question:
    """The first question not answered yet, after `after` (the one shown, for "Another question");
    once all are answered they come round again: a second answer is new speech too."""
    qs = questions(language)
    done = set(answered)
    start = next((i + 1 for i, q in enumerate(qs) if q.question_id == after), 0)
    ring = qs[start:] + qs[:start]
    return next((q for q in ring if q.question_id not in done), ring[0])


def clean_transcript(text: str | None) -> str:
    """The typed transcript as stored, or BadInput with what to fix."""
    text = re.sub(r"\s+", " ", text or "").strip()
    if not text:
        raise BadInput("Type what you said before saving: the words are what the model learns from.")
    if any(ord(c) < 32 for c in text):
        raise BadInput("The transcript holds control characters; type it as plain text.")
    if len(text.split()) > MAX_WORDS:
        raise BadInput(
            f"The transcript has {len(text.split())} words; a take holds about 30 seconds "
            f"({MAX_WORDS} words at most). Record a shorter answer."
        )
    return text
