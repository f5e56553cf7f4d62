"""voxspace.features and Trainer.encode_examples: the takes' features are computed once, on the CPU,
before any GPU slice, stored as float16 with an index, and reused by training and evaluation."""

from __future__ import annotations

import json

import pytest
import torch

from voxspace import features
from voxspace.data import TranscriptionCollator
from voxspace.layout import read_folder
from voxspace.train import TrainConfig, Trainer


def _never() -> TranscriptionCollator:
    raise AssertionError("encoded again although the stored examples are current")


def test_encode_stores_float16_features_close_to_the_processors(tmp_path, takes_dir, base):
    _, processor = base
    collator = TranscriptionCollator(processor)
    takes = read_folder(takes_dir)[:3]
    seen = []
    assert features.encode(tmp_path, "train", takes, lambda: collator, lambda d, t: seen.append((d, t)))
    assert seen == [(3, 3)]
    ids = [t.take.take_id for t in takes]
    stored = features.load(tmp_path, "train", ids)
    assert [e.take_id for e in stored] == ids
    for take, example in zip(takes, stored, strict=True):
        full = collator.encode(take)
        assert example.input_features.dtype == torch.float16
        assert torch.allclose(example.input_features.float(), full.input_features, atol=2e-3)
        assert torch.equal(example.input_ids, full.input_ids) and torch.equal(example.labels, full.labels)
    assert not features.encode(tmp_path, "train", takes, _never)  # current: nothing to do


def test_stale_or_broken_stores_are_not_used(tmp_path, takes_dir, base):
    collator = TranscriptionCollator(base[1])
    takes = read_folder(takes_dir)[:2]
    features.encode(tmp_path, "test", takes, lambda: collator)
    ids = [t.take.take_id for t in takes]
    assert features.load(tmp_path, "test", ids[::-1]) is None  # another order
    assert features.load(tmp_path, "test", ids[:1]) is None  # other takes
    assert features.load(tmp_path, "train", ids) is None  # the other split's file
    index = tmp_path / "heldout_examples.json"
    index.write_text(json.dumps({"take_ids": ids, "dtype": "float32"}))  # written by another version
    assert features.load(tmp_path, "test", ids) is None
    index.write_text("{not json")
    assert not features.is_current(tmp_path, "test", ids)
    index.unlink()  # a crash between the data and its index leaves the data marked stale
    assert not features.is_current(tmp_path, "test", ids)
    assert features.encode(tmp_path, "test", takes, lambda: collator)  # and it is redone
    assert features.is_current(tmp_path, "test", ids)


def test_trainer_encodes_before_setup_and_setup_reuses_it(tmp_path, takes_dir, base, monkeypatch):
    config = TrainConfig(precision="fp32", batch_size=2, epochs=1)
    trainer = Trainer(tmp_path / "run", config, takes_dir, base=base)
    assert trainer.encode_examples() == len(trainer.train_takes)
    test = trainer.test_examples()
    assert [e.take_id for e in test] == [t.take.take_id for t in trainer.test_takes]
    # from here on nothing may extract features again: training and evaluation use the stored ones
    monkeypatch.setattr(TranscriptionCollator, "encode", lambda self, take: _never())
    assert trainer.encode_examples() == len(trainer.train_takes)  # a later slice, a resume: cheap
    trainer.setup()
    assert [e.take_id for e in trainer.examples] == [t.take.take_id for t in trainer.train_takes]
    assert all(e.input_features.dtype == torch.float16 for e in trainer.examples)
    summary = trainer.train_slice(budget_s=1e9, max_steps=1)
    assert summary.steps_run == 1 and summary.last_loss > 0
    trainer.close()
    again = Trainer(tmp_path / "run")  # a new process rebuilding the run from run.json
    assert [e.take_id for e in again.test_examples()] == [e.take_id for e in test]


def test_evaluation_takes_the_stored_examples(tmp_path, takes_dir, base, monkeypatch):
    from voxspace.evaluate import evaluate_adapter

    trainer = Trainer(tmp_path / "run", TrainConfig(precision="fp32", epochs=1), takes_dir, base=base)
    trainer.encode_examples()
    examples = trainer.test_examples()
    monkeypatch.setattr(TranscriptionCollator, "encode", lambda self, take: _never())
    report = evaluate_adapter(base, trainer.test_takes, None, max_new_tokens=2, examples=examples)
    assert report.n_takes == len(trainer.test_takes) == len(report.per_take)


def test_a_setup_without_encode_examples_still_encodes(tmp_path, takes_dir, base):
    trainer = Trainer(tmp_path / "run", TrainConfig(precision="fp32", epochs=1), takes_dir, base=base).setup()
    ids = [t.take.take_id for t in trainer.train_takes]
    assert features.is_current(tmp_path / "run", "train", ids)
    held_out = [e.take_id for e in trainer.test_examples()]  # for the held-out loss after each epoch
    assert held_out == [t.take.take_id for t in trainer.test_takes]
    trainer.close()


@pytest.mark.parametrize("split", ["train", "test"])
def test_unknown_split_is_a_programming_error(tmp_path, split):
    assert not features.is_current(tmp_path, split, ["a"])
    with pytest.raises(KeyError):
        features.is_current(tmp_path, "validation", ["a"])
