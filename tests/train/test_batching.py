"""Takes per pass fitted to free GPU memory, with accumulation keeping the takes per optimizer step.

No GPU exists here, so torch.cuda's memory counters are the one thing faked (FakeGpu, on
tests/train/fake_cuda.py). The fake does not trust the trainer: its "peak" follows the padded tokens
that really reached the language model, seen by a forward hook, and it can run out of memory above a
token count, as a real GPU would. Everything else (the split, the accumulation, the checkpoint, the
retry) is the real engine.
"""

from __future__ import annotations

import pytest
import torch

from tests.train.fake_cuda import BYTES_PER_TOKEN, FakeCudaMemory, GiB
from tests.train.test_train import adapter_weights
from voxspace import checkpoint
from voxspace.batching import (
    plan_steps,
    split_step,
    takes_per_generate,
    token_budget,
)
from voxspace.errors import OutOfGPUMemory
from voxspace.train import TrainConfig, Trainer

# four training takes (conftest.takes_dir); 1 x 4 takes per step: one step per epoch
STEP_OF_4 = dict(precision="fp32", batch_size=1, grad_accum=4, epochs=3, dropout=0.0, lr=1e-3)


class FakeGpu(FakeCudaMemory):
    """A GPU with `fits` padded tokens of room for activations (and 512 MiB for the optimizer state),
    counting training passes only."""

    def __init__(self, model, *, fits: int, oom_above: int | None = None, oom_unless_checkpointing=False):
        super().__init__(model, fits=fits, extra_bytes=512 * 2**20)
        self.model = model
        self.oom_above = oom_above
        self.oom_unless_checkpointing = oom_unless_checkpointing
        self.passes: list[tuple[int, int]] = []  # (takes, padded length) of each language-model pass

    def seen(self, takes: int, length: int) -> None:
        if not torch.is_grad_enabled():
            return  # an evaluation pass, not training
        if (self.oom_above is not None and takes * length > self.oom_above) or (
            self.oom_unless_checkpointing and not self.model.is_activation_checkpointing
        ):
            raise torch.OutOfMemoryError("CUDA out of memory (fake GPU)")
        self.passes.append((takes, length))
        self._peak = max(self._peak, takes * length)


def _train(run_dir, config, takes_dir, base, meter=None, **slice_kw):
    trainer = Trainer(run_dir, config, takes_dir, base=base, memory=meter).setup()
    summary = trainer.train_slice(budget_s=1e9, **slice_kw)
    model = trainer.close()
    if meter is not None:
        meter.close()
    return summary, model


def _close(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4) for k in a)


# --- the pure parts ---------------------------------------------------------------------------------
def test_a_pass_holds_what_the_token_budget_allows_and_never_less_than_one_take():
    lengths = [10, 10, 10, 30]
    assert split_step([0, 1, 2, 3], lengths, token_budget=30) == [[0, 1, 2], [3]]
    assert split_step([0, 1, 2, 3], lengths, token_budget=29) == [[0, 1], [2], [3]]
    assert split_step([3, 0], lengths, token_budget=5) == [[3], [0]]  # too long alone: still one pass
    assert split_step([0, 1, 2, 3], lengths, takes_per_pass=3) == [[0, 1, 2], [3]]


def test_a_generate_call_holds_takes_while_their_padded_prompt_and_new_tokens_fit():
    assert takes_per_generate([10, 10, 10], [5, 5, 5], 45) == 3
    assert takes_per_generate([10, 10, 20], [5, 5, 5], 45) == 2  # a third would pad all three to 25
    assert takes_per_generate([10, 10], [5, 30], 45) == 1  # its token limit would make 2 x 40
    assert takes_per_generate([100], [5], 10) == 1  # too long alone: still one take


def test_token_budget_is_the_free_memory_beyond_the_reserve():
    assert token_budget(10 * GiB, 2**20, 2 * GiB) == 8192
    assert token_budget(1 * GiB, 2**20, 2 * GiB) == 0


def test_length_aware_steps_group_similar_lengths_and_are_reproducible():
    lengths = [10, 50, 11, 51, 12, 52, 13, 53]
    plan = plan_steps(lengths, 2, seed=3, epoch=0, length_aware=True)
    assert plan == plan_steps(lengths, 2, seed=3, epoch=0, length_aware=True)
    assert plan != plan_steps(lengths, 2, seed=3, epoch=1, length_aware=True)
    assert sorted(i for b in plan for i in b) == list(range(8))
    assert all(abs(lengths[a] - lengths[b]) <= 3 for a, b in plan)  # no short take padded to a long one


# --- the engine ---------------------------------------------------------------------------------------
def test_takes_per_pass_follow_free_memory_and_learn_what_fixed_passes_learn(tmp_path, takes_dir, base):
    config = TrainConfig(**STEP_OF_4)
    fixed, model = _train(tmp_path / "fixed", config, takes_dir, base)  # CPU: 1 take per pass, 4 passes
    assert fixed.takes_per_pass == 1 and fixed.total_steps == 3

    roomy = FakeGpu(model, fits=10_000)
    fitted, model = _train(tmp_path / "roomy", config, takes_dir, (model, base[1]), roomy)
    # step 1 measures one take at a time; then all four takes of a step share one pass
    assert [t for t, _ in roomy.passes] == [1, 1, 1, 1, 4, 4]
    assert fitted.takes_per_pass == 4 and fitted.total_steps == fixed.total_steps
    assert _close(adapter_weights(tmp_path / "fixed"), adapter_weights(tmp_path / "roomy"))
    assert checkpoint.read_state(tmp_path / "roomy")["memory_fit"]["bytes_per_token"] == BYTES_PER_TOKEN

    longest = max(n for _, n in roomy.passes)
    tight = FakeGpu(model, fits=2 * longest)  # room for two takes per pass
    _, model = _train(tmp_path / "tight", config, takes_dir, (model, base[1]), tight)
    assert [t for t, _ in tight.passes] == [1, 1, 1, 1, 2, 2, 2, 2]
    assert all(t * n <= 2 * longest for t, n in tight.passes)
    assert _close(adapter_weights(tmp_path / "fixed"), adapter_weights(tmp_path / "tight"))

    # the guard that makes the two checks above mean something: another effective batch learns otherwise
    _train(tmp_path / "per_take", TrainConfig(**{**STEP_OF_4, "grad_accum": 1}), takes_dir, (model, base[1]))
    assert not _close(adapter_weights(tmp_path / "fixed"), adapter_weights(tmp_path / "per_take"))


def test_a_pass_that_runs_out_of_memory_is_retried_smaller_and_the_fit_is_kept(tmp_path, takes_dir, base):
    config = TrainConfig(**STEP_OF_4)
    _, model = _train(tmp_path / "fixed", config, takes_dir, base)
    longest = 400  # every conftest take is one 30 s chunk plus a short transcript: under 400 tokens
    # the counters promise room for four takes, but the GPU fails above two
    liar = FakeGpu(model, fits=10_000, oom_above=2 * longest)
    summary, model = _train(tmp_path / "oom", config, takes_dir, (model, base[1]), liar, max_steps=2)
    assert liar.released == 1 and [t for t, _ in liar.passes] == [1, 1, 1, 1, 2, 2]
    assert summary.step == 2

    # a later slice (a fresh Trainer, as on ZeroGPU) keeps the smaller fit: no second failure
    again = FakeGpu(model, fits=10_000, oom_above=2 * longest)
    summary, _ = _train(tmp_path / "oom", config, takes_dir, (model, base[1]), again)
    assert summary.done and again.released == 0 and [t for t, _ in again.passes] == [2, 2]
    assert _close(adapter_weights(tmp_path / "fixed"), adapter_weights(tmp_path / "oom"))


def test_when_one_take_does_not_fit_checkpointing_is_switched_on(tmp_path, takes_dir, base):
    config = TrainConfig(**STEP_OF_4)
    _, model = _train(tmp_path / "fixed", config, takes_dir, base)
    small = FakeGpu(model, fits=10_000, oom_unless_checkpointing=True)
    trainer = Trainer(tmp_path / "ckpt", config, takes_dir, base=(model, base[1]), memory=small).setup()
    assert not trainer.checkpointing
    summary = trainer.train_slice(budget_s=1e9)
    assert (
        summary.done and trainer.checkpointing and checkpoint.read_state(tmp_path / "ckpt")["checkpointing"]
    )
    assert [t for t, _ in small.passes] == [1, 1, 1, 1, 4, 4]  # measured again with checkpointing on
    trainer.close()
    small.close()
    assert _close(adapter_weights(tmp_path / "fixed"), adapter_weights(tmp_path / "ckpt"))


def test_when_nothing_fits_the_message_says_what_to_try(tmp_path, takes_dir, base):
    full = FakeGpu(base[0], fits=10_000, oom_above=0)
    trainer = Trainer(tmp_path / "run", TrainConfig(**STEP_OF_4), takes_dir, base=base, memory=full).setup()
    with pytest.raises(OutOfGPUMemory) as e:
        trainer.train_slice(budget_s=1e9)
    full.close()
    assert trainer.checkpointing  # tried first
    assert "8-bit" in e.value.user_message and "Traceback" not in e.value.user_message


def test_fitted_passes_resume_exactly_across_slices(tmp_path, takes_dir, base):
    # dropout on: the slices must split every step as the single run did, or the masks would differ
    config = TrainConfig(**{**STEP_OF_4, "dropout": 0.1})
    _, model = _train(tmp_path / "one", config, takes_dir, base, FakeGpu(base[0], fits=10_000))
    for steps in (1, 1, 1):
        meter = FakeGpu(model, fits=10_000)
        last, model = _train(tmp_path / "many", config, takes_dir, (model, base[1]), meter, max_steps=steps)
    assert last.done
    a, b = adapter_weights(tmp_path / "one"), adapter_weights(tmp_path / "many")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
