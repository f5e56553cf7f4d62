"""WER and CER on the held-out takes, for the base model and for the fine-tuned adapter.

    report = evaluate_run(model, processor, test_takes)      # model: a PeftModel
    report.wer_before, report.wer_after, report.per_take

Text is normalised first, so "Hello, world!" and "hello world" count as the same words: English
with transformers' EnglishTextNormalizer, every other language with Whisper's BasicTextNormalizer
changed to keep combining marks (the original turns each Devanagari vowel sign into a space, so
one Hindi word became several and misspelt vowels were not counted; openai/whisper#2849).

Generation stops at a token limit that follows each take's duration (`token_limit`), so a long
take is never cut and a short one cannot run on for long.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from voxspace.batching import (
    RESERVE_BYTES,
    RESERVE_SHARE,
    CudaMemory,
    MemoryMeter,
    takes_per_generate,
    token_budget,
)
from voxspace.data import Example, TranscriptionCollator
from voxspace.errors import BadInput, OutOfGPUMemory
from voxspace.layout import LocalTake
from voxspace.run_record import EvalReport, TakeResult

log = logging.getLogger(__name__)

# Generation limit: a margin plus a rate above the densest speech we expect. Fast English is ~3
# tokens/s of audio and Hindi ~4.5 with Voxtral's tokenizer (30 s: ~90 and ~130 tokens).
TOKENS_BASE = 32
TOKENS_PER_SECOND = 15


def token_limit(duration_s: float | None) -> int:
    """Tokens a transcript of `duration_s` seconds of speech may take (the demo uses the same rule).

    Without a duration (an example built by hand) a 30 s chunk is assumed.
    """
    import math

    seconds = 30.0 if duration_s is None or duration_s <= 0 else float(duration_s)
    return TOKENS_BASE + math.ceil(TOKENS_PER_SECOND * seconds)


def generation_limit(example: Example, cap: int | None = None) -> int:
    """`token_limit` of the take, and never fewer than its reference needs plus the margin, so a
    transcript as long as the reference is never cut, whatever the tokenizer. `cap` bounds it."""
    limit = max(token_limit(example.duration), example.n_labels + TOKENS_BASE)
    return limit if cap is None else max(1, min(limit, cap))


def _keep_marks(s: str) -> str:
    """Whisper's `remove_symbols`, except that combining marks (Unicode M*) are letters' parts, kept."""
    import unicodedata

    return "".join(" " if unicodedata.category(c)[0] in "SP" else c for c in unicodedata.normalize("NFKC", s))


def _normaliser(language: str | None) -> Any:
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer, EnglishTextNormalizer

    if language == "en":
        # The British->American spelling map ships with Whisper checkpoints, not with transformers;
        # for one speaker reading fixed prompts an empty map changes nothing that matters.
        return EnglishTextNormalizer({})
    norm = BasicTextNormalizer()
    norm.clean = _keep_marks
    return norm


def normalise(text: str, language: str | None) -> str:
    """Lower-case, strip punctuation and bracketed asides; keep every letter with its marks
    (and, for English, expand contractions and spell numbers)."""
    return " ".join(_normaliser(language)(text).split())


def error_rates(
    references: list[str], hypotheses: list[str], languages: list[str | None]
) -> tuple[float, float]:
    """(WER, CER) over the whole set after normalisation; empty references are skipped."""
    import jiwer

    pairs = [
        (normalise(r, lang), normalise(h, lang))
        for r, h, lang in zip(references, hypotheses, languages, strict=True)
    ]
    pairs = [(r, h) for r, h in pairs if r]
    if not pairs:
        return 0.0, 0.0
    refs, hyps = [p[0] for p in pairs], [p[1] for p in pairs]
    return float(jiwer.wer(refs, hyps)), float(jiwer.cer(refs, hyps))


@contextmanager
def adapter_disabled(model: Any) -> Iterator[None]:
    """Run the base model (a PeftModel with its adapter switched off, or a bare model)."""
    ctx = model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()
    with ctx:
        yield


def transcribe(
    model: Any,
    collator: TranscriptionCollator,
    examples: list[Example],
    *,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    cache: Any = None,
    memory: MemoryMeter | None = None,
    fit_to_memory: bool = True,
) -> list[str]:
    """Greedy transcripts of `examples`, generated in left-padded batches.

    A batch may generate the largest `generation_limit` of its takes; `max_new_tokens`, when given,
    caps that (tests keep a random model's babble short with it). On a GPU (or with a `memory`
    meter) the first batch holds `batch_size` takes and measures what a padded token costs; every
    later batch holds as many takes as the free memory allows, so a GPU transcribes the held-out
    takes in as few `generate` calls as fit. A batch that still runs out of memory is retried in
    halves. Elsewhere every batch holds `batch_size` takes.
    """
    import torch

    dev = next(model.parameters()).device
    if memory is None and fit_to_memory and dev.type == "cuda":
        memory = CudaMemory(dev)
    tower = next(_voxtral(model).model.audio_tower.parameters())
    model.eval()
    # length-sorted batches waste less padding and share a token limit; results go back in order
    pending = sorted(
        range(len(examples)), key=lambda i: (examples[i].prompt_len, examples[i].duration or 0.0)
    )
    prompts = {i: examples[i].prompt_len for i in pending}
    limits = {i: generation_limit(examples[i], max_new_tokens) for i in pending}
    texts: dict[int, str] = {}
    first, budget, calls = batch_size, None, 0  # budget: padded tokens per call, once measured
    while pending:
        if memory is None or budget is None:
            idx = pending[:first]
        else:
            idx = pending[
                : takes_per_generate([prompts[i] for i in pending], [limits[i] for i in pending], budget)
            ]
        limit = max(limits[i] for i in idx)
        padded = len(idx) * (max(prompts[i] for i in idx) + limit)
        try:
            if memory is not None and budget is None:
                memory.start_pass()
            batch = [examples[i] for i in idx]
            texts.update(
                zip(idx, _generate(model, collator, batch, limit, dev, tower.dtype, cache), strict=True)
            )
        except torch.OutOfMemoryError as error:
            if memory is None or len(idx) == 1:
                raise OutOfGPUMemory(
                    f"The GPU ran out of memory transcribing {len(idx)} held-out take(s) at once during "
                    "the evaluation: evaluate on a GPU with more memory.",
                    detail=str(error)[:200],
                ) from error
            memory.release()
            if budget is None:
                first = len(idx) // 2
            else:
                budget = (len(idx) // 2) * (padded // len(idx))
            log.info("out of memory with %d takes per generate call: retrying with fewer", len(idx))
            continue
        calls += 1
        if memory is not None and budget is None:
            reserve = RESERVE_BYTES + RESERVE_SHARE * memory.total_bytes()
            budget = token_budget(memory.free_bytes(), memory.pass_peak() / padded, reserve)
            memory.release()
        pending = pending[len(idx) :]
    log.info("transcribed %d take(s) in %d generate call(s)", len(examples), calls)
    return [texts[i] for i in range(len(examples))]


def _generate(
    model: Any,
    collator: TranscriptionCollator,
    batch: list[Example],
    limit: int,
    dev: Any,
    dtype: Any,
    cache: Any,
) -> list[str]:
    """One `generate` call: the transcripts of one batch of takes, in its order."""
    import torch

    inputs = collator.prompt_batch(batch)
    ids = inputs["input_ids"].to(dev)
    kw: dict[str, Any] = {"input_ids": ids, "attention_mask": inputs["attention_mask"].to(dev)}
    features = inputs["input_features"].to(dev, dtype)
    if cache is not None:
        kw["inputs_embeds"] = cache.inputs_embeds(
            model, {**inputs, "input_ids": ids, "input_features": features}
        )
    else:
        kw["input_features"] = features
    with torch.no_grad():
        generated = model.generate(
            **kw,
            max_new_tokens=limit,
            do_sample=False,
            pad_token_id=collator.pad_id,
            eos_token_id=collator.eos_id,
        )
    decoded = collator.tokenizer.batch_decode(generated[:, ids.shape[1] :], skip_special_tokens=True)
    return [t.strip() for t in decoded]


def _voxtral(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def evaluate_run(
    model: Any,
    processor: Any,
    takes: list[LocalTake],
    *,
    before: EvalReport | None = None,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    cache: Any = None,
    examples: list[Example] | None = None,
) -> EvalReport:
    """WER/CER of the base model (adapter disabled) and, if `model` has an adapter, of the adapter.

    Pass the `before` report of an earlier call to skip re-running the base model.
    """
    collator = TranscriptionCollator(processor)
    examples = examples or [collator.encode(t) for t in takes]
    from voxspace.model import precision_of

    precision = precision_of(model)
    if before is not None and (
        [r.take_id for r in before.per_take] != [t.take.take_id for t in takes]
        or before.base_precision != precision
    ):
        # measured on other takes or another copy of the base (a run from before takes were pinned
        # and evaluation used the served precision): compare like with like
        log.warning("the stored base-model report is for other takes or precision: measuring it again")
        before = None
    if before is None:
        with adapter_disabled(model):
            base_hyps = transcribe(
                model, collator, examples, batch_size=batch_size, max_new_tokens=max_new_tokens, cache=cache
            )
    else:
        base_hyps = [r.base for r in before.per_take]
    tuned = None
    if hasattr(model, "disable_adapter"):
        tuned = transcribe(
            model, collator, examples, batch_size=batch_size, max_new_tokens=max_new_tokens, cache=cache
        )
    return report_from(takes, base_hyps, tuned, base_precision=precision)


def report_from(
    takes: list[LocalTake],
    base_hyps: list[str],
    tuned_hyps: list[str] | None = None,
    *,
    base_precision: str | None = None,
) -> EvalReport:
    """The report for transcripts made elsewhere (e.g. across several ZeroGPU calls, voxspace.gpu_eval);
    `base_precision`: how the base model that made them was loaded."""
    refs = [t.take.text for t in takes]
    langs = [t.take.language or None for t in takes]
    wer_b, cer_b = error_rates(refs, base_hyps, langs)
    report = EvalReport(
        n_takes=len(takes),
        wer_before=wer_b,
        cer_before=cer_b,
        base_precision=base_precision,
        per_take=[TakeResult(t.take.take_id, t.take.text, h) for t, h in zip(takes, base_hyps, strict=True)],
    )
    if tuned_hyps is not None:
        report.wer_after, report.cer_after = error_rates(refs, tuned_hyps, langs)
        for row, hyp in zip(report.per_take, tuned_hyps, strict=True):
            row.finetuned = hyp
    return report


def check_adapter(adapter_dir: str | Path) -> Path:
    """An adapter folder as PeftModel.from_pretrained needs it (else one sentence, not a ValueError)."""
    folder = Path(adapter_dir).expanduser()
    if (folder / "adapter_config.json").is_file():
        return folder
    if (folder / "adapter" / "adapter_config.json").is_file():  # the run folder was given
        return folder / "adapter"
    what = "does not exist" if not folder.exists() else "holds no adapter_config.json"
    raise BadInput(
        f"The adapter folder {adapter_dir} {what}: give the adapter/ folder of a finished "
        "training run (e.g. runs/first/adapter)."
    )


def evaluate_adapter(
    base: tuple[Any, Any],
    test_takes: list[LocalTake],
    adapter_dir: str | Path | None,
    *,
    before: EvalReport | None = None,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    encoder_cache: bool = True,
    examples: list[Example] | None = None,
    cache_in: str | Path | None = None,
) -> EvalReport:
    """Before/after report for a saved adapter on a loaded base (the adapter is removed afterwards).

    `before` (the base model's report from before training) spares a second pass of the base model.
    With `encoder_cache` the audio encoder runs once per take for both passes, not twice.
    `examples`: the takes already encoded (Trainer.test_examples), so no GPU call extracts features.
    `cache_in`: a run folder: the encoder outputs are also kept on disk there, in the folder of this
    base's precision, so a later call (the "after" pass, the next GPU call) reads them instead of
    running the encoder again. An adapter with LoRA in the encoder reads only what lies below its
    adapted layers (the cache's keys carry that level), never the base's projector output.
    """
    from voxspace.encoder_cache import EncoderCache, run_cache_dir
    from voxspace.model import precision_of

    model, processor = base
    spill = run_cache_dir(cache_in, precision_of(model)) if cache_in is not None else None
    kw: dict[str, Any] = dict(
        before=before,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        cache=EncoderCache(spill_dir=spill, write_through=True) if encoder_cache else None,
        examples=examples,
    )
    if adapter_dir is None:
        return evaluate_run(model, processor, test_takes, **kw)
    from peft import PeftModel

    from voxspace.model import detach_lora

    tuned = PeftModel.from_pretrained(detach_lora(model), str(check_adapter(adapter_dir)))
    try:
        return evaluate_run(tuned, processor, test_takes, **kw)
    finally:
        tuned.unload()


def evaluate_run_dir(
    run_dir: str | Path, base: tuple[Any, Any], *, max_new_tokens: int | None = None
) -> EvalReport:
    """Evaluate a finished run's adapter on its held-out takes and store the report in summary.json."""
    from voxspace.run_record import ADAPTER_DIR, RunRecord
    from voxspace.train import Trainer

    record = RunRecord.load(Path(run_dir))
    trainer = Trainer(run_dir).prepare()  # the takes fetched for training (run.json)
    trainer.encode_examples(base[1], splits=("test",))  # cheap when the run stored them
    report = evaluate_adapter(
        base,
        trainer.test_takes,
        Path(run_dir) / ADAPTER_DIR,
        max_new_tokens=max_new_tokens,
        examples=trainer.test_examples(),
        cache_in=run_dir,
    )
    record.eval = report
    record.save(Path(run_dir))
    return report


def format_report(report: EvalReport) -> str:
    """A plain-text table: the numbers the UI and the CLI show."""

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    change = report.wer_relative_change
    lines = [
        f"held-out takes: {report.n_takes}",
        f"WER  before {pct(report.wer_before)}  after {pct(report.wer_after)}"
        + (f"  ({100 * change:+.0f}% relative)" if change is not None else ""),
        f"CER  before {pct(report.cer_before)}  after {pct(report.cer_after)}",
    ]
    if report.base_precision:
        lines.append(f"base model loaded in {report.base_precision}")
    if warning := report.not_better_sentence():
        lines.append(f"warning: {warning}")
    for row in report.per_take:
        lines.append(
            f"  {row.take_id}: ref={row.reference!r} base={row.base!r}"
            + (f" tuned={row.finetuned!r}" if row.finetuned is not None else "")
        )
    return "\n".join(lines)
