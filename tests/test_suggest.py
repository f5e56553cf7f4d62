"""Next phrases chosen from the model's errors: misrecognised words found by alignment, phrases
holding them ranked first, with a reason a person can read."""

from __future__ import annotations

import json

from voxspace.phrases import bundled, parse_custom
from voxspace.run_record import EvalReport, RunRecord, TakeResult
from voxspace.suggest import latest_evaluated_run, missed_words, rank_phrases


def report(*rows: TakeResult) -> EvalReport:
    return EvalReport(n_takes=len(rows), wer_before=0.5, cer_before=0.2, per_take=list(rows))


def test_missed_words_are_the_substituted_and_dropped_reference_words():
    r = report(
        TakeResult(
            "a", "Call Siobhan at the clinic", "call shivan at the clinic", "call shivan at the clinic"
        ),
        TakeResult("b", "Take metformin with water", "take met four min with water", "take with water"),
        TakeResult("c", "Open the door", "open a door", "open the door"),  # fixed by the adapter
        TakeResult("d", "Ring Siobhan", "ring siobhan", None),  # not evaluated after: the base counts
    )
    assert missed_words(r, "en") == {"siobhan": 1, "metformin": 1}


def test_a_phrase_with_a_misrecognised_word_ranks_first_with_why():
    r = report(
        TakeResult("a", "Call Siobhan at the clinic", "call siobhan at the clinic", "call shivan at a clinic")
    )
    missed = missed_words(r, "en")
    assert missed == {"siobhan": 1, "the": 1}
    own = parse_custom("Siobhan is coming at noon\nMy cat likes the sofa", "en")
    candidates = bundled("en") + own  # the bank, then the person's own phrases
    ranked = rank_phrases(candidates, missed, language="en")
    assert ranked[0].phrase == own[0] and ranked[0].words == ("siobhan",)
    assert "“siobhan” (missed in 1 held-out take)" in ranked[0].why
    # "the" is in most phrases: it counts, but far less than a word the model keeps getting wrong
    assert all("the" in s.words for s in ranked[1:]) and ranked[1].score < ranked[0].score / 3


def test_recorded_phrases_are_not_suggested_again_and_unrelated_ones_never():
    missed = missed_words(report(TakeResult("a", "Metformin twice a day", "met for min twice a day")), "en")
    own = parse_custom("Metformin at breakfast\nTake the metformin now\nA walk in the park", "en")
    ranked = rank_phrases(own, missed, language="en", done_ids=[own[0].phrase_id])
    assert [s.phrase for s in ranked] == [own[1]]
    assert rank_phrases(own, missed_words(report(), "en"), language="en") == []


def test_the_latest_evaluated_run_is_found_and_broken_summaries_are_skipped(tmp_path):
    assert latest_evaluated_run(tmp_path / "none") is None
    base = dict(base_model="b", dataset="d", config={}, languages=["en"])
    old = RunRecord(**base, eval=report(TakeResult("a", "one", "one", "won")))
    old.save(tmp_path / "run-1")
    RunRecord(**base).save(tmp_path / "run-2")  # not evaluated
    (tmp_path / "run-3").mkdir()
    (tmp_path / "run-3" / "summary.json").write_text("{not json")
    found = latest_evaluated_run(tmp_path)
    assert found is not None and found.eval.per_take[0].finetuned == "won"
    assert json.loads((tmp_path / "run-1" / "summary.json").read_text())["eval"]
