"""What a finished (or paused) training run leaves behind, for the UI, the card and the demo.

A run folder holds:
    summary.json        this record (no secrets, no absolute paths the user did not choose)
    adapter/            adapter_config.json + adapter_model.safetensors (what gets published)
    checkpoint/         resumable state (never published)
    loss.png            optional loss curve, drawn by the card if missing

Train writes it; evaluate fills `eval`; publish/card read it. Keep it JSON-plain.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from voxspace import atomic_file

SUMMARY = "summary.json"
ADAPTER_DIR = "adapter"
CHECKPOINT_DIR = "checkpoint"
ENCODER_CACHE_DIR = "encoder_cache"  # one folder per precision inside (voxspace.encoder_cache)


@dataclass
class TakeResult:
    take_id: str
    reference: str
    base: str
    finetuned: str | None = None


@dataclass
class EvalReport:
    """WER/CER on the held-out takes; `after` is None until the adapter has been evaluated."""

    n_takes: int
    wer_before: float
    cer_before: float
    wer_after: float | None = None
    cer_after: float | None = None
    per_take: list[TakeResult] = field(default_factory=list)
    base_precision: str | None = None  # how the base was loaded when measured ("bf16": as served)

    @property
    def improved(self) -> bool | None:
        """Whether the adapter's WER is lower than the base model's; None until it is measured."""
        return None if self.wer_after is None else self.wer_after < self.wer_before

    def not_better_sentence(self) -> str | None:
        """The warning the Train tab, the Publish tab and the card show, or None when it improved."""
        if self.improved is not False:
            return None
        return (f"The fine-tuned model is not better than the base model on the {self.n_takes} held-out "
                f"takes: WER {100 * self.wer_after:.1f}% against {100 * self.wer_before:.1f}% for the "
                "base model.")

    @property
    def wer_relative_change(self) -> float | None:
        if self.wer_after is None or self.wer_before == 0:
            return None
        return (self.wer_after - self.wer_before) / self.wer_before


@dataclass
class RunRecord:
    base_model: str
    dataset: str  # the recordings repo id, or a local folder
    config: dict  # TrainConfig as a plain dict
    languages: list[str] = field(default_factory=list)
    n_train_takes: int = 0
    n_test_takes: int = 0
    train_minutes: float = 0.0  # minutes of audio in the training split
    steps_done: int = 0
    steps_total: int = 0
    loss_history: list[tuple[int, float]] = field(default_factory=list)
    heldout_loss_history: list[tuple[int, float]] = field(default_factory=list)  # after each epoch
    best_step: int | None = None  # the step whose adapter is the result (lowest held-out loss)
    stopped_early: bool = False
    eval: EvalReport | None = None
    finished: bool = False
    # the run's pinned takes (voxspace.pinning): with the revision, every number can be reproduced
    dataset_revision: str | None = None
    train_take_ids: list[str] = field(default_factory=list)
    test_take_ids: list[str] = field(default_factory=list)

    def save(self, run_dir: Path) -> Path:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / SUMMARY
        atomic_file.write_json(path, asdict(self), indent=2, ensure_ascii=False)
        return path

    @classmethod
    def load(cls, run_dir: Path) -> RunRecord:
        raw = json.loads((Path(run_dir) / SUMMARY).read_text())
        ev = raw.pop("eval", None)
        if ev is not None:
            ev["per_take"] = [TakeResult(**t) for t in ev.get("per_take", [])]
            ev = EvalReport(**ev)
        raw["loss_history"] = [tuple(x) for x in raw.get("loss_history", [])]
        raw["heldout_loss_history"] = [tuple(x) for x in raw.get("heldout_loss_history", [])]
        return cls(**raw, eval=ev)


def runs_root(data_dir: Path, username: str | None) -> Path:
    """A person's run folders: the Train tab and `train --out` write here, Publish lists them."""
    return Path(data_dir) / "runs" / (username or "local")
