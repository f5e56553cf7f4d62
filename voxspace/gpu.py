"""Where training runs: ZeroGPU slices, or one long slice in a background thread; one run at a time.

    hw = detect_hardware()
    preload_base(model_cfg)                                  # once, at start-up
    if hw.kind == "zerogpu":
        summary = run_in_slices(run_dir, cap_s=settings.slice_cap_s, on_slice=show)
    else:
        handle = start_background_run(trainer); handle.progress(); handle.cancel()

On ZeroGPU each slice is one `@spaces.GPU` call in a forked worker: it receives and returns only
picklable values (a run folder, numbers, a SliceSummary) and saves its checkpoint before it
returns, because the worker's memory is thrown away. The base model is loaded once per process
(`preload_base`), so a slice only attaches LoRA and reads the checkpoint. Outside a Space,
`spaces.GPU` returns the function unchanged, so the same chaining loop runs locally.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import spaces  # before torch: on ZeroGPU it patches CUDA initialisation

from voxspace.errors import (
    BadHyperparameter,
    Busy,
    GpuUnavailable,
    OutOfGPUMemory,
    QuotaExceeded,
    SliceTimeout,
    SpaceGpuLimit,
    TrainError,
    VoxSpaceError,
)
from voxspace.model import ModelConfig, load_base
from voxspace.train import one_step_budget

log = logging.getLogger(__name__)
FIRST_SLICE_OVERHEAD_S = 20.0  # worker start + LoRA attach + checkpoint, before we have measured it
# On ZeroGPU one base model, loaded at start-up, serves every run and evaluation. bf16: 8-bit weights
# (bitsandbytes Int8Params) have not been shown to survive spaces' pack to disk and move to the GPU
# (bench/zerogpu_check.sh checks it where a GPU is lent), so 8-bit is refused there until they have.
ZEROGPU_PRECISION = "bf16"


# --- hardware -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hardware:
    kind: str  # "zerogpu" | "cuda" | "cpu"
    name: str
    memory_gb: float | None = None

    @property
    def description(self) -> str:
        mem = f", {self.memory_gb:.0f} GB" if self.memory_gb else ""
        return {
            "zerogpu": "ZeroGPU (shared GPU, time-sliced)",
            "cuda": f"Dedicated GPU: {self.name}{mem}",
            "cpu": "CPU only (slow; fine for the tiny test model)",
        }[self.kind]


def on_zerogpu(env: dict[str, str] | None = None) -> bool:
    """Whether this process is a ZeroGPU Space (spaces reads the same variable); imports nothing."""
    env = os.environ if env is None else env
    return env.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


def detect_hardware(env: dict[str, str] | None = None) -> Hardware:
    """ZeroGPU is announced by SPACES_ZERO_GPU; torch cannot see its GPU outside a @spaces.GPU call."""
    if on_zerogpu(env):
        return Hardware("zerogpu", "ZeroGPU")
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return Hardware("cuda", props.name, props.total_memory / 2**30)
    return Hardware("cpu", "CPU")


# --- the base model, loaded once per process --------------------------------------------------------
_BASE: dict[tuple[str, str], tuple[Any, Any]] = {}
_BASE_LOCK = threading.Lock()


def preload_base(model_cfg: ModelConfig) -> tuple[Any, Any]:
    """(model, processor) for `model_cfg`, loaded on first use and kept for every later run and slice.

    On ZeroGPU only the main thread may load (spaces emulates CUDA there alone, and what it loads
    before launch() is what every GPU call gets): elsewhere a base not loaded at start-up is an error.
    """
    key = (model_cfg.base_model, model_cfg.precision)
    with _BASE_LOCK:
        if key not in _BASE:
            in_main = threading.current_thread() is threading.main_thread()
            if detect_hardware().kind == "zerogpu" and not in_main:
                raise TrainError(
                    "On ZeroGPU the base model is loaded once, when the Space starts, in "
                    f"{ZEROGPU_PRECISION}; this run asks for {model_cfg.base_model} "
                    f"in {model_cfg.precision}. "
                    f"Choose {ZEROGPU_PRECISION}, or restart the Space with VOXSPACE_BASE_MODEL set to it.",
                    detail=f"loaded: {sorted(_BASE)}",
                )
            _BASE.clear()  # one base at a time: a second would not fit next to the first on a GPU
            started = time.monotonic()
            _BASE[key] = load_base(model_cfg)
            log.info(
                "base model %s (%s) loaded in %.1f s (process %d, thread %s)",
                *key,
                time.monotonic() - started,
                os.getpid(),
                threading.current_thread().name,
            )
        return _BASE[key]


def base_loaded(model_cfg: ModelConfig) -> bool:
    return (model_cfg.base_model, model_cfg.precision) in _BASE


def check_precision(precision: str, hardware: Hardware | None = None) -> None:
    """Refuse, before anything is spent, a precision the shared ZeroGPU base is not loaded in."""
    hardware = hardware or detect_hardware()
    if hardware.kind == "zerogpu" and precision != ZEROGPU_PRECISION:
        raise BadHyperparameter(
            f"On ZeroGPU the base model is loaded once at start-up in {ZEROGPU_PRECISION} and shared by "
            f"every run; {precision} is not available there (8-bit weights are not yet verified through "
            f"ZeroGPU's move to the GPU). Choose {ZEROGPU_PRECISION} under Advanced settings."
        )


def default_precision(hardware: Hardware | None = None) -> str | None:
    """The precision a new run should default to here: None means TrainConfig's own default."""
    zerogpu = hardware.kind == "zerogpu" if hardware is not None else on_zerogpu()
    return ZEROGPU_PRECISION if zerogpu else None


def load_base_at_startup(base_model: str) -> tuple[Any, Any] | None:
    """On ZeroGPU: load the shared base now, in the main thread, before the app's launch().

    Call it from the Space's entry point; elsewhere it does nothing (a run loads its base on first use).
    """
    if detect_hardware().kind != "zerogpu":
        return None
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("load_base_at_startup must run in the main thread, where spaces emulates CUDA")
    loaded = preload_base(ModelConfig(base_model, precision=ZEROGPU_PRECISION))
    _import_for_gpu_calls()
    return loaded


def _import_for_gpu_calls() -> None:
    """Import now what every GPU call imports: ZeroGPU forks a fresh worker per call, which inherits
    the Space process's modules; an import left to the worker (peft, for LoRA attach: 6-7 s per call
    on a loaded 2-core CPU in the tests' world) is paid again in every call, on the visitor's GPU clock."""
    t0 = time.monotonic()
    import peft  # noqa: F401

    log.info("peft imported for the GPU calls in %.1f s (process %d)", time.monotonic() - t0, os.getpid())


def _return_base(model_cfg: ModelConfig, model: Any) -> None:
    key = (model_cfg.base_model, model_cfg.precision)
    if key in _BASE:
        _BASE[key] = (model, _BASE[key][1])


# --- GPU calls that keep VoxSpace's error contract ------------------------------------------------
@dataclass(frozen=True)
class Raised:
    """A typed error raised inside a GPU call, carried back as the call's result. ZeroGPU's worker
    would turn it into gr.Error("ZeroGPU worker error", <class name>) and lose its sentence."""

    error: VoxSpaceError


def gpu_task(duration: Callable[..., int]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`@spaces.GPU(duration=...)`, plus: a VoxSpaceError raised inside reaches the caller as itself,
    and ZeroGPU's own refusals (quota, no GPU, ...) become typed errors with their sentence.

    The same code path runs everywhere; outside ZeroGPU spaces.GPU returns the function unchanged.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def inside(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except VoxSpaceError as e:
                log.info("%s in a GPU call: %s", type(e).__name__, e)
                return Raised(e)

        on_gpu = spaces.GPU(duration=duration)(inside)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = on_gpu(*args, **kwargs)
            except VoxSpaceError:
                raise
            except Exception as e:
                if (typed := zerogpu_error(e)) is not None:
                    raise typed from e
                raise
            if isinstance(result, Raised):
                raise result.error
            return result

        return call

    return decorate


# --- ZeroGPU slices ---------------------------------------------------------------------------------
def plan_slice(
    cap_s: float,
    *,
    remaining_steps: int | None,
    step_time_s: float | None,
    overhead_s: float | None,
    save_s: float = 0.0,
) -> tuple[float, int]:
    """(budget for the slice's loop, GPU duration to ask for), the duration capped at `cap_s`.

    The duration is the planned work (remaining steps x measured step time, with room for the
    checkpoint save the loop keeps in reserve) plus the per-slice overhead (the caller passes the
    smallest seen: the first slice's includes one-off costs); before anything is measured we ask
    for the cap.
    """
    overhead = FIRST_SLICE_OVERHEAD_S if overhead_s is None else overhead_s
    if step_time_s is None or remaining_steps is None:
        return max(1.0, cap_s - overhead), int(cap_s)
    one_step = one_step_budget(step_time_s, save_s)
    if one_step > cap_s:
        raise SliceTimeout(
            f"A {cap_s:g} s GPU slice is too short: one training step takes about {step_time_s:.1f} s, "
            f"and saving the checkpoint {save_s:.1f} s. Use a smaller batch size or raise the slice length."
        )
    budget = min(cap_s - overhead, remaining_steps * step_time_s * 1.25 + one_step)
    # at least one step: an overhead measured once may hold one-off work; slices that still end
    # with no step are caught by the caller (max_idle_slices)
    budget = max(budget, one_step)
    return budget, int(min(cap_s, math.ceil(budget + overhead)))


def _slice_duration(
    run_dir: str,
    budget_s: float,
    duration_s: int,
    cancel_path: str | None = None,
    max_steps: int | None = None,
) -> int:
    """spaces calls this with the task's own arguments to learn how long a GPU to reserve."""
    return duration_s


@gpu_task(duration=_slice_duration)
def gpu_slice(
    run_dir: str,
    budget_s: float,
    duration_s: int,
    cancel_path: str | None = None,
    max_steps: int | None = None,
) -> Any:
    """One ZeroGPU call: rebuild the Trainer from run_dir, train within the budget, checkpoint, return."""
    from voxspace.train import Trainer

    probe = Trainer(run_dir)
    base = preload_base(probe.model_cfg)
    trainer = Trainer(run_dir, base=base, tracker=_TRACKERS.get(run_dir), cache_on_disk=True)
    try:
        return trainer.train_slice(budget_s, cancel=cancel_path, max_steps=max_steps)
    finally:
        _return_base(probe.model_cfg, trainer.close())


_TRACKERS: dict[str, Any] = {}  # per run folder; set by run_in_slices (fork copies it into the worker)


SAVED = "Your training is saved at its last checkpoint: press Resume"


def zerogpu_error(e: BaseException) -> TrainError | None:
    """The typed error, with what to do, for a refusal of ZeroGPU's scheduler or worker.

    spaces raises gr.Error with these titles and texts (spaces/zero/client.py, wrappers.py); anything
    else is None (an unexpected error, reported as such by the caller).
    """
    title = str(getattr(e, "title", "") or "")
    message = str(getattr(e, "message", "") or e)
    text = f"{title} {message}"
    detail = text.strip()[:300]
    if "No GPU was available" in text:
        if "after 60s" in text:
            return GpuUnavailable(
                f"ZeroGPU found no free GPU within a minute: many people are using it. {SAVED} in a "
                "few minutes.",
                detail=detail,
            )
        return GpuUnavailable(
            f"No GPU is free on ZeroGPU right now. {SAVED} in a minute or two.", detail=detail
        )
    if "Space app has reached its GPU limit" in text:
        return SpaceGpuLimit(
            "ZeroGPU charged this GPU call to the Space instead of to you, and the Space's own GPU "
            "allowance is used up. Open the Space on huggingface.co while logged in to Hugging Face, so your "
            f"own daily quota is used. {SAVED} then.",
            detail=detail,
        )
    if "illegal duration" in text.lower() or "larger than the maximum allowed" in text:
        asked = message.split("(")[1].split(")")[0] if "(" in message else "the GPU call"
        return SliceTimeout(
            f"ZeroGPU refused a GPU call of {asked}: longer than one call may last. Lower the longest call "
            f"VoxSpace asks for (VOXSPACE_SLICE_CAP_S). {SAVED} then.",
            detail=detail,
        )
    if "runs limit" in text or "pending credits" in text:
        return QuotaExceeded(
            f"You have too many ZeroGPU tasks running at once. {SAVED} when one of them has finished.",
            detail=detail,
        )
    if "quota" in text.lower() and "exceeded" in text.lower():
        used = message.split("quota (")[1].split(")")[0] if "quota (" in message else None
        wait = message.split("Try again in ")[1].split(".")[0].strip() if "Try again in " in message else None
        parts = ["Your ZeroGPU quota for today is used up" + (f" ({used})." if used else ".")]
        parts.append(f"It comes back in {wait}." if wait else "It comes back within a day.")
        parts.append(f"{SAVED} then.")
        if "Pro ZeroGPU" not in message:
            parts.append("A Hugging Face PRO account gets 40 GPU minutes a day instead of 5.")
        return QuotaExceeded(" ".join(parts), detail=detail)
    if "Expired ZeroGPU proxy token" in text:
        return GpuUnavailable(
            f"Your ZeroGPU session expired. Reload the page. {SAVED} to continue.", detail=detail
        )
    if "ZeroGPU worker error" in text:
        if "GPU task aborted" in text:
            return SliceTimeout(
                "ZeroGPU stopped a GPU call before it finished (it ran past the time reserved for it). "
                f"{SAVED} to continue.",
                detail=detail,
            )
        if "OutOfMemoryError" in message:
            return OutOfGPUMemory(
                "The GPU ran out of memory. Lower the batch size (Advanced settings), then press Resume.",
                detail=detail,
            )
    return None


def run_in_slices(
    run_dir: str | Path,
    *,
    cap_s: float,
    cancel_path: str | Path | None = None,
    on_slice: Callable[[Any], None] | None = None,
    push: Callable[[Path], None] | None = None,
    tracker: Any = None,
    max_steps_per_slice: int | None = None,
    max_idle_slices: int = 2,
    owner: str = "local",
    queue: RunQueue | None = None,
    keep_going: Callable[[], bool] | None = None,
) -> Any:
    """Chain GPU slices until the run is done or cancelled; returns the last SliceSummary.

    Only one run trains at a time (`queue`, Busy otherwise). Checkpoints are pushed (`push`)
    between slices, outside the GPU call: uploading spends no GPU time. `keep_going` is asked
    between slices: False ends the chain at the last checkpoint.
    """
    queue = QUEUE if queue is None else queue
    queue.require_turn(owner)
    try:
        return _chain_slices(
            str(run_dir),
            cap_s,
            cancel_path,
            on_slice,
            push,
            tracker,
            max_steps_per_slice,
            max_idle_slices,
            keep_going,
        )
    finally:
        queue.leave(owner)


def _chain_slices(
    run_dir: str,
    cap_s: float,
    cancel_path: str | Path | None,
    on_slice: Any,
    push: Any,
    tracker: Any,
    max_steps_per_slice: int | None,
    max_idle_slices: int,
    keep_going: Callable[[], bool] | None = None,
) -> Any:
    from voxspace import checkpoint
    from voxspace.train import Trainer

    if tracker is not None:
        _TRACKERS[run_dir] = tracker
    # features off the GPU clock: the slices only read them (the base's processor is on the CPU)
    trainer = Trainer(run_dir)
    n = trainer.encode_examples(preload_base(trainer.model_cfg)[1])
    log.info("features of %d takes ready before the first GPU call (process %d)", n, os.getpid())
    summary, idle, overhead = None, 0, None
    while True:
        if summary is not None and keep_going is not None and not keep_going():
            return summary  # the last checkpoint is kept: Resume continues from it
        state = checkpoint.read_state(run_dir) if checkpoint.has_checkpoint(run_dir) else {}
        remaining = state["total_steps"] - state["step"] if state else None
        budget, duration = plan_slice(
            cap_s,
            remaining_steps=remaining,
            step_time_s=state.get("step_time_s"),
            overhead_s=overhead,
            save_s=state.get("save_s", 0.0),
        )
        called = time.monotonic()
        summary = gpu_slice(
            run_dir, budget, duration, str(cancel_path) if cancel_path else None, max_steps_per_slice
        )
        # what the slice itself could not time: waiting for the GPU, the worker's start, weights to the GPU
        summary.call_seconds = time.monotonic() - called
        # the steady cost of a slice: the first one's also holds one-off work (encoding, tracker start)
        overhead = summary.overhead_seconds if overhead is None else min(overhead, summary.overhead_seconds)
        log.info(
            "slice: step %d/%d, %.1f s in steps, %.1f s overhead, %.1f s whole call",
            summary.step,
            summary.total_steps,
            summary.step_seconds,
            summary.overhead_seconds,
            summary.call_seconds,
        )
        if on_slice is not None:
            on_slice(summary)
        if push is not None:
            push(Path(run_dir))
        if summary.done or summary.cancelled:
            return summary
        idle = idle + 1 if summary.steps_run == 0 else 0
        if idle >= max_idle_slices:
            raise SliceTimeout(
                "GPU slices end before a single training step fits. Use a smaller batch size "
                "or a longer slice."
            )


# --- one long slice in a background thread (dedicated GPU or CPU) -----------------------------------
@dataclass
class Progress:
    status: str  # "starting" | "running" | "done" | "cancelled" | "failed"
    step: int = 0
    total_steps: int = 0
    last_loss: float | None = None
    seconds_left: float | None = None
    error: str | None = None  # the user message of a failure
    losses: list[tuple[int, float]] = field(default_factory=list)


class RunHandle:
    """A training run in a worker thread: poll `progress()`, `cancel()` at the next step boundary.

    The run saves a checkpoint every `checkpoint_every_s` (slices back to back in this thread, which
    learn exactly what one slice would) and hands each to `on_checkpoint`, e.g. to mirror it on
    the Hub: a process killed in the middle of a long run loses at most that much training.
    """

    def __init__(
        self,
        trainer: Any,
        *,
        on_done: Callable[[], None] | None = None,
        checkpoint_every_s: float = math.inf,
        on_checkpoint: Callable[[Any], None] | None = None,
    ) -> None:
        self.trainer = trainer
        self._cancel = threading.Event()
        self._on_done = on_done
        self._every_s = checkpoint_every_s
        self._on_checkpoint = on_checkpoint
        self.summary: Any = None
        self.error: BaseException | None = None
        self._status = "starting"
        self._thread = threading.Thread(target=self._run, name="voxspace-train", daemon=True)

    def start(self) -> RunHandle:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            if not self.trainer.ready:
                self.trainer.setup()
            self._status = "running"
            while True:
                t = self.trainer
                budget = max(self._every_s, one_step_budget(t.step_time_s, t.save_s))
                self.summary = t.train_slice(budget, cancel=self._cancel)
                if self.summary.done or self.summary.cancelled:
                    break
                if self._on_checkpoint is not None:
                    self._on_checkpoint(self.summary)
            self._status = "cancelled" if self.summary.cancelled else "done"
        except BaseException as e:  # the thread must report every failure, not die silently
            log.exception("training run failed")
            self.error = e
            self._status = "failed"
        finally:
            if self._on_done is not None:
                self._on_done()

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def progress(self) -> Progress:
        t = self.trainer
        if not getattr(t, "ready", False) and self._status == "starting":
            return Progress("starting")
        step, total = getattr(t, "step", 0), getattr(t, "total_steps", 0)
        history = list(getattr(t, "loss_history", []))
        left = (total - step) * t.step_time_s if getattr(t, "step_time_s", None) else None
        err = None
        if self.error is not None:
            err = getattr(self.error, "user_message", None) or "Training failed unexpectedly; see the log."
        return Progress(self._status, step, total, history[-1][1] if history else None, left, err, history)


# --- one run at a time per process ---------------------------------------------------------------------
class RunQueue:
    """Who may train now. `join` returns the caller's place: 0 means "your turn".

    `capacity` runs go at once: 1 on a GPU of our own; on ZeroGPU each call gets a GPU of its own,
    so several visitors' runs proceed side by side (Settings.zerogpu_runs).
    """

    def __init__(self, capacity: int = 1) -> None:
        self._lock = threading.Lock()
        self._waiting: list[str] = []
        self.capacity = capacity

    def join(self, owner: str) -> int:
        with self._lock:
            if owner not in self._waiting:
                self._waiting.append(owner)
            return max(0, self._waiting.index(owner) - self.capacity + 1)

    def position(self, owner: str) -> int | None:
        with self._lock:
            return self._waiting.index(owner) if owner in self._waiting else None

    def leave(self, owner: str) -> None:
        with self._lock:
            if owner in self._waiting:
                self._waiting.remove(owner)

    def require_turn(self, owner: str) -> None:
        """Raise Busy with the caller's place in the queue unless it is their turn."""
        place = self.join(owner)
        if place:
            ahead = f"{place} run{'s' if place > 1 else ''}"
            raise Busy(
                f"Another training run is using the GPU. You are number {place + 1} in the queue "
                f"({ahead} ahead of you); this page will start yours when it is free."
            )


QUEUE = RunQueue()


def start_background_run(trainer: Any, *, owner: str = "local", queue: RunQueue = QUEUE) -> RunHandle:
    """Start `trainer` as one long slice in a thread, once it is `owner`'s turn (else Busy)."""
    queue.require_turn(owner)
    return RunHandle(trainer, on_done=lambda: queue.leave(owner)).start()


def wait_for(
    handle: RunHandle, *, poll_s: float = 0.5, on_progress: Callable[[Progress], None] | None = None
) -> Progress:
    """Block until the run ends, reporting progress; re-raise its failure (for the CLI)."""
    while not handle.wait(poll_s):
        if on_progress is not None:
            on_progress(handle.progress())
    if handle.error is not None:
        raise handle.error
    final = handle.progress()
    if on_progress is not None:
        on_progress(final)
    return final
