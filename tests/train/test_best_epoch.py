"""The adapter kept is the epoch with the lowest held-out loss; early stopping ends a run that stalls.

Where the held-out loss must follow a script (to make a later epoch worse on purpose), the seam is
`Trainer.heldout_loss`, replaced by a function that snapshots the LoRA weights it is asked about.
"""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from voxspace.errors import BadHyperparameter
from voxspace.run_record import ADAPTER_DIR, RunRecord
from voxspace.train import BEST_DIR, TrainConfig, Trainer


def _lora(model) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}


def _saved(folder) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def scripted(monkeypatch):
    """Make Trainer.heldout_loss return the given losses in turn, snapshotting the weights each time."""
    snapshots: list[dict[str, torch.Tensor]] = []

    def install(losses: list[float]) -> list[dict[str, torch.Tensor]]:
        it = iter(losses)

        def heldout_loss(self):
            snapshots.append(_lora(self.model))
            return next(it)

        monkeypatch.setattr(Trainer, "heldout_loss", heldout_loss)
        return snapshots

    return install


def _config(**kw) -> TrainConfig:
    # four training takes, four per step: one step per epoch
    return TrainConfig(precision="fp32", rank=4, alpha=8, lr=1e-2, batch_size=4, warmup_ratio=0.0, **kw)


def test_a_worse_later_epoch_does_not_replace_the_best_adapter(tmp_path, takes_dir, base, scripted):
    snapshots = scripted([1.0, 0.5, 0.9])
    trainer = Trainer(tmp_path / "run", _config(epochs=3), takes_dir, base=base)
    summary = trainer.train_slice()
    assert summary.done and summary.step == 3
    adapter = _saved(tmp_path / "run" / ADAPTER_DIR)
    assert _same(adapter, snapshots[1])  # epoch 2, the lowest held-out loss
    assert not _same(adapter, snapshots[2])  # not the last step
    record = RunRecord.load(tmp_path / "run")
    assert record.heldout_loss_history == [(1, 1.0), (2, 0.5), (3, 0.9)]
    assert record.best_step == 2 and not record.stopped_early
    trainer.close()


def test_early_stopping_ends_the_run_and_keeps_the_best_epoch(tmp_path, takes_dir, base, scripted):
    snapshots = scripted([1.0, 0.5, 0.7, 0.8, 0.9])
    trainer = Trainer(tmp_path / "run", _config(epochs=5, early_stop_epochs=1), takes_dir, base=base)
    summary = trainer.train_slice()
    assert summary.done and summary.step == 3 < summary.total_steps == 5  # stopped after one worse epoch
    assert _same(_saved(tmp_path / "run" / ADAPTER_DIR), snapshots[1])
    record = RunRecord.load(tmp_path / "run")
    assert record.stopped_early and record.finished and record.best_step == 2
    trainer.close()


def test_held_out_loss_is_measured_each_epoch_and_survives_slices(tmp_path, takes_dir, base):
    """Real held-out losses (the tiny model): one per epoch, the same whether the run is one slice or
    one step per slice with a new Trainer each time (as ZeroGPU runs it), and best/ matches."""
    one = Trainer(tmp_path / "one", _config(epochs=3), takes_dir, base=base)
    one.train_slice()
    history, best = list(one.heldout_history), one.best
    model = one.close()
    assert [s for s, _ in history] == [1, 2, 3] and all(math.isfinite(v) for _, v in history)
    assert best == min(history, key=lambda x: x[1])

    shutil.rmtree(tmp_path / "one" / BEST_DIR)
    run = tmp_path / "sliced"
    Trainer(run, _config(epochs=3), takes_dir, base=(model, base[1])).prepare()
    while True:
        t = Trainer(run, base=(model, base[1]))
        s = t.train_slice(max_steps=1)
        model = t.close()
        if s.done:
            break
    record = RunRecord.load(run)
    assert [s for s, _ in record.heldout_loss_history] == [s for s, _ in history]
    assert [v for _, v in record.heldout_loss_history] == pytest.approx([v for _, v in history], rel=1e-5)
    assert record.best_step == best[0]
    assert _same(_saved(run / ADAPTER_DIR), _saved(run / BEST_DIR))


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_a_bad_early_stopping_value_is_refused(bad):
    with pytest.raises(BadHyperparameter, match="Early stopping"):
        TrainConfig(early_stop_epochs=bad).validate()
