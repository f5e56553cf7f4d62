"""The arithmetic of bench/train_speed.py, kept apart so tests can check it without timing anything.

- `schedule`: the order variants run in. Every round runs each variant once; round r starts r places
  further along the asked-for list, so no variant is always first (cold caches, a warming GPU) or
  always last (a hotter, throttling card), and any drift during the process hits every variant.
- `Spread` / `combine`: medians over the rounds and how far the rounds disagreed.
- `ratio`: a variant against a reference, both from the same process (never from two runs).
- `run_budget`: a whole run's seconds split by where they go, projected from per-unit figures.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any


def schedule(names: list[str], repeats: int) -> list[tuple[int, str]]:
    """(round, variant) pairs: `repeats` rounds, each running every name once, rotated per round."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1 (got {repeats})")
    if len(set(names)) != len(names):
        raise ValueError(f"a variant is named twice in {names}")
    n = len(names)
    return [(r, names[(r + i) % n]) for r in range(repeats) for i in range(n)]


@dataclass(frozen=True)
class Spread:
    """Median of one figure over the rounds, its extremes, and `rel` = (max - min) / median."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if not vals:
            raise ValueError("no finite value to summarise")
        return cls(statistics.median(vals), min(vals), max(vals), len(vals))

    @property
    def rel(self) -> float:
        return (self.high - self.low) / abs(self.median) if self.median else 0.0

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "rel": round(self.rel, 4)}

    def cell(self, fmt: str = ".3f") -> str:
        """'0.324 ±6%': the median and half the range, relative to it (single rounds print bare)."""
        if self.n < 2:
            return format(self.median, fmt)
        return f"{format(self.median, fmt)} ±{50 * self.rel:.0f}%"


MEASURED = ("s_per_step", "cpu_s_per_step", "takes_per_s", "audio_s_per_s", "peak_mib",
            "epoch1_s", "setup_and_save_s", "save_s")  # fmt: skip


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from a variant's rounds: medians of the measured figures, their spreads, the failures.

    The row is ok when at least one round was; failed rounds stay listed with their reasons.
    """
    if not runs:
        raise ValueError("no rounds to combine")
    ok = [r for r in runs if r.get("ok")]
    row = {k: v for k, v in runs[0].items() if k not in (*MEASURED, "slices", "ok", "error", "round")}
    row["rounds"] = len(runs)
    row["rounds_ok"] = len(ok)
    errors = [
        f"round {r.get('round', '?')}: {r['error']}" for r in runs if not r.get("ok") and r.get("error")
    ]
    if errors:
        row["errors"] = errors
    if not ok:
        return {**row, "ok": False, "error": errors[0] if errors else "no round ran"}
    spreads = {k: Spread.of([r[k] for r in ok]) for k in MEASURED if all(k in r for r in ok)}
    row.update({k: s.median for k, s in spreads.items()})
    row["spread"] = {k: s.to_dict() for k, s in spreads.items()}
    row["step_share"] = [
        statistics.median(r["slices"][i]["step_share"] for r in ok) for i in range(len(ok[0]["slices"]))
    ]
    row["takes_per_pass"] = max(r.get("takes_per_pass", 0) for r in ok)
    row["ok"] = True
    return row


def projected_run_s(row: dict[str, Any], epochs: int) -> float:
    """Seconds of steps for `epochs` epochs: the first epoch as measured, later ones at the steady rate."""
    return row["epoch1_s"] + (epochs - 1) * row["steps_per_epoch"] * row["s_per_step"]


def ratio(
    row: dict[str, Any], ref: dict[str, Any], *, epochs: int, ref_epochs: int | None = None
) -> dict[str, float]:
    """`row` against `ref` (same process): > 1 is faster for takes/s and run, < 1 is less memory."""
    run, ref_run = projected_run_s(row, epochs), projected_run_s(ref, ref_epochs or epochs)
    return {
        "takes_per_s": round(row["takes_per_s"] / ref["takes_per_s"], 3),
        "run": round(ref_run / run, 3),
        "peak_mem": round(row["peak_mib"] / ref["peak_mib"], 3),
    }


# --- the whole run ------------------------------------------------------------------------------------
@dataclass
class UnitCosts:
    """Per-unit seconds measured by the bench; `run_budget` multiplies them out.

    mel_s_per_take: CPU mel-feature extraction of one take; encoder_s_per_take: the frozen audio
    encoder + projector on one take (once per run with the cache); s_per_step: a steady training step
    (encoder output cached); eval_*_s_per_take: generate for one held-out take, base and adapter;
    slice_setup_s: setup that every slice repeats (LoRA, optimizer, restore); save_s: one checkpoint.
    """

    mel_s_per_take: float
    encoder_s_per_take: float
    s_per_step: float
    step_size: int
    eval_before_s_per_take: float
    eval_after_s_per_take: float
    slice_setup_s: float
    save_s: float
    slice_budget_s: float = 110.0


def held_out(n_takes: int) -> int:
    """How many of a person's first `n_takes` takes are held out (voxspace.layout.split_for)."""
    from voxspace.layout import split_for

    return sum(split_for(i) == "test" for i in range(n_takes))


def run_budget(
    costs: UnitCosts, n_takes: int, epochs: int, *, eval_cap: int | None = None, features_on_gpu: bool = False
) -> dict[str, Any]:
    """Seconds of a whole run of `n_takes` recorded takes, split by where they go.

    Features are CPU seconds (off the GPU clock unless `features_on_gpu`); every other part is GPU
    time. Slices: steps are packed into `slice_budget_s` slices; each pays setup and one save.
    `eval_cap` evaluates at most that many held-out takes (None: all of them).
    """
    n_test = held_out(n_takes)
    n_eval = n_test if eval_cap is None else min(n_test, eval_cap)
    n_train = n_takes - n_test
    steps = math.ceil(n_train / costs.step_size) * epochs
    train_s = steps * costs.s_per_step
    encoder_s = n_train * costs.encoder_s_per_take
    slices = max(1, math.ceil((train_s + encoder_s) / costs.slice_budget_s))
    parts = {
        "features_cpu_s": (n_train + n_eval) * costs.mel_s_per_take,
        "encoder_s": encoder_s,
        "train_steps_s": train_s,
        "eval_before_s": n_eval * costs.eval_before_s_per_take,
        "eval_after_s": n_eval * costs.eval_after_s_per_take,
        "slice_setup_s": slices * costs.slice_setup_s,
        "checkpoint_saves_s": slices * costs.save_s,
    }
    gpu = sum(v for k, v in parts.items() if k != "features_cpu_s" or features_on_gpu)
    return {
        "takes": n_takes,
        "train_takes": n_train,
        "held_out": n_test,
        "evaluated": n_eval,
        "epochs": epochs,
        "steps": steps,
        "slices": slices,
        **{k: round(v, 1) for k, v in parts.items()},
        "gpu_s": round(gpu, 1),
    }


def format_budget(rows: list[dict[str, Any]]) -> str:
    """The whole-run table: one line per run size."""
    head = ["takes", "train/held-out/eval", "steps", "slices", "features(CPU)", "encoder", "train",
            "eval before", "eval after", "slice setup", "saves", "GPU s"]  # fmt: skip
    lines = [head]
    for b in rows:
        lines.append([
            str(b["takes"]), f"{b['train_takes']}/{b['held_out']}/{b['evaluated']}", str(b["steps"]),
            str(b["slices"]),
            *(f"{b[k]:.1f}" for k in ("features_cpu_s", "encoder_s", "train_steps_s", "eval_before_s",
                                      "eval_after_s", "slice_setup_s", "checkpoint_saves_s", "gpu_s")),
        ])  # fmt: skip
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in lines)
