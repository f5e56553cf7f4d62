"""The phoneme-balanced starter sets, checked again with espeak-ng: every phoneme of the language is
in them, and each language's distinctive sounds too (a curated list, independent of the generator)."""

from collections import Counter

import pytest

from voxspace.errors import BadInput
from voxspace.phonemes import (
    STARTER_MAX,
    STARTER_REPEATS,
    balanced_selection,
    inventory,
    phonemes,
    phonemes_of_lines,
    starter_ids,
)
from voxspace.phrases import bundled, next_phrase, reading_order
from voxspace.settings import LANGUAGES

# Sounds each language's starter set must hold, in espeak-ng's phoneme names (checked by ear against
# espeak-ng -x): e.g. English "th" in thin/this, "zh" in measure, "ng"; French nasal vowels.
DISTINCTIVE = {
    "en": {"T", "D", "S", "Z", "tS", "dZ", "N", "OI", "aU", "r", "w"},
    "es": {"T", "x", "n^", "tS", "r", "R2"},
    "fr": {"O~", "E~", "A~", "y", "Z", "S", "W", "r"},
    "pt": {"&~", "l^", "n^", "Z", "S", "R"},
    "hi": {"b#", "d.", "t.", "k#", "n.", "c#"},
    "de": {"x", "C", "OY", "ts", "Y:", "y:", "S"},
    "nl": {"x", "Wy", "EI", "Y:", "y", "8"},
    "it": {"tS", "dZ", "l^", "n^", "ts"},
}


@pytest.fixture(scope="module")
def spoken():
    """language -> (bundled phrases, their phonemes), one espeak-ng call per language."""
    out = {}
    for language in LANGUAGES:
        phrases = bundled(language)
        out[language] = phrases, phonemes_of_lines([p.text for p in phrases], language)
    return out


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_starter_set_covers_the_languages_phonemes(spoken, language):
    phrases, per_line = spoken[language]
    ids = starter_ids(language)
    assert 5 <= len(ids) <= STARTER_MAX and len(set(ids)) == len(ids)
    index = {p.phrase_id: i for i, p in enumerate(phrases)}
    assert all(i in index for i in ids)
    counts = Counter(p for i in ids for p in per_line[index[i]])
    language_phonemes = inventory(per_line)
    assert len(language_phonemes) >= 30  # a real inventory, not a handful of letters
    assert {p for p in language_phonemes if counts[p] < STARTER_REPEATS} == set()
    assert DISTINCTIVE[language] <= language_phonemes and DISTINCTIVE[language] <= set(counts)


@pytest.mark.parametrize("language", LANGUAGES)
def test_phrases_are_offered_starter_set_first_with_unchanged_ids(language):
    order = reading_order(language)
    ids = starter_ids(language)
    assert [p.phrase_id for p in order[: len(ids)]] == ids
    assert sorted(order, key=lambda p: p.phrase_id) == bundled(language)  # the same phrases, same ids
    assert next_phrase(order, []).phrase_id == ids[0]
    assert next_phrase(order, ids).phrase_id not in ids


def test_one_phrase_gives_its_phonemes_without_stress_marks():
    assert phonemes("measure the boy's joy", "en") == [
        "m",
        "E",
        "Z",
        "3",
        "D",
        "@",
        "b",
        "OI",
        "z",
        "dZ",
        "OI",
    ]
    with pytest.raises(BadInput, match="Unsupported language"):
        phonemes("hello", "xx")


def test_the_selection_prefers_short_lines_with_missing_sounds_and_stops_when_covered():
    per_line = [["a", "b"], ["a", "a", "c"], ["c", "d", "d"], ["b", "d"]]
    # [a b] fills 2 per sqrt(2 sounds) (ties with [b d]: the earlier wins), then [c d d] fills c and d
    assert balanced_selection(per_line, {"a", "b", "c", "d"}, repeats=1) == [0, 2]
    chosen = balanced_selection(per_line, {"a", "b", "c", "d"}, repeats=2)
    counts = Counter(p for i in chosen for p in per_line[i])
    assert all(counts[p] >= 2 for p in "abcd")
    assert balanced_selection(per_line, {"z"}, repeats=1) == []  # a sound no line has: nothing to add


def test_many_lines_in_one_call_pair_up_with_one_line_at_a_time():
    lines = ["Good morning, how did you sleep?", "Fine. And you?", "...", "Measure it; then stop!"]
    assert phonemes_of_lines(lines, "en") == [phonemes(line, "en") for line in lines]
    assert phonemes_of_lines(lines, "en")[2] == []
