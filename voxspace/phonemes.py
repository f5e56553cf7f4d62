"""Phonemes of a phrase, from espeak-ng, and the phoneme-balanced starter sets built with them.

    phonemes("Could you pass me the salt?", "en")   # ['k', 'U', 'd', 'j', 'u:', ...]
    starter_ids("en")                              # the bundled phrases to record first

Most of a personal model's gain comes from the first few minutes of speech (issue 15), so the
first phrases a person reads should between them contain every sound of their language. The
starter sets (phrase_lists/starter.json) were chosen from the bundled lists by
`python -m voxspace.devtools.starter_sets`, greedily, until each phoneme of the language appears at
least STARTER_REPEATS times; "the language's phonemes" are those espeak-ng finds at least
MIN_OCCURRENCES times across the whole bundled list (tests/test_phonemes.py checks the coverage
again with espeak-ng). Reading the stored file needs no espeak-ng: the Space does not ship it.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import unicodedata
from collections import Counter
from importlib import resources

from voxspace.errors import BadInput
from voxspace.settings import LANGUAGES

STARTER_FILE = "starter.json"
MIN_OCCURRENCES = 3  # a phoneme seen fewer times in ~150 everyday sentences is a loanword's or a name's
STARTER_REPEATS = 3  # each phoneme at least this often in the starter set
STARTER_MAX = 30  # phrases; ~2-3 minutes of reading
_MARKS = "',=%!"  # espeak-ng stress, syllable and glottal-onset marks, not sounds
_NOT_SOUNDS = set(";:|-")  # pause, length and link markers on their own


def _espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise BadInput("espeak-ng is not installed: it is needed to find the phonemes of a phrase.")
    return path


def phonemes(text: str, language: str) -> list[str]:
    """The phonemes espeak-ng reads in `text` (its own phoneme names, stress marks removed)."""
    return phonemes_of_lines([text], language)[0]


def phonemes_of_lines(lines: list[str], language: str) -> list[list[str]]:
    """phonemes() of many lines in one espeak-ng call.

    espeak-ng starts a new output line at every clause (commas, full stops, question marks), so
    punctuation is read as a space: then each input line, a paragraph of its own, gives exactly
    one output line.
    """
    if language not in LANGUAGES:
        raise BadInput(f"Unsupported language {language!r}. Choose one of: {', '.join(LANGUAGES)}.")
    text = "\n\n".join(_without_punctuation(line) for line in lines)
    out = subprocess.run(
        [_espeak(), "-q", "-x", "--sep=_", "-v", language],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    answered = [line for line in out.splitlines() if line.strip()]
    empty = [i for i, line in enumerate(lines) if not _without_punctuation(line).strip()]
    if empty or len(answered) != len(lines):  # cannot pair them up: ask for each line alone
        if len(lines) == 1:
            return [_tokens(out)]
        return [phonemes(line, language) for line in lines]
    return [_tokens(line) for line in answered]


def _without_punctuation(text: str) -> str:
    """Punctuation (Unicode category P*) as spaces; apostrophes and hyphens inside words stay."""
    keep = "'’-"
    return "".join(
        " " if unicodedata.category(c).startswith("P") and c not in keep else c
        for c in text.replace("\n", " ")
    )


def _tokens(espeak_output: str) -> list[str]:
    found = []
    for word in espeak_output.split():
        for token in word.split("_"):
            token = token.strip(_MARKS).rstrip("-")
            if token and not set(token) <= _NOT_SOUNDS and not token.startswith("("):  # "(en)": a switch
                found.append(token)
    return found


def inventory(per_line: list[list[str]]) -> set[str]:
    """The language's phonemes: those found at least MIN_OCCURRENCES times across the lines."""
    counts = Counter(p for line in per_line for p in line)
    return {p for p, n in counts.items() if n >= MIN_OCCURRENCES}


def balanced_selection(
    per_line: list[list[str]], wanted: set[str], *, repeats: int = STARTER_REPEATS, limit: int = STARTER_MAX
) -> list[int]:
    """Indices of lines chosen greedily until each wanted phoneme appears `repeats` times.

    Each pick is the line that fills the most missing phoneme occurrences per square root of its
    length (dense, short lines first); ties go to the earlier line, so the result is stable.
    """
    need = dict.fromkeys(wanted, repeats)
    chosen: list[int] = []
    while any(need.values()) and len(chosen) < limit:
        best, best_score = None, 0.0
        for i, line in enumerate(per_line):
            if i in chosen:
                continue
            counts = Counter(p for p in line if p in need)
            gain = sum(min(n, need[p]) for p, n in counts.items())
            score = gain / max(1, len(line)) ** 0.5
            if gain and score > best_score:
                best, best_score = i, score
        if best is None:
            break
        chosen.append(best)
        for p in per_line[best]:
            if need.get(p):
                need[p] -= 1
    return chosen


@functools.lru_cache(maxsize=1)
def _starter_file() -> dict[str, list[str]]:
    text = resources.files("voxspace.phrase_lists").joinpath(STARTER_FILE).read_text("utf-8")
    return json.loads(text)


def starter_ids(language: str) -> list[str]:
    """The bundled phrase ids to record first for `language` (empty if it has no starter set)."""
    return list(_starter_file().get(language, []))
