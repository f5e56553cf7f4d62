"""Evaluation in GPU calls sized to fit: the held-out takes are transcribed across as many calls as needed.

    before = evaluate_in_slices(run_dir, None, cap_s=120)     # the base model
    after = evaluate_in_slices(run_dir, before, cap_s=120)    # the adapter, against `before`

One ZeroGPU call may last `cap_s` at most, and 65 held-out takes of 30 s do not fit one. Each call
transcribes as many takes as its duration allows, sized from the seconds per take the previous call
measured (a planning figure before the first), and its transcripts are written to
run_dir/eval_parts/ at once: a quota that runs out halfway, or a restart, loses nothing, and the
next attempt transcribes only the takes still missing. WER and CER are computed over all takes at
the end, on the CPU, exactly as a one-call evaluation computes them.

No GPU call extracts features or runs the audio encoder twice for a take: the held-out takes' mel
features are the ones the run stored on the CPU (voxspace.features; encoded here, on the CPU, if
they are missing), and each take's encoder output is kept in the run's encoder cache for the served
precision (voxspace.encoder_cache.run_cache_dir), so the "after" pass and every later call read it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from voxspace import atomic_file, gpu
from voxspace.errors import TrainError
from voxspace.run_record import ADAPTER_DIR, EvalReport

EVAL_PARTS = "eval_parts"
FIRST_S_PER_TAKE = 2.0  # GPU seconds to transcribe one take, before a call has measured it
CALL_OVERHEAD_S = gpu.FIRST_SLICE_OVERHEAD_S  # worker start, adapter load, the first generate's warm-up
MARGIN = 1.5  # a call is planned for 1.5x the measured time per take: generation length varies


@dataclass
class Transcripts:
    """What one GPU call sends back (small and picklable): take id -> text, and the seconds it took."""

    texts: dict[str, str]
    seconds: float


def plan_call(cap_s: float, missing: int, s_per_take: float | None) -> tuple[int, int]:
    """(takes for the next call, GPU duration to ask for): as many takes as fit `cap_s`, at least one."""
    per_take = (s_per_take or FIRST_S_PER_TAKE) * MARGIN
    n = max(1, min(missing, int((cap_s - CALL_OVERHEAD_S) / per_take)))
    return n, int(min(cap_s, math.ceil(CALL_OVERHEAD_S + n * per_take)))


def _duration(
    run_dir: str,
    take_ids: list[str],
    base_texts: dict[str, str] | None,
    max_new_tokens: int | None,
    duration_s: int,
) -> int:
    return duration_s


@gpu.gpu_task(duration=_duration)
def transcribe_on_gpu(
    run_dir: str,
    take_ids: list[str],
    base_texts: dict[str, str] | None,
    max_new_tokens: int | None,
    duration_s: int,
) -> Transcripts:
    """One GPU call: the base model's transcripts of `take_ids` (`base_texts` None), or the adapter's."""
    from voxspace.evaluate import evaluate_adapter, report_from
    from voxspace.model import precision_of, served_config
    from voxspace.train import Trainer

    trainer = Trainer(run_dir)
    wanted = set(take_ids)
    test_takes = trainer.prepare().test_takes
    stored = trainer.test_examples()  # features computed on the CPU before the call (evaluate_in_slices)
    if stored is None:  # never extracted here, on the GPU clock
        raise TrainError(
            "The held-out takes were not prepared for the evaluation: start the evaluation again.",
            detail=f"{run_dir}: no current stored held-out features",
        )
    keep = [i for i, t in enumerate(test_takes) if t.take.take_id in wanted]
    takes = [test_takes[i] for i in keep]
    examples = [stored[i] for i in keep]
    base = gpu.preload_base(served_config(trainer.model_cfg))  # the base as the demo serves it
    started = time.monotonic()
    if base_texts is None:
        report = evaluate_adapter(
            base, takes, None, max_new_tokens=max_new_tokens, examples=examples, cache_in=run_dir
        )
        texts = {r.take_id: r.base for r in report.per_take}
    else:  # the base model's transcripts are known: only the adapter runs
        known = [base_texts[t.take.take_id] for t in takes]
        before = report_from(takes, known, base_precision=precision_of(base[0]))
        report = evaluate_adapter(
            base,
            takes,
            Path(run_dir) / ADAPTER_DIR,
            before=before,
            max_new_tokens=max_new_tokens,
            examples=examples,
            cache_in=run_dir,
        )
        texts = {r.take_id: r.finetuned or "" for r in report.per_take}
    return Transcripts(texts, time.monotonic() - started)


def evaluate_in_slices(
    run_dir: str | Path,
    before: EvalReport | None,
    *,
    cap_s: float,
    max_new_tokens: int | None = None,
    on_call: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """The base model's report (`before` None) or the adapter's against `before`; `on_call(done, of)`
    after each GPU call."""
    from voxspace.evaluate import report_from
    from voxspace.model import served_config
    from voxspace.train import Trainer

    run_dir = Path(run_dir)
    trainer = Trainer(run_dir)
    takes = trainer.prepare().test_takes
    trainer.encode_examples(splits=("test",))  # on the CPU, before any call; cheap when stored
    served = served_config(trainer.model_cfg).precision
    # a stored base report made with another copy of the base is measured again (like with like)
    reuse = before is not None and before.base_precision == served
    known = {r.take_id: r.base for r in before.per_take} if reuse else {}
    base = _transcripts(
        run_dir, "before", [t.take.take_id for t in takes], cap_s, max_new_tokens, known, on_call
    )
    if before is None:
        return report_from(takes, base, base_precision=served)
    base_texts = dict(zip([t.take.take_id for t in takes], base, strict=True))
    tuned = _transcripts(run_dir, "after", list(base_texts), cap_s, max_new_tokens, {}, on_call, base_texts)
    return report_from(takes, base, tuned, base_precision=served)


def _transcripts(
    run_dir: Path,
    which: str,
    ids: list[str],
    cap_s: float,
    max_new_tokens: int | None,
    known: dict[str, str],
    on_call: Callable[[int, int], None] | None,
    base_texts: dict[str, str] | None = None,
) -> list[str]:
    """Transcripts of `ids` (`known` ones and those saved by earlier calls are not made again)."""
    part = run_dir / EVAL_PARTS / f"{which}.json"
    saved = json.loads(part.read_text()) if part.is_file() else {}
    texts, s_per_take = {**saved.get("texts", {}), **known}, saved.get("s_per_take")
    while missing := [i for i in ids if i not in texts]:
        n, duration = plan_call(cap_s, len(missing), s_per_take)
        got = transcribe_on_gpu(str(run_dir), missing[:n], base_texts, max_new_tokens, duration)
        texts.update(got.texts)
        s_per_take = got.seconds / n
        part.parent.mkdir(parents=True, exist_ok=True)
        # saved before the next call: a refusal there loses nothing
        atomic_file.write_json(part, {"texts": texts, "s_per_take": s_per_take}, indent=None)
        if on_call is not None:
            on_call(sum(i in texts for i in ids), len(ids))
    return [texts[i] for i in ids]
