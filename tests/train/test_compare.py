"""The with/without comparison of the acoustic option, for real on the tiny Voxtral through
run_service: both short runs evaluated, the base model measured once, the better run kept."""

from __future__ import annotations

import dataclasses
import json

import pytest

from voxspace.auth import Identity
from voxspace.compare import COMPARISON_FILE, MIN_HELD_OUT, compare_encoder_option
from voxspace.errors import NotEnoughTakes
from voxspace.layout import read_folder
from voxspace.run_record import RunRecord
from voxspace.train import TrainConfig

from .conftest import TEXTS, make_take

pytestmark = pytest.mark.slow  # two short runs with evaluation: minutes on 2 shared cores


@pytest.fixture
def settings(hub_settings, tiny_voxtral_dir):
    return dataclasses.replace(hub_settings, base_model=str(tiny_voxtral_dir))


def test_both_runs_are_scored_and_the_better_is_kept(settings, tmp_path):
    data = tmp_path / "takes"
    for seq in range(12):  # 4 of the first 12 are held out
        make_take(data, seq, TEXTS[seq % len(TEXTS)] + (" again" if seq >= len(TEXTS) else ""))
    assert sum(t.take.split == "test" for t in read_folder(data)) == MIN_HELD_OUT
    lines: list[str] = []
    root = tmp_path / "runs"
    config = TrainConfig(precision="fp32", batch_size=4, epochs=5, lr=1e-2)
    result = compare_encoder_option(
        settings,
        Identity(None),
        data=str(data),
        config=config,
        root=root,
        layers=1,
        max_new_tokens=4,
        on_line=lines.append,
    )
    assert result.stopped is None and None not in (result.wer_before, result.wer_without, result.wer_with)
    assert result.kept_acoustic == (result.wer_with < result.wer_without)
    kept = RunRecord.load(result.kept)
    assert kept.config["adapt_encoder"] == (1 if result.kept_acoustic else 0)
    assert kept.config["epochs"] == 2  # the short run, not the preset's 5
    assert kept.eval.wer_after == (result.wer_with if result.kept_acoustic else result.wer_without)
    assert (
        json.loads((root / result.kept.split("/")[-1] / COMPARISON_FILE).read_text())["kept"] == result.kept
    )
    assert [p.name for p in root.iterdir()] == [result.kept.split("/")[-1]]  # the other run is gone
    assert sum("Measuring the base model" in line for line in lines) == 1  # measured once
    said = [line for line in lines if line.startswith("Acoustic adaptation:")]
    assert len(said) == 1 and "top 1 audio-encoder layer" in said[0] and "% longer" in said[0]
    assert "Kept the run" in lines[-1] and f"{100 * result.wer_with:.1f}%" in lines[-1]


def test_too_few_held_out_takes_refuse_the_comparison(settings, takes_dir, tmp_path):
    with pytest.raises(NotEnoughTakes, match=f"at least {MIN_HELD_OUT} held-out takes"):
        compare_encoder_option(
            settings,
            Identity(None),
            data=str(takes_dir),
            config=TrainConfig(precision="fp32"),
            root=tmp_path / "runs",
            layers=1,
        )
    assert not any((tmp_path / "runs").glob("*/checkpoint"))
