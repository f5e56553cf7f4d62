"""Phrase lists: bundled ones are complete and readable; custom ones are parsed safely and stably."""

import re

import pytest

from voxspace.errors import BadInput
from voxspace.phrases import Phrase, bundled, custom_id, next_phrase, parse_custom
from voxspace.settings import LANGUAGES


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_150_readable_unique_phrases(language):
    phrases = bundled(language)
    assert len(phrases) >= 150
    assert all(3 <= len(p.text.split()) <= 15 for p in phrases)
    assert len({p.text.casefold() for p in phrases}) == len(phrases)
    assert len({p.phrase_id for p in phrases}) == len(phrases)
    assert phrases[0].phrase_id == f"{language}-0001"
    assert all(p.language == language and p.text == p.text.strip() for p in phrases)
    assert not any(re.search(r"\d", p.text) for p in phrases)  # numbers are written as read


def test_hindi_is_written_in_devanagari():
    for p in bundled("hi"):
        letters = [c for c in p.text if c.isalpha()]
        assert sum("\u0900" <= c <= "\u097f" for c in letters) / len(letters) > 0.9, p.text


def test_bundled_ids_are_stable_across_calls():
    assert bundled("en") == bundled("en")
    assert bundled("fr")[41] == Phrase("fr-0042", bundled("fr")[41].text, "fr")


def test_unknown_language_is_refused():
    with pytest.raises(BadInput, match="Unsupported language"):
        bundled("xx")
    with pytest.raises(BadInput):
        parse_custom("hello there friend", "klingon")


def test_custom_lines_skip_blanks_comments_and_repeats():
    text = "# my words\n\nMetformin five hundred milligrams\n  metformin   FIVE hundred milligrams \n" \
           "Call Siobhan at the clinic\r\n"
    phrases = parse_custom(text, "en")
    assert [p.text for p in phrases] == ["Metformin five hundred milligrams", "Call Siobhan at the clinic"]
    assert all(re.fullmatch(r"custom-[0-9a-f]{8}", p.phrase_id) for p in phrases)


def test_custom_ids_are_stable_per_text_and_ignore_spacing():
    a = parse_custom("Ring Dr. Okafor tomorrow", "en")[0]
    b = parse_custom(b"\xef\xbb\xbfRing  Dr. Okafor tomorrow\n", "")[0]  # utf-8 BOM from Notepad
    assert a.phrase_id == b.phrase_id == custom_id("Ring Dr. Okafor tomorrow")
    assert b.language == ""
    assert parse_custom("Ring Dr. Okafor today", "en")[0].phrase_id != a.phrase_id


def test_custom_non_latin_scripts_round_trip():
    phrases = parse_custom("मेरा नाम अर्जुन है\nजयपुर जाने वाली ट्रेन कब है".encode(), "hi")
    assert phrases[0].text == "मेरा नाम अर्जुन है" and len(phrases) == 2


def test_custom_line_over_30_words_names_the_line():
    with pytest.raises(BadInput, match="Line 2 has 31 words"):
        parse_custom("fine line here\n" + " ".join(["word"] * 31), "en")


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"\xff\xfe\xfa\xfb bad",
                                     "text with a \x07 bell", "\x1b[31mred\x1b[0m", "a C1 \x9b code"])
def test_binary_content_is_refused(content):
    with pytest.raises(BadInput, match=r"not (plain|UTF-8) text"):
        parse_custom(content, "en")


def test_nothing_but_comments_is_refused():
    with pytest.raises(BadInput, match="No phrases found"):
        parse_custom("# only a comment\n\n   \n", "en")


def test_next_phrase_skips_done_and_returns_skipped_last():
    phrases = bundled("en")[:3]
    a, b, c = (p.phrase_id for p in phrases)
    assert next_phrase(phrases, []) == phrases[0]
    assert next_phrase(phrases, [a]) == phrases[1]
    assert next_phrase(phrases, [a], skipped_ids=[b]) == phrases[2]
    assert next_phrase(phrases, [a, c], skipped_ids=[b]) == phrases[1]
    assert next_phrase(phrases, [a, b, c]) is None


def test_two_pages_of_one_person_never_get_the_same_phrase(hub_settings):
    """Issue 16: two browser tabs recorded the same phrase twice."""
    import dataclasses

    from voxspace.auth import Identity
    from voxspace.phrases import PhraseClaims
    from voxspace.ui.session import Session

    claims = PhraseClaims(ttl_s=60)
    alice = Identity("alice", "t", "oauth")
    space = dataclasses.replace(hub_settings, space_id="tests/voxspace")
    tab1, tab2, bob = (Session(settings=space, identity=who, store=None, claims=claims)
                       for who in (alice, alice, Identity("bob", "t", "oauth")))
    first, second = tab1.advance(set()), tab2.advance(set())
    assert first is not None and second is not None and first != second
    assert bob.advance(set()) == first  # another person is not held back by alice's tabs
    done = {first.phrase_id}  # tab 1 saves its phrase and moves on: still never tab 2's
    assert tab1.advance(done) not in (first, second)
    tab2.release()  # tab 2 closed: its phrase is free again
    assert tab1.advance(done) == second

    anon1, anon2 = (Session(settings=space, identity=Identity(None), store=None, claims=claims)
                    for _ in range(2))
    assert anon1.advance(set()) == anon2.advance(set()) == first  # anonymous visitors claim nothing

    stale = PhraseClaims(ttl_s=-1.0)  # a page that stopped renewing its claim (closed without notice)
    t1, t2 = (Session(settings=space, identity=alice, store=None, claims=stale) for _ in range(2))
    assert t1.advance(set()) == t2.advance(set())
