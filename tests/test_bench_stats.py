"""voxspace.devtools.bench_stats: the bench's order of runs, medians and spreads, ratios and the
whole-run budget. Arithmetic only: nothing here times anything."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from voxspace.devtools.bench_stats import (
    Spread,
    UnitCosts,
    combine,
    format_budget,
    held_out,
    projected_run_s,
    ratio,
    run_budget,
    schedule,
)
from voxspace.layout import split_for


def test_schedule_runs_every_variant_once_per_round_and_rotates_who_goes_first():
    names = ["upstream", "default", "-8bit"]
    order = schedule(names, 3)
    assert [n for r, n in order if r == 0] == names  # the first round keeps the order asked for
    for r in range(3):
        assert sorted(n for rr, n in order if rr == r) == sorted(names)
    rounds = [[n for rr, n in order if rr == r] for r in range(3)]
    assert [rnd[0] for rnd in rounds] == ["upstream", "default", "-8bit"]
    # over as many rounds as variants, each variant holds every position exactly once
    positions = Counter((rnd.index(n), n) for rnd in rounds for n in rnd)
    assert set(positions.values()) == {1} and len(positions) == 9
    assert [r for r, _ in order] == sorted(r for r, _ in order)  # rounds never overlap


def test_schedule_keeps_a_custom_order_and_refuses_nonsense():
    assert schedule(["-encoder_cache", "default"], 1) == [(0, "-encoder_cache"), (0, "default")]
    with pytest.raises(ValueError, match="at least 1"):
        schedule(["default"], 0)
    with pytest.raises(ValueError, match="twice"):
        schedule(["default", "default"], 2)


def test_spread_is_median_and_range_and_skips_missing_values():
    s = Spread.of([0.5, 0.3, 0.4, None, math.nan])
    assert (s.median, s.low, s.high, s.n) == (0.4, 0.3, 0.5, 3)
    assert s.rel == pytest.approx(0.2 / 0.4)
    assert s.cell() == "0.400 ±25%"  # half the range, relative to the median
    assert Spread.of([2.0]).cell(".1f") == "2.0"  # one round: no spread to show
    assert Spread.of([1.0, 3.0]).median == 2.0
    with pytest.raises(ValueError):
        Spread.of([None, math.inf])


def _round(r: int, s_per_step: float, ok: bool = True) -> dict:
    row = {"name": "default", "config": {"precision": "8bit"}, "steps_per_epoch": 4, "round": r, "ok": ok}
    if not ok:
        return {**row, "error": "OutOfMemoryError: no"}
    return {
        **row,
        "s_per_step": s_per_step,
        "cpu_s_per_step": s_per_step / 2,
        "takes_per_s": 4 / s_per_step,
        "audio_s_per_s": 20 / s_per_step,
        "peak_mib": 1000.0 + r,
        "epoch1_s": 4 * s_per_step + 1,
        "setup_and_save_s": 1.0,
        "save_s": 0.2,
        "takes_per_pass": 4 - r,
        "slices": [{"step_share": 0.5 + r / 10}, {"step_share": 0.9}],
    }


def test_combine_takes_medians_over_the_rounds_and_keeps_failures():
    row = combine([_round(0, 0.5), _round(1, 0.3), _round(2, 0.4, ok=False)])
    assert row["ok"] and row["rounds"] == 3 and row["rounds_ok"] == 2
    assert row["s_per_step"] == pytest.approx(0.4) and row["peak_mib"] == 1000.5
    assert row["spread"]["s_per_step"]["low"] == 0.3 and row["spread"]["s_per_step"]["high"] == 0.5
    assert row["step_share"] == [pytest.approx(0.55), 0.9]
    assert row["takes_per_pass"] == 4
    assert row["errors"] == ["round 2: OutOfMemoryError: no"]
    assert "round" not in row and "slices" not in row


def test_combine_of_failed_rounds_only_is_a_failed_row():
    row = combine([_round(0, 0, ok=False), _round(1, 0, ok=False)])
    assert not row["ok"] and row["error"].startswith("round 0:") and row["rounds_ok"] == 0
    with pytest.raises(ValueError):
        combine([])


def test_ratios_come_from_the_two_rows_given_at_the_epochs_given():
    fast, slow = combine([_round(0, 0.25)]), combine([_round(0, 1.0)])
    assert projected_run_s(fast, 5) == pytest.approx(2.0 + 4 * 4 * 0.25)
    x = ratio(fast, slow, epochs=5)
    assert x["takes_per_s"] == pytest.approx(4.0)
    assert x["run"] == pytest.approx(projected_run_s(slow, 5) / projected_run_s(fast, 5), rel=1e-3)
    assert x["peak_mem"] == 1.0
    shipped = ratio(slow, slow, epochs=3, ref_epochs=5)  # the same recipe at 3 epochs against 5
    assert shipped["run"] == pytest.approx(projected_run_s(slow, 5) / projected_run_s(slow, 3), rel=1e-3)


COSTS = UnitCosts(
    mel_s_per_take=0.04,
    encoder_s_per_take=0.05,
    s_per_step=0.3,
    step_size=4,
    eval_before_s_per_take=0.5,
    eval_after_s_per_take=0.2,
    slice_setup_s=2.0,
    save_s=1.0,
    slice_budget_s=100.0,
)


def test_held_out_counts_the_takes_the_recorder_marks_for_test():
    for n in (0, 1, 12, 50, 500):
        assert held_out(n) == [split_for(i) for i in range(n)].count("test")


def test_run_budget_adds_up_and_keeps_cpu_features_off_the_gpu_clock():
    b = run_budget(COSTS, 500, 5)
    n_test = held_out(500)
    assert (b["train_takes"], b["held_out"], b["evaluated"]) == (500 - n_test, n_test, n_test)
    assert b["steps"] == math.ceil(b["train_takes"] / 4) * 5
    assert b["train_steps_s"] == pytest.approx(b["steps"] * 0.3, abs=0.05)
    assert b["slices"] == math.ceil((b["train_steps_s"] + b["encoder_s"]) / 100.0)
    assert b["slice_setup_s"] == pytest.approx(2.0 * b["slices"]) and b["checkpoint_saves_s"] == b["slices"]
    gpu_parts = ("encoder_s", "train_steps_s", "eval_before_s", "eval_after_s", "slice_setup_s",
                 "checkpoint_saves_s")  # fmt: skip
    assert b["gpu_s"] == pytest.approx(sum(b[k] for k in gpu_parts), abs=0.3)
    on_gpu = run_budget(COSTS, 500, 5, features_on_gpu=True)
    assert on_gpu["gpu_s"] == pytest.approx(b["gpu_s"] + b["features_cpu_s"], abs=0.3)


def test_run_budget_caps_the_evaluated_takes():
    capped = run_budget(COSTS, 5000, 5, eval_cap=64)
    assert capped["held_out"] == held_out(5000) > 64 and capped["evaluated"] == 64
    assert capped["eval_before_s"] == pytest.approx(64 * 0.5)
    assert run_budget(COSTS, 50, 5, eval_cap=64)["evaluated"] == held_out(50)


def test_format_budget_prints_one_line_per_run_size():
    text = format_budget([run_budget(COSTS, n, 5) for n in (50, 500)])
    lines = text.splitlines()
    assert len(lines) == 3 and lines[0].split()[0] == "takes"
    assert (
        lines[2].split()[0] == "500" and lines[2].split()[-1] == f"{run_budget(COSTS, 500, 5)['gpu_s']:.1f}"
    )
