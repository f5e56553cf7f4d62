"""Measured speed of this machine, so the estimate before Start comes from runs, not a guess.

After a run, run_service records what one second of training audio cost per epoch, and what one
held-out take's evaluation cost, for this (hardware kind, precision, base model), in
<data_dir>/timings.json. run_service.estimate uses them when there are any; the planning figures
(an H100 bench, halved for ZeroGPU; a rough CPU guess) only until the first run here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from voxspace import atomic_file

log = logging.getLogger(__name__)

FILE = "timings.json"


@dataclass(frozen=True)
class Measured:
    """The last run's figures: seconds per second of training audio per epoch (at step cost 1, see
    TrainConfig.step_cost_factor) and seconds per held-out take evaluated; None if not measured."""

    train_s_per_audio_s: float | None = None
    eval_s_per_take: float | None = None


def _key(kind: str, precision: str, base_model: str) -> str:
    return f"{kind}|{precision}|{base_model}"


def _read(path: Path) -> dict[str, dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def load(data_dir: str | Path, kind: str, precision: str, base_model: str) -> Measured | None:
    raw = _read(Path(data_dir) / FILE).get(_key(kind, precision, base_model))
    return Measured(**{k: raw.get(k) for k in ("train_s_per_audio_s", "eval_s_per_take")}) if raw else None


def record(data_dir: str | Path, kind: str, precision: str, base_model: str, **figures: float | None) -> None:
    """Keep the newest figures for this setup (a figure left None keeps the one measured before)."""
    path = Path(data_dir) / FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        table = _read(path)
        entry = table.get(_key(kind, precision, base_model), {})
        entry.update({k: float(v) for k, v in figures.items() if v is not None and v > 0})
        table[_key(kind, precision, base_model)] = entry
        atomic_file.write_json(path, table)
    except OSError:  # a figure that cannot be kept only makes the next estimate a guess
        log.warning("could not save the measured timings in %s", path, exc_info=True)

