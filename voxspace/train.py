"""The training recipe: LoRA on Voxtral's language model, run in time-boxed, resumable slices.

    trainer = Trainer("runs/alice-1", TrainConfig.quick(), "alice/voxspace-recordings",
                      ModelConfig("mistralai/Voxtral-Mini-3B-2507"))
    trainer.setup()                          # data, LoRA, optimizer; resumes from run_dir/checkpoint
    while not (s := trainer.train_slice(budget_s=100)).done:
        ...                                  # on ZeroGPU each slice is one GPU call (voxspace.gpu)

Contract (torchtune-like): `setup()` builds everything and resumes from the checkpoint if one
exists; `train_slice()` trains until the budget would be overrun by one more step, then saves a
checkpoint and returns a small picklable `SliceSummary`. N steps in one slice and the same N steps
in k slices give identical weights: the checkpoint holds the adapter, optimizer, scheduler, every
RNG state and the data position (epoch, index into a seeded step plan).

Each optimizer step learns from `batch_size x grad_accum` takes; on a GPU, how many of them share a
forward pass is fitted to the free memory (voxspace.batching), and a step that runs out of memory is
retried in smaller passes, with gradient checkpointing switched on if even one take does not fit.
On several GPUs (`ranks`, voxspace.data_parallel) each step's takes are split between processes
and their gradients summed, so the weights are those one GPU would learn.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from voxspace import atomic_file, checkpoint, features
from voxspace.batching import CudaMemory, MemoryFit, MemoryMeter, PassFitter, plan_steps
from voxspace.data import IGNORE, Example, TranscriptionCollator, fetch_takes, split_takes
from voxspace.data_parallel import END, PAUSE, SINGLE, STEP, Ranks
from voxspace.errors import BadHyperparameter, BadInput, NaNLoss, OutOfGPUMemory
from voxspace.layout import LocalTake, read_folder
from voxspace.model import (
    LORA_TARGETS,
    MAX_ENCODER_LAYERS,
    PRECISIONS,
    LoraSettings,
    ModelConfig,
    attach_lora,
    detach_lora,
    load_base,
    load_processor,
    precision_of,
)
from voxspace.pinning import TakePins, dataset_revision, sample_held_out
from voxspace.run_record import ADAPTER_DIR, RunRecord

log = logging.getLogger(__name__)
RUN_SPEC = "run.json"  # what a later slice (or a restarted app) needs to rebuild this Trainer
BEST_DIR = "best"  # the adapter of the epoch with the lowest held-out loss so far
STOP_MARGIN = 1.5  # stop when less than this many step-times of budget remain
# The encoder option's extra work per take and epoch, from FACTS "Where a Voxtral LoRA step spends its
# work" (full width, per take): an encoder layer's forward + backward 0.76 s, against 30 LM layers x
# 0.93 s plus lm_head over the label positions 0.43 s for the default (encoder cached) step.
ENCODER_LAYER_STEP_SHARE = 0.76 / (30 * 0.93 + 0.43)
ACOUSTIC_LAYERS = 8  # what "My speech sounds very different from typical speech" adapts


def one_step_budget(step_time_s: float | None, save_s: float | None) -> float:
    """The shortest budget in which `train_slice` still runs a step and saves: its stop rule wants
    STOP_MARGIN step-times left beside the save it keeps in reserve, plus half a step of slack for
    the moments before its first check. Slice planners use it as their floor."""
    return (STOP_MARGIN + 0.5) * (step_time_s or 0.0) + (save_s or 0.0)


@dataclass
class TrainConfig:
    """Hyperparameters and speed levers. `validate()` runs before any model is loaded."""

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    lr: float = 3e-4
    epochs: int = 5
    batch_size: int = 4  # takes per forward pass (unless auto_batch fits it to the GPU)
    grad_accum: int = 1  # passes per optimizer step: batch_size x grad_accum takes per step
    precision: str = "8bit"
    slice_seconds: int = 110  # a ZeroGPU slice's budget for steps (its call is capped separately)
    seed: int = 0
    max_grad_norm: float = 1.0
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    # Speed levers (issue 5); each can be switched off to measure it.
    encoder_cache: bool = True  # (a) audio tower + projector once per take
    length_batching: bool = True  # (b) takes of similar length share a batch: less padding
    label_logits_only: bool = True  # (c) lm_head only where a label follows
    gradient_checkpointing: bool = False  # (d) less activation memory, ~30% more compute
    auto_batch: bool = True  # (e) on a GPU, takes per pass fitted to free memory; takes per step kept
    cache_max_mb: int = 512  # encoder cache in memory; the rest spills to run_dir/encoder_cache/<precision>
    lora_targets: str = "language_model"  # "attention_everywhere" only to measure the old recipe
    # Acoustic adaptation (issue 15): LoRA also on the top N audio-encoder layers and the projector,
    # for speech unlike what Voxtral was trained on. The frozen layers below are cached per take.
    adapt_encoder: int = 0
    # Stop once the held-out loss has not improved for this many epochs (0: run every epoch). The
    # adapter kept is always the epoch with the lowest held-out loss, stopped early or not.
    early_stop_epochs: int = 0
    # Held-out takes measured before and after (a sample across languages and recording time; the
    # others stay held out). Evaluation is two generate passes per take: uncapped, a 5000-take run
    # would spend more GPU time measuring than training. 0: measure every held-out take.
    eval_max_takes: int = 64

    @classmethod
    def quick(cls, **kw: Any) -> TrainConfig:
        return cls(**{"rank": 8, "alpha": 16, "lr": 5e-4, "epochs": 3, **kw})

    @classmethod
    def standard(cls, **kw: Any) -> TrainConfig:
        return cls(**kw)

    @classmethod
    def thorough(cls, **kw: Any) -> TrainConfig:
        # 10 epochs on a few dozen takes can memorise them: stop when held-out loss stalls for 3
        preset = {"rank": 32, "alpha": 64, "lr": 2e-4, "epochs": 10, "grad_accum": 2, "early_stop_epochs": 3}
        return cls(**{**preset, **kw})

    @classmethod
    def preset(cls, name: str, **kw: Any) -> TrainConfig:
        if name not in ("quick", "standard", "thorough"):
            raise BadHyperparameter(f"Unknown preset {name!r}: choose quick, standard or thorough.")
        return getattr(cls, name)(**kw)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def step_size(self) -> int:
        """Takes each optimizer step learns from, however they are split into passes."""
        return self.batch_size * self.grad_accum

    def step_cost_factor(self) -> float:
        """Step time relative to LoRA on the language model only (a planning figure, not measured here:
        bench/train_speed.py's +adapt_enc rows measure it)."""
        return 1.0 + self.adapt_encoder * ENCODER_LAYER_STEP_SHARE

    def steps_per_epoch(self, n_examples: int) -> int:
        return math.ceil(n_examples / self.step_size)

    def lora(self) -> LoraSettings:
        return LoraSettings(
            rank=self.rank,
            alpha=self.alpha,
            dropout=self.dropout,
            targets=self.lora_targets,
            encoder_layers=self.adapt_encoder,
        )

    def validate(self) -> TrainConfig:
        """Raise BadHyperparameter with a sentence a person can act on; returns self."""

        def bad(msg: str) -> None:
            raise BadHyperparameter(msg)

        for name in ("rank", "alpha", "epochs", "batch_size", "grad_accum", "slice_seconds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                label = name.replace("_", " ").capitalize()
                bad(f"{label} must be a whole number of at least 1 (got {value!r}).")
        if self.rank > 256:
            bad(f"LoRA rank {self.rank} is far above what a personal fine-tune needs; use 256 or less.")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and 0 < self.lr <= 0.1):
            bad(f"Learning rate must be above 0 and at most 0.1 (got {self.lr!r}); 1e-4 to 1e-3 is usual.")
        if not 0 <= self.dropout < 1:
            bad(f"Dropout must be at least 0 and below 1 (got {self.dropout!r}).")
        if not 0 <= self.warmup_ratio < 1:
            bad(f"Warm-up ratio must be at least 0 and below 1 (got {self.warmup_ratio!r}).")
        if not (math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0):
            bad(f"Gradient clipping norm must be above 0 (got {self.max_grad_norm!r}).")
        if self.weight_decay < 0:
            bad(f"Weight decay cannot be negative (got {self.weight_decay!r}).")
        if self.precision not in PRECISIONS:
            bad(f"Precision must be one of {', '.join(PRECISIONS)} (got {self.precision!r}).")
        if self.lora_targets not in LORA_TARGETS:
            bad(f"LoRA targets must be one of {', '.join(LORA_TARGETS)} (got {self.lora_targets!r}).")
        n = self.adapt_encoder
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_ENCODER_LAYERS:
            bad(f"Encoder layers to adapt must be a whole number from 0 to {MAX_ENCODER_LAYERS} (got {n!r}).")
        if n and self.lora_targets != "language_model":
            bad("Adapting the top encoder layers adds to the language-model LoRA: keep the default targets.")
        if self.encoder_cache and self.lora_targets != "language_model":
            bad("The encoder-output cache needs LoRA kept out of the audio encoder; switch one of them off.")
        patience = self.early_stop_epochs
        if not isinstance(patience, int) or isinstance(patience, bool) or patience < 0:
            bad(f"Early stopping must be a whole number of epochs, 0 for off (got {patience!r}).")
        cap = self.eval_max_takes
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 0:
            bad(f"Held-out takes to measure must be a whole number, 0 for all (got {cap!r}).")
        if self.epochs > 100:
            bad(f"{self.epochs} epochs would only memorise the takes; use 100 or fewer.")
        return self


@dataclass
class SliceSummary:
    """What one slice reports back (small and picklable: it crosses ZeroGPU's process boundary)."""

    step: int
    total_steps: int
    last_loss: float | None
    done: bool
    cancelled: bool
    steps_run: int
    step_seconds: float  # wall time inside optimizer steps
    overhead_seconds: float  # setup, checkpoint save, everything else in this slice
    step_time_s: float | None  # running estimate of one step, for planning the next slice
    epoch: int = 0
    takes_per_pass: int = 0  # the most takes one forward pass held in this slice (fitted on a GPU)
    call_seconds: float = 0.0  # the whole GPU call as its caller timed it (set by gpu.run_in_slices)
    encoder_runs: int = 0  # takes whose audio the encoder had to run in this slice (cache misses)
    peak_gpu_gb: float | None = None  # the most GPU memory allocated by this process so far
    # parts of overhead_seconds: LoRA put on the base, the checkpoint read back, the checkpoint saved
    attach_seconds: float = 0.0
    load_seconds: float = 0.0
    save_seconds: float = 0.0

    @property
    def other_setup_seconds(self) -> float:
        """The rest of overhead_seconds: building the trainer, reading the features, the tracker."""
        return max(0.0, self.overhead_seconds - self.attach_seconds - self.load_seconds - self.save_seconds)

    @property
    def outside_seconds(self) -> float:
        """The part of the call the slice could not time: the wait for a GPU, the worker's start,
        the weights moved to the GPU, the result sent back."""
        return max(0.0, self.call_seconds - self.step_seconds - self.overhead_seconds)

    @property
    def progress(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0


class Tracker(Protocol):
    def start(self, config: dict[str, Any]) -> None: ...
    def log(self, metrics: dict[str, float], step: int) -> None: ...
    def finish(self) -> None: ...


CancelFlag = threading.Event | str | Path | None


def cancel_requested(cancel: CancelFlag) -> bool:
    """An Event works in one process; a file path also works across ZeroGPU's forked worker."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return Path(cancel).exists()


class _WarmupCosine:
    """LR multiplier: linear warm-up, then cosine down to 10% (a class so the scheduler pickles)."""

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup, self.total = warmup, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class Trainer:
    """One training run in `run_dir`. See the module docstring for the contract."""

    def __init__(
        self,
        run_dir: str | Path,
        config: TrainConfig | None = None,
        data: str | Path | None = None,
        model_cfg: ModelConfig | None = None,
        *,
        base: tuple[Any, Any] | None = None,
        tracker: Tracker | None = None,
        data_token: str | None = None,
        data_endpoint: str | None = None,
        data_cache_dir: str | Path | None = None,
        examples: list[Example] | None = None,
        memory: MemoryMeter | None = None,
        cache_on_disk: bool = False,
        ranks: Ranks = SINGLE,
    ) -> None:
        """`examples`: already-encoded training examples (benchmarks); then `data` is only a label.
        `memory`: the device-memory counters that fit passes to the GPU (CUDA's by default).
        `ranks`: this process's place among data-parallel processes (voxspace.data_parallel); only
        rank 0 writes anything."""
        self.run_dir = Path(run_dir)
        spec = self._read_spec()
        if config is None or data is None:
            if spec is None:
                raise FileNotFoundError(f"{self.run_dir / RUN_SPEC} missing: give config and data")
            config = config or TrainConfig.from_dict(spec["config"])
            data = data if data is not None else spec["data"]
            model_cfg = model_cfg or ModelConfig(base_model=spec["base_model"], precision=config.precision)
        self.config = config
        self.data = str(data)
        same_data = bool(spec) and spec.get("data") == self.data
        # where the takes sit on this machine (a Hub snapshot is fetched once, in prepare())
        self.data_dir = spec.get("data_dir") if same_data else None
        # the takes this run trains on and holds out, fixed when it started (voxspace.pinning)
        self.pins = TakePins.from_dict(spec.get("takes")) if same_data else None
        self.new_takes = 0  # takes in the recordings that are not this run's (they wait for the next)
        self.model_cfg = model_cfg or ModelConfig(precision=config.precision)
        self.model_cfg.precision = config.precision
        self._base = base
        self.tracker = tracker
        self._data_kw = dict(token=data_token, endpoint=data_endpoint, cache_dir=data_cache_dir)
        self._given_examples = examples
        self._memory = memory
        self._cache_on_disk = cache_on_disk  # a ZeroGPU slice: its worker's memory is thrown away after it
        self.ranks = ranks
        self.ended = False  # a data-parallel run: rank 0 has said no more steps come (data_parallel.END)
        self.ready = False
        self.prepared = False
        self.config.validate()  # before any data, model or GPU time is spent
        self.model_cfg.validate()

    # --- setup -------------------------------------------------------------------------------
    def _read_spec(self) -> dict[str, Any] | None:
        """run.json, or (for a checkpoint pulled from the Hub after a restart) the checkpoint's state."""
        path = self.run_dir / RUN_SPEC
        has_checkpoint = checkpoint.has_checkpoint(self.run_dir)
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except ValueError:  # cut short by a kill in an older version (it is written atomically now)
                if not has_checkpoint:
                    raise BadInput(f"{path} is damaged and this run has no checkpoint to resume from: "
                                   "start a new run.") from None
                log.warning("%s is damaged; resuming from the checkpoint's copy of the run's settings", path)
        return checkpoint.read_state(self.run_dir) if has_checkpoint else None

    def _write_spec(self) -> None:
        if not self.ranks.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        spec = {
            "config": self.config.to_dict(),
            "data": self.data,
            "data_dir": self.data_dir,
            "base_model": self.model_cfg.base_model,
            "takes": self.pins.to_dict() if self.pins else None,
        }
        atomic_file.write_json(self.run_dir / RUN_SPEC, spec)

    def prepare(self) -> Trainer:
        """The CPU-only part of setup: find the takes, check there are enough, write run.json.

        The first prepare pins the run's takes (ids, content hashes, dataset commit); every later
        one, in a slice, after a restart or for evaluation, selects exactly those (TakesChanged if
        one is gone or altered) and counts the takes recorded since in `new_takes`.
        """
        if checkpoint.has_checkpoint(self.run_dir):
            stored = checkpoint.read_state(self.run_dir).get("config")
            if stored is not None and TrainConfig.from_dict(stored) != self.config:
                raise BadInput(
                    f"{self.run_dir} holds a run with other settings: resume it as it is, or start a new run."
                )
        if self._given_examples is not None:
            self.train_takes, self.test_takes = [], []
            self._write_spec()
            self.prepared = True
            return self
        if not (self.data_dir and Path(self.data_dir).is_dir()):
            revision = self.pins.revision if self.pins else None
            self.data_dir = str(fetch_takes(self.data, revision=revision, **self._data_kw))
        takes = read_folder(Path(self.data_dir))
        if self.pins is None:
            self.train_takes, held_out = split_takes(takes)
            self.test_takes = sample_held_out(held_out, self.config.eval_max_takes)
            kept = {t.take.take_id for t in self.test_takes}
            self.pins = TakePins.pin(self.train_takes, self.test_takes, dataset_revision(Path(self.data_dir)),
                                     held_back=[t for t in held_out if t.take.take_id not in kept])
        else:
            self.train_takes, self.test_takes, self.new_takes = self.pins.select(takes)
        self._write_spec()
        self.prepared = True
        return self

    def setup(self) -> Trainer:
        """Load model, attach LoRA, encode takes, build optimizer; resume if a checkpoint exists."""
        import torch

        started = time.monotonic()
        if not self.prepared:
            self.prepare()
        if self.ranks.parallel and self.ranks.is_main:
            self.encode_examples()  # cheap when done: the other ranks read the takes, none writes
            self.ranks.main_ready()  # they build their Trainer from this run folder now

        model, self.processor = self._base if self._base is not None else load_base(self.model_cfg)
        t0 = time.monotonic()
        self.base_model = detach_lora(model)  # a previous run in this process may have left LoRA on
        self._seed_everything(self.config.seed)
        self.model = attach_lora(self.base_model, self.config.lora())
        attach_s = time.monotonic() - t0
        self.device = next(p for p in self.model.parameters() if p.requires_grad).device
        self.checkpointing = self.config.gradient_checkpointing or needs_checkpointing(self.device)
        if self.checkpointing:
            self._enable_checkpointing()
        self.collator = TranscriptionCollator(self.processor)
        self.examples: list[Example] = (
            self._given_examples if self._given_examples is not None else self._encoded_examples()
        )
        self.heldout: list[Example] = self._encoded_examples("test") if self.test_takes else []

        from voxspace.encoder_cache import EncoderCache, run_cache_dir

        self.cache = (
            EncoderCache(
                max_bytes=self.config.cache_max_mb * 2**20,
                # shared with the evaluations of the same precision (held-out takes computed once);
                # ranks other than 0 (data_parallel) keep their own
                spill_dir=run_cache_dir(self.run_dir, precision_of(self.base_model))
                / (f"rank-{r}" if (r := self.ranks.rank) else ""),
                write_through=self._cache_on_disk,
            )
            if self.config.encoder_cache
            else None
        )
        self.lengths = [len(e) for e in self.examples]  # tokens per example: the plans and passes use them
        self.steps_per_epoch = self.config.steps_per_epoch(len(self.examples))
        meter = self._memory
        if meter is None and self.config.auto_batch and self.device.type == "cuda":
            meter = CudaMemory(self.device)
        cache_reserve = self.config.cache_max_mb * 2**20 if self.config.encoder_cache else 0
        self.fitter = PassFitter(meter, self.config.batch_size, extra_reserve_bytes=cache_reserve)
        self._current_pass: list[int] = []  # the pass being computed, for the fitter if it runs out of memory
        self.total_steps = self.steps_per_epoch * self.config.epochs
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.ranks.share_weights(params)
        on_gpu = self.device.type == "cuda"  # one fused kernel per step there; foreach on the CPU
        self.optimizer = torch.optim.AdamW(
            params, lr=self.config.lr, weight_decay=self.config.weight_decay, fused=on_gpu, foreach=not on_gpu
        )
        warmup = int(self.config.warmup_ratio * self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _WarmupCosine(warmup, self.total_steps)
        )

        self.step, self.epoch, self.position = 0, 0, 0  # position: the next step in this epoch's plan
        self.loss_history: list[tuple[int, float]] = []
        self.heldout_history: list[tuple[int, float]] = []  # (step, held-out loss) after each epoch
        self.best: tuple[int, float] | None = None  # (step, loss) of the adapter in run_dir/best
        self.stopped_early = False
        self._epoch_ended = False
        self.step_time_s: float | None = None
        self.save_s = 0.0
        t0 = time.monotonic()
        if checkpoint.has_checkpoint(self.run_dir):
            self._restore()
        self.ready = True
        self._pending_overhead = time.monotonic() - started
        self._pending_parts = (attach_s, time.monotonic() - t0)  # (LoRA attach, checkpoint load)
        return self

    def _enable_checkpointing(self) -> None:
        # non-reentrant: the LM's input (cached audio embeddings) needs no grad of its own
        self.model.get_base_model().activation_checkpointing_enable({"use_reentrant": False})
        self.checkpointing = True

    def encode_examples(
        self,
        processor: Any = None,
        on_progress: Callable[[int, int], None] | None = None,
        *,
        splits: tuple[str, ...] = ("train", "test"),
    ) -> int:
        """Tokens and mel features of the training and held-out takes, computed now on the CPU and
        kept in run_dir as float16 (voxspace.features): call it before the first GPU slice so no slice
        pays for feature extraction. Cheap when already done. `processor`: the base's (loaded here
        only if encoding is needed and none is given); `splits`: ("test",) for an evaluation alone.
        Returns how many training takes there are."""
        if not self.prepared:
            self.prepare()
        if self._given_examples is not None:
            return len(self._given_examples)
        loaded: list[Any] = [processor or (self._base[1] if self._base is not None else None)]

        def collator() -> TranscriptionCollator:
            if loaded[0] is None:
                loaded[0] = load_processor(self.model_cfg)
            return TranscriptionCollator(loaded[0])

        for split in splits:
            features.encode(self.run_dir, split, self._takes_of(split), collator, on_progress)
        return len(self.train_takes)

    def _takes_of(self, split: str) -> list[LocalTake]:
        return self.train_takes if split == "train" else self.test_takes

    def test_examples(self) -> list[Example] | None:
        """The held-out takes as encode_examples stored them (same order as test_takes), or None."""
        if not self.prepared:
            self.prepare()
        return features.load(self.run_dir, "test", [t.take.take_id for t in self.test_takes])

    def _encoded_examples(self, split: str = "train") -> list[Example]:
        """The examples encode_examples stored for `split` ("train", or "test": the held-out takes),
        encoding them now if it was never called."""
        takes = self._takes_of(split)
        ids = [t.take.take_id for t in takes]
        stored = features.load(self.run_dir, split, ids)
        if stored is None:
            features.encode(self.run_dir, split, takes, lambda: self.collator)
            stored = features.load(self.run_dir, split, ids)
        assert stored is not None  # just written
        return stored

    @staticmethod
    def _seed_everything(seed: int) -> None:
        import numpy as np
        import torch

        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def _restore(self) -> None:
        import numpy as np
        import torch

        trainer_state, state = checkpoint.load(self.run_dir, self.model)
        self.optimizer.load_state_dict(trainer_state["optimizer"])
        self.scheduler.load_state_dict(trainer_state["scheduler"])
        rng = trainer_state["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.step, self.epoch = state["step"], state["epoch"]
        # "micro" (passes into the epoch): checkpoints written before steps were planned whole
        self.position = state["position"] if "position" in state else state["micro"] // self.config.grad_accum
        self.fitter.fit = MemoryFit.from_dict(state.get("memory_fit")) if self.fitter.meter else None
        if state.get("checkpointing") and not self.checkpointing:  # switched on after an OOM
            self._enable_checkpointing()
        self.loss_history = [tuple(x) for x in state["loss_history"]]
        self.heldout_history = [tuple(x) for x in state.get("heldout_history", [])]
        self.best = tuple(state["best"]) if state.get("best") else None
        self.stopped_early = bool(state.get("stopped_early", False))
        self.step_time_s = state.get("step_time_s")
        self.save_s = state.get("save_s", 0.0)
        log.info("resumed %s at step %d/%d", self.run_dir, self.step, self.total_steps)

    # --- one optimizer step ------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.step >= self.total_steps or self.stopped_early

    def heldout_loss(self) -> float | None:
        """Teacher-forced mean loss on the held-out takes (no generation; the encoder cache serves
        their audio after the first epoch). None when the run has no held-out takes."""
        import torch

        if not self.heldout:
            return None
        self.model.eval()
        total, count = 0.0, 0
        mine = self.ranks.shard(self.heldout)  # each rank a share; the sums are added up
        with torch.no_grad():
            for i in range(0, len(mine), self.config.batch_size):
                loss_sum, n = self._loss_sum(self.collator(mine[i : i + self.config.batch_size]))
                total, count = total + float(loss_sum), count + n
        total, count = self.ranks.sum(total, count)
        return total / count

    def _end_of_epoch(self) -> dict[str, float]:
        """Held-out loss; keep the adapter if it is the best so far; stop early if asked and due."""
        loss = self.heldout_loss()
        if loss is None:
            return {}
        self.heldout_history.append((self.step, loss))
        if self.best is None or loss < self.best[1]:
            self.best = (self.step, loss)
            if self.ranks.is_main:
                self._save_best()
        patience = self.config.early_stop_epochs
        epochs_since_best = sum(1 for step, _ in self.heldout_history if step > self.best[0])
        if patience and epochs_since_best >= patience and self.step < self.total_steps:
            self.stopped_early = True
            log.info("held-out loss has not improved for %d epochs: stopping at step %d", patience, self.step)
        return {"heldout_loss": loss}

    def _save_best(self) -> None:
        import shutil

        tmp = self.run_dir / f"{BEST_DIR}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp)
        shutil.rmtree(self.run_dir / BEST_DIR, ignore_errors=True)
        tmp.rename(self.run_dir / BEST_DIR)

    def _loss_sum(self, batch: dict[str, Any]) -> tuple[Any, int]:
        """Summed cross-entropy over the label tokens of one micro-batch, and their count."""
        import torch
        import torch.nn.functional as F

        dev = self.device
        labels = batch["labels"].to(dev)
        follows = labels[:, 1:] != IGNORE  # position t predicts token t+1
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[:, :-1] = follows
        targets = labels[:, 1:][follows]
        kw: dict[str, Any] = {"attention_mask": batch["attention_mask"].to(dev)}
        features = batch["input_features"].to(dev, next(self.base_model.model.audio_tower.parameters()).dtype)
        if self.cache is not None:
            kw["inputs_embeds"] = self.cache.inputs_embeds(
                self.model, {**batch, "input_ids": batch["input_ids"].to(dev), "input_features": features}
            )
        else:
            kw.update(input_ids=batch["input_ids"].to(dev), input_features=features)
        if self.config.label_logits_only:
            logits = self.model(**kw, logits_to_keep=keep).logits  # (n_labels, V)
        else:
            logits = self.model(**kw).logits[keep]  # lm_head over every position, then select
        return F.cross_entropy(logits.float(), targets, reduction="sum"), int(targets.numel())

    def compute_loss(self, examples: list[Example]) -> float:
        """Mean loss over `examples` without training (used by tests and evaluation)."""
        import torch

        with torch.no_grad():
            total, n = self._loss_sum(self.collator(examples))
        return float(total) / n

    def _train_step(self) -> dict[str, float]:
        import torch

        lengths, cfg = self.lengths, self.config
        plan = plan_steps(lengths, cfg.step_size, cfg.seed, self.epoch, cfg.length_batching)
        step_ids = plan[self.position]
        n_tokens = sum(self.examples[i].n_labels for i in step_ids)  # of the whole step, on every rank
        self.model.train()
        self.base_model.model.audio_tower.eval()  # frozen: no dropout, same output as the cache
        if cfg.adapt_encoder:  # the adapted top layers and projector train (their LoRA dropout on)
            for layer in self.base_model.model.audio_tower.layers[-cfg.adapt_encoder :]:
                layer.train()
            self.base_model.model.multi_modal_projector.train()
        total = 0.0
        mine = self.ranks.shard(step_ids)  # all of them in a single process
        passes = self.fitter.passes(mine, lengths) if mine else []
        for ids in passes:
            self._current_pass = ids
            self.fitter.before_pass()
            loss_sum, _ = self._loss_sum(self.collator([self.examples[i] for i in ids]))
            loss = loss_sum / n_tokens
            loss.backward()
            total += loss.item()
            self.fitter.after_pass(len(ids) * max(lengths[i] for i in ids))
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.ranks.sum_grads(params)  # every rank now holds the whole step's mean gradient
        (total,) = self.ranks.sum(total)
        if not math.isfinite(total):
            self.optimizer.zero_grad(set_to_none=True)
            raise NaNLoss(
                f"Training diverged at step {self.step + 1} (the loss became NaN or infinite). "
                "The last good checkpoint is kept; try a lower learning rate.",
                detail=f"loss={total}",
            )
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm))
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.fitter.after_step()
        self.position += 1
        self.step += 1
        self.loss_history.append((self.step, total))
        if self.position >= len(plan):
            self.epoch, self.position = self.epoch + 1, 0
            self._epoch_ended = True  # train_slice measures the held-out loss, outside the OOM retry
        takes_per_pass = max((len(ids) for ids in passes), default=0)
        return {
            "loss": total,
            "lr": lr,
            "grad_norm": grad_norm,
            "epoch": self.epoch,
            "takes_per_pass": takes_per_pass,
        }

    def _after_oom(self, error: BaseException) -> None:
        """Make the step that ran out of memory fit, or raise OutOfGPUMemory if nothing can."""
        self.optimizer.zero_grad(set_to_none=True)
        failed = self._current_pass
        if self.fitter.shrink(failed, self.lengths):
            return
        if self.fitter.meter is not None and not self.checkpointing:
            log.info("one take per pass does not fit: gradient checkpointing on, memory measured again")
            self._enable_checkpointing()
            self.fitter.remeasure()
            return
        if self.fitter.meter is None:
            advice = (
                "Tick 'Fit takes per pass to the GPU's free memory' (no --fixed-batch), "
                "or lower the batch size."
            )
        else:
            advice = "Even one take per pass, with gradient checkpointing, does not fit: try 8-bit precision."
        raise OutOfGPUMemory(
            f"The GPU ran out of memory with {len(failed)} take(s) in one pass. {advice}",
            detail=str(error)[:200],
        ) from error

    # --- the slice -----------------------------------------------------------------------------
    def train_slice(
        self, budget_s: float | None = None, cancel: CancelFlag = None, max_steps: int | None = None
    ) -> SliceSummary:
        """Train until done, cancelled, `max_steps` run, or the budget would be overrun; then save."""
        import torch

        if not self.ready:
            self.setup()
        budget = float(self.config.slice_seconds if budget_s is None else budget_s)
        started = time.monotonic()
        overhead = self._pending_overhead
        (attach_s, load_s), self._pending_parts = self._pending_parts, (0.0, 0.0)
        self._pending_overhead = 0.0
        if self.tracker is not None:
            self.tracker.start(self.config.to_dict())
        step_seconds, steps_run, cancelled, per_pass = 0.0, 0, False, 0
        misses_before = self.cache.misses if self.cache is not None else 0
        try:
            while True:
                # rank 0 decides for every rank (data_parallel): they all make the same calls
                move = self.ranks.decide(self._next_move(budget, started, cancel, steps_run, max_steps))
                self.ended = move == END
                if move != STEP:
                    cancelled = (
                        move == END and not self.done and (cancel_requested(cancel) or not self.ranks.is_main)
                    )
                    break
                t0 = time.monotonic()
                while True:  # a step that ran out of memory is retried on this rank alone
                    try:
                        metrics = self._train_step()
                        break
                    except torch.OutOfMemoryError as e:
                        self._after_oom(e)  # raises unless the step can be retried in smaller passes
                dt = time.monotonic() - t0
                if self._epoch_ended:
                    self._epoch_ended = False
                    metrics.update(self._end_of_epoch())
                step_seconds += dt
                steps_run += 1
                per_pass = max(per_pass, int(metrics["takes_per_pass"]))
                # running estimate: the next slice's GPU duration is planned from it
                self.step_time_s = dt if self.step_time_s is None else 0.7 * self.step_time_s + 0.3 * dt
                if self.tracker is not None:
                    self.tracker.log({**metrics, "step_time_s": dt, **_gpu_memory()}, step=self.step)
            t0 = time.monotonic()
            if self.ranks.is_main:
                self.save_checkpoint()
                if self.done:
                    self.save_adapter()
            self.save_s = time.monotonic() - t0
        finally:
            if self.tracker is not None:
                self.tracker.finish()
        wall = time.monotonic() - started
        return SliceSummary(
            step=self.step,
            total_steps=self.total_steps,
            last_loss=self.loss_history[-1][1] if self.loss_history else None,
            done=self.done,
            cancelled=cancelled,
            steps_run=steps_run,
            step_seconds=step_seconds,
            overhead_seconds=overhead + wall - step_seconds,
            step_time_s=self.step_time_s,
            epoch=self.epoch,
            takes_per_pass=per_pass,
            encoder_runs=(self.cache.misses - misses_before) if self.cache is not None else 0,
            peak_gpu_gb=_gpu_memory().get("gpu_mem_gb"),
            attach_seconds=attach_s,
            load_seconds=load_s,
            save_seconds=self.save_s,
        )

    def _next_move(
        self, budget: float, started: float, cancel: CancelFlag, steps_run: int, max_steps: int | None
    ) -> int:
        """STEP, PAUSE (the slice ends: budget or max_steps; more slices follow) or END (done or
        cancelled). Only rank 0's answer counts in a data-parallel run."""
        if self.done or cancel_requested(cancel):
            return END
        if max_steps is not None and steps_run >= max_steps:
            return PAUSE
        remaining = budget - (time.monotonic() - started) - self.save_s
        if self.step_time_s is not None and remaining < STOP_MARGIN * self.step_time_s:
            return PAUSE
        return STEP

    # --- saving ----------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        import numpy as np
        import torch

        trainer_state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": np.random.get_state(),
                "python": random.getstate(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
        }
        state = {
            "step": self.step,
            "total_steps": self.total_steps,
            "epoch": self.epoch,
            "position": self.position,
            "memory_fit": self.fitter.fit.to_dict() if self.fitter.fit else None,
            "checkpointing": self.checkpointing,
            "loss_history": self.loss_history,
            "heldout_history": self.heldout_history,
            "best": list(self.best) if self.best else None,
            "stopped_early": self.stopped_early,
            "step_time_s": self.step_time_s,
            "save_s": self.save_s,
            "config": self.config.to_dict(),
            "data": self.data,
            "base_model": self.model_cfg.base_model,
            "takes": self.pins.to_dict() if self.pins else None,  # a run pulled from the Hub keeps them
        }
        path = checkpoint.save(self.run_dir, self.model, trainer_state, state)
        self.record().save(self.run_dir)
        return path

    def save_adapter(self) -> Path:
        """The publishable adapter (peft format) in run_dir/adapter: the epoch with the lowest
        held-out loss (run_dir/best), or the last step when there is no held-out loss."""
        import shutil

        out = self.run_dir / ADAPTER_DIR
        best = self.run_dir / BEST_DIR
        if self.best is not None and best.is_dir():
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(best, out)
        else:
            self.model.save_pretrained(out)
        return out

    def record(self) -> RunRecord:
        """The run's summary.json, keeping an evaluation already stored there.

        Usable from prepare() on: before setup() there are no steps yet.
        """
        previous = RunRecord.load(self.run_dir) if (self.run_dir / "summary.json").is_file() else None
        started = hasattr(self, "loss_history")  # setup() sets it after total_steps and step
        return RunRecord(
            base_model=self.model_cfg.base_model,
            dataset=self.data,
            config=self.config.to_dict(),
            languages=sorted({t.take.language for t in self.train_takes if t.take.language}),
            dataset_revision=self.pins.revision if self.pins else None,
            train_take_ids=[t.take.take_id for t in self.train_takes],
            test_take_ids=[t.take.take_id for t in self.test_takes],
            n_train_takes=len(self.train_takes),
            n_test_takes=len(self.test_takes),
            train_minutes=round(sum(t.take.duration for t in self.train_takes) / 60, 3),
            steps_done=self.step if started else 0,
            steps_total=self.total_steps if started else 0,
            loss_history=list(self.loss_history) if started else [],
            heldout_loss_history=list(self.heldout_history) if started else [],
            best_step=self.best[0] if started and self.best else None,
            stopped_early=self.stopped_early if started else False,
            eval=previous.eval if previous else None,
            finished=self.done if started else False,
        )

    def close(self) -> Any:
        """Remove LoRA from the shared base model and return it (for the next run in this process)."""
        model = getattr(self, "model", None)  # set as soon as LoRA is attached, even if setup failed later
        base = detach_lora(model) if model is not None else (self._base[0] if self._base else None)
        if model is not None and base is not None and getattr(self, "checkpointing", False):
            base.gradient_checkpointing_disable()  # the shared base must not keep this run's choice
        self.model, self.base_model, self.ready = None, None, False
        return base


SMALL_GPU_GB = 24.0  # below this, the default batch's activations do not fit without checkpointing


def needs_checkpointing(device: Any) -> bool:
    """Gradient checkpointing is switched on by itself on a small GPU (a 16 GB T4, say).

    Measured at full size on an H100 (README "Performance", one run): the 8-bit default peaked at
    19,774 MiB without it and 8,972 MiB with it, for ~1.2x the step time there. It never changes the
    weights learned (tested), so a run may resume on other hardware.
    """
    import torch

    if getattr(device, "type", str(device)) != "cuda":
        return False
    total_gb = torch.cuda.get_device_properties(device).total_memory / 2**30
    if total_gb < SMALL_GPU_GB:
        log.info("GPU has %.0f GB: gradient checkpointing on to fit the batch", total_gb)
        return True
    return False


def _gpu_memory() -> dict[str, float]:
    import torch

    if not torch.cuda.is_available():
        return {}
    return {"gpu_mem_gb": torch.cuda.max_memory_allocated() / 2**30}
