"""Pick the acoustic option without guessing: the same short run with and without it, both WERs
on the held-out takes, the better one kept (issue 15 item 2).

    result = compare_encoder_option(settings, identity, data=repo, config=TrainConfig.quick(),
                                    root=runs_root, on_line=print)
    result.kept, result.wer_without, result.wer_with

Both runs go through voxspace.run_service, exactly as the Train tab's Start: same queue, slices,
checkpoints and evaluation. The second run reuses the first one's base-model measurement (it is
stored in its summary before it starts), so the base model is evaluated once. The run not kept is
deleted, so the Publish tab offers only the better one; comparison.json in the kept run says what
was compared.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from voxspace import atomic_file, run_service
from voxspace.auth import Identity
from voxspace.errors import NotEnoughTakes
from voxspace.run_record import EvalReport, RunRecord
from voxspace.settings import Settings
from voxspace.train import ACOUSTIC_LAYERS, TrainConfig

COMPARE_EPOCHS = 2  # "quick and cheap": enough to tell the options apart, not a finished model
MIN_HELD_OUT = 4  # fewer held-out takes cannot tell two short runs apart
COMPARISON_FILE = "comparison.json"


@dataclass
class Comparison:
    """What was compared and what was kept; WERs are None for a run that did not finish."""

    wer_before: float | None
    wer_without: float | None
    wer_with: float | None
    layers: int
    kept: str | None  # the run folder kept (None when neither finished)
    kept_acoustic: bool
    stopped: str | None = None  # why the comparison stopped early, in a sentence

    def sentence(self) -> str:
        if self.stopped:
            return self.stopped

        def pct(x: float | None) -> str:
            return "-" if x is None else f"{100 * x:.1f}%"

        choice = "with" if self.kept_acoustic else "without"
        return (
            f"Word error rate on your held-out takes: base model {pct(self.wer_before)}, "
            f"without acoustic adaptation {pct(self.wer_without)}, with it {pct(self.wer_with)}. "
            f"Kept the run {choice} it."
        )


def enough_held_out(n_test_takes: int) -> bool:
    return n_test_takes >= MIN_HELD_OUT


def compare_encoder_option(
    settings: Settings,
    identity: Identity,
    *,
    data: str | Path,
    config: TrainConfig,
    root: Path,
    name: str = "compare",
    layers: int = ACOUSTIC_LAYERS,
    sliced: bool | None = None,
    max_new_tokens: int | None = None,
    on_line: Callable[[str], None] | None = None,
) -> Comparison:
    """Train `config` shortened to COMPARE_EPOCHS twice (adapt_encoder 0, then `layers`), in
    `root`/`name`-without and -acoustic; evaluate both; keep the one with the lower WER (a tie keeps
    the cheaper one, without)."""
    say = on_line or (lambda _line: None)
    short = replace(config, epochs=min(config.epochs, COMPARE_EPOCHS))
    without_dir, with_dir = root / f"{name}-without", root / f"{name}-acoustic"
    for d in (without_dir, with_dir):
        shutil.rmtree(d, ignore_errors=True)  # an earlier comparison that was stopped
    runs = [(without_dir, replace(short, adapt_encoder=0)), (with_dir, replace(short, adapt_encoder=layers))]
    reports: list[EvalReport | None] = []
    for i, (run_dir, cfg) in enumerate(runs):
        label = "without" if i == 0 else "with"
        say(f"Comparison: run {i + 1} of 2, {label} acoustic adaptation.")
        if i == 1 and reports[0] is not None:  # the base model's numbers are the same: measured once
            base_only = replace(
                reports[0],
                wer_after=None,
                cer_after=None,
                per_take=[replace(r, finetuned=None) for r in reports[0].per_take],
            )
            RunRecord(
                base_model=settings.base_model, dataset=str(data), config=cfg.to_dict(), eval=base_only
            ).save(run_dir)
        handle = run_service.start_run(
            settings,
            identity,
            run_dir=run_dir,
            data=data,
            config=cfg,
            sliced=sliced,
            evaluate=True,
            max_new_tokens=max_new_tokens,
        )
        if i == 0 and not enough_held_out(len(handle.trainer.test_takes)):
            run_service.cancel(handle)
            run_service.wait(handle)
            shutil.rmtree(run_dir, ignore_errors=True)
            raise NotEnoughTakes(
                f"A comparison needs at least {MIN_HELD_OUT} held-out takes to tell the two apart; you have "
                f"{len(handle.trainer.test_takes)}. Record more takes (about 1 in 8 is held out), or choose "
                "the option yourself."
            )
        final = run_service.wait(handle, on_line=say)
        if final.phase != "done" or final.eval is None or final.eval.wer_after is None:
            return Comparison(
                wer_before=reports[0].wer_before if reports and reports[0] else None,
                wer_without=reports[0].wer_after if reports and reports[0] else None,
                wer_with=None,
                layers=layers,
                kept=str(without_dir) if reports else None,
                kept_acoustic=False,
                stopped=f"The comparison stopped during the run {label} acoustic adaptation ({final.phase}).",
            )
        reports.append(final.eval)
    without, acoustic = reports
    keep_acoustic = acoustic.wer_after < without.wer_after
    kept, dropped = (with_dir, without_dir) if keep_acoustic else (without_dir, with_dir)
    result = Comparison(
        wer_before=without.wer_before,
        wer_without=without.wer_after,
        wer_with=acoustic.wer_after,
        layers=layers,
        kept=str(kept),
        kept_acoustic=keep_acoustic,
    )
    shutil.rmtree(dropped, ignore_errors=True)
    atomic_file.write_json(kept / COMPARISON_FILE, asdict(result))
    say(result.sentence())
    return result
