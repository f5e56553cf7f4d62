"""The next phrases for this person: the ones holding the words the model still gets wrong.

    missed = missed_words(record.eval, language="en")     # Counter of misrecognised words
    for s in rank_phrases(candidates, missed, language="en"):
        print(s.phrase.text, "-", s.why)

After a run, the held-out takes show which words the fine-tuned model (or, before any adapter, the
base model) substitutes or drops. Phrases that contain those words, from the bundled bank and from
the person's own list, are the ones worth recording next (issue 15: the model's errors, not a fixed
order, choose what is read). Words are compared after the evaluation's own normalisation.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from voxspace.evaluate import normalise
from voxspace.phrases import Phrase
from voxspace.run_record import SUMMARY, EvalReport, RunRecord

SHOWN = 5  # suggestions on the Record tab


@dataclass(frozen=True)
class Suggestion:
    phrase: Phrase
    words: tuple[str, ...]  # the misrecognised words it contains, the weightiest first
    score: float  # sum over those words of (times missed x rarity among the candidates)
    why: str


def missed_words(report: EvalReport, language: str | None) -> Counter[str]:
    """Reference words substituted or deleted in the held-out transcripts, once per take they were
    missed in. Uses the fine-tuned transcript where there is one, else the base model's."""
    import jiwer

    missed: Counter[str] = Counter()
    for row in report.per_take:
        ref = normalise(row.reference, language)
        hyp = normalise(row.finetuned if row.finetuned is not None else row.base, language)
        if not ref:
            continue
        out = jiwer.process_words(ref, hyp or "")
        words = out.references[0]
        wrong = {
            w
            for chunk in out.alignments[0]
            if chunk.type in ("substitute", "delete")
            for w in words[chunk.ref_start_idx : chunk.ref_end_idx]
        }
        missed.update(wrong)
    return missed


def rank_phrases(
    candidates: Iterable[Phrase],
    missed: Counter[str],
    *,
    language: str | None,
    done_ids: Iterable[str] = (),
    limit: int = SHOWN,
) -> list[Suggestion]:
    """Phrases not yet recorded that contain misrecognised words, best first.

    Each missed word weighs (times missed) x log(1 + candidates / candidates containing it): a name
    or a term the model keeps getting wrong outweighs "the", which nearly every phrase holds. Ties go
    to more distinct missed words, then the shorter phrase, then the candidates' own order.
    """
    done = set(done_ids)
    unique: dict[str, tuple[Phrase, set[str]]] = {}
    for phrase in candidates:
        if phrase.phrase_id not in unique:
            unique[phrase.phrase_id] = (
                phrase,
                set(normalise(phrase.text, language or phrase.language).split()),
            )
    df = Counter(w for _, words in unique.values() for w in words)
    n = len(unique)

    def weight(w: str) -> float:
        return missed[w] * math.log(1 + n / max(1, df[w]))

    scored = []
    for order, (phrase, words) in enumerate(unique.values()):
        hits = tuple(sorted((w for w in words if missed[w]), key=lambda w: (-weight(w), w)))
        if phrase.phrase_id in done or not hits:
            continue
        score = sum(weight(w) for w in hits)
        scored.append(
            ((-score, -len(hits), len(words), order), Suggestion(phrase, hits, score, _why(hits, missed)))
        )
    scored.sort(key=lambda item: item[0])
    return [s for _, s in scored[:limit]]


def _why(hits: tuple[str, ...], missed: Counter[str]) -> str:
    parts = [f"“{w}” (missed in {missed[w]} held-out take{'s' if missed[w] > 1 else ''})" for w in hits[:3]]
    more = f" and {len(hits) - 3} more" if len(hits) > 3 else ""
    return "The model still gets " + ", ".join(parts) + more + " wrong."


def latest_evaluated_run(runs_root: Path) -> RunRecord | None:
    """The most recently written run summary under `runs_root` that has held-out results."""
    if not runs_root.is_dir():
        return None
    summaries = sorted(runs_root.glob(f"*/{SUMMARY}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in summaries:
        try:
            record = RunRecord.load(path.parent)
        except (OSError, ValueError, TypeError, KeyError):  # a half-written or foreign file: skip it
            continue
        if record.eval is not None and record.eval.per_take:
            return record
    return None
