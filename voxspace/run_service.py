"""Run training for one person: the single layer the CLI and the Train tab both call.

    handle = start_run(settings, identity, data="alice/voxspace-recordings", run_dir=root / "run-1",
                       config=TrainConfig.quick())
    p = progress(handle)      # phase, step/total, time left, losses, log lines, queue place, eval
    cancel(handle)            # stops at the next step boundary; the checkpoint is kept
    r = find_resumable(settings, identity)   # after a restart: a local run, or the Hub copy
    start_run(settings, identity, run_dir=r.run_dir, resume=True)

A run goes queued -> evaluating-before -> training -> evaluating-after -> done (or failed /
cancelled / paused). Hyperparameters and the takes are checked in `start_run` itself, before any model is
loaded or GPU time spent, so a bad value or too few takes is an exception the caller shows at
once; everything later is reported through `progress` with a sentence, never a traceback.

One run holds the GPU at a time (gpu.QUEUE, for the whole run: both evaluations included); a
second person's run waits in the queue and sees its place. On ZeroGPU, where every call gets a GPU
of its own, up to Settings.zerogpu_runs runs go at once. On ZeroGPU (or when `sliced`) training
is chained `@spaces.GPU` slices, each checkpoint pushed to the person's private model repo between
slices so a Space restart loses nothing; on a dedicated GPU or a CPU it is one long slice. A
ZeroGPU run started from the page is paid from the visitor's own quota, so it pauses at its last
checkpoint once the visitor has closed every page of theirs (voxspace.page_watch); elsewhere a run
goes on without a page.
"""

from __future__ import annotations

import contextvars
import logging
import math
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import spaces  # noqa: F401 - before torch: on ZeroGPU it patches CUDA initialisation

from voxspace import checkpoint, data_parallel, gpu, gpu_eval, page_watch, run_record, timings
from voxspace.auth import Identity
from voxspace.errors import BadInput, HubError, TrainError, VoxSpaceError
from voxspace.hub import as_user_error, user_cache_dir
from voxspace.layout import split_for
from voxspace.model import ModelConfig, check_base_model, describe_adaptation
from voxspace.run_record import ADAPTER_DIR, SUMMARY, EvalReport, RunRecord
from voxspace.settings import Settings
from voxspace.tracking import TrackioTracker
from voxspace.train import RUN_SPEC, TrainConfig, Trainer
from voxspace.worker import LoggedWorker

log = logging.getLogger(__name__)

CHECKPOINT_REPO_NAME = "voxspace-checkpoints"  # the person's private model repo for resumable state
CANCEL_FILE = "CANCEL"  # a file, not an Event: it also reaches ZeroGPU's forked worker
FINISHED = ("done", "failed", "cancelled", "paused")
PAUSED = "Paused: the page was closed. The checkpoint is kept: Resume continues from it."
LOG_LINES = 12  # how many recent log lines progress() returns
# Planning figures, seconds of compute per second of audio per epoch in bf16: bench/results/
# h100_train_speed.txt measured 86.6 audio-s/s in bf16 and 39.3 in 8-bit on an H100 at full size;
# ZeroGPU's card is taken as half as fast; the CPU figure is a rough guess for the 3B model.
COMPUTE_S_PER_AUDIO_S = {"zerogpu": 0.025, "cuda": 0.012, "cpu": 10.0}
INT8_SLOWDOWN = 2.2  # 8-bit base vs bf16, same bench
EVAL_S_PER_TAKE = {"zerogpu": 2.0, "cuda": 2.0, "cpu": 30.0}


# --- where runs live ---------------------------------------------------------------------------
def runs_root(settings: Settings, identity: Identity) -> Path:
    """This person's run folders (the Publish tab lists the finished ones from here)."""
    return run_record.runs_root(settings.data_dir, identity.username)


def checkpoint_repo(identity: Identity) -> str | None:
    """The private model repo that mirrors a signed-in person's checkpoint; None when not signed in."""
    return f"{identity.username}/{CHECKPOINT_REPO_NAME}" if identity.signed_in else None


# --- progress -------------------------------------------------------------------------------------
@dataclass
class RunProgress:
    """Everything the page and the CLI show about a run, as plain values."""

    phase: str  # queued | evaluating-before | training | evaluating-after, then one of FINISHED
    run_dir: str
    step: int = 0
    total: int = 0
    seconds_left: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    heldout: list[tuple[int, float]] = field(default_factory=list)  # held-out loss after each epoch
    best_step: int | None = None  # the step whose adapter is kept (lowest held-out loss so far)
    log: list[str] = field(default_factory=list)
    runs_ahead: int | None = None  # while queued: how many runs hold or wait for the GPU before this one
    eval: EvalReport | None = None
    message: str | None = None  # the sentence to show when the run failed

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED


class Run(LoggedWorker):
    """One person's training run, driven by a worker thread. Use the module functions on it."""

    def __init__(
        self,
        trainer: Trainer,
        *,
        owner: str,
        sliced: bool,
        cap_s: float,
        push: Callable[[Path], None] | None,
        tracker: Any,
        evaluate: bool,
        max_new_tokens: int | None,
        max_steps_per_slice: int | None,
        queue: gpu.RunQueue,
        checkpoint_every_s: float = math.inf,
        in_space: bool = False,
        timings_dir: Path | None = None,
        page_open: Callable[[], bool] | None = None,
    ) -> None:
        self.trainer, self.owner, self.queue = trainer, owner, queue
        self._in_space, self._timings_dir = in_space, timings_dir
        self.run_dir = trainer.run_dir
        self.cancel_path = self.run_dir / CANCEL_FILE
        self.cancel_path.unlink(missing_ok=True)
        self._sliced, self._cap_s, self._push, self._tracker = sliced, cap_s, push, tracker
        self._evaluate, self._max_new_tokens, self._max_steps = evaluate, max_new_tokens, max_steps_per_slice
        self._checkpoint_every_s = checkpoint_every_s
        self._page_open = page_open  # None: the run goes on without a page
        self._paused = False
        self._cancelled = threading.Event()
        self._handle: gpu.RunHandle | None = None
        self.phase, self.runs_ahead = "queued", None
        self.step, self.total, self.step_time_s = 0, 0, None
        self.losses: list[tuple[int, float]] = []
        self.heldout: list[tuple[int, float]] = []
        self.best_step: int | None = None
        self._said_step = checkpoint.read_state(self.run_dir)["step"] if checkpoint.has_checkpoint(
            self.run_dir) else 0  # a resumed run says only its new steps
        self.eval: EvalReport | None = None
        self.error: BaseException | None = None
        self.message: str | None = None
        # The visitor's context (the Gradio request, whose X-IP-Token ZeroGPU bills) goes with the
        # run: a plain thread starts with an empty one, and every GPU call would go unbilled to anyone.
        context = contextvars.copy_context()
        super().__init__(
            threading.Thread(
                target=context.run, args=(self._main,), name=f"voxspace-run-{owner}", daemon=True
            )
        )

    # --- the worker -------------------------------------------------------------------------------
    def _say(self, line: str) -> None:
        log.info("%s: %s", self.run_dir.name, line)
        with self._lock:
            self._lines.append(line)

    def _main(self) -> None:
        try:
            if not self._wait_for_turn():
                self.phase = "cancelled"
                self._say("Cancelled while waiting in the queue.")
                return
            self.runs_ahead = None
            self.phase = "evaluating-before" if self._evaluate else "training"
            loaded = gpu.base_loaded(self.trainer.model_cfg)
            self._say("Using the base model loaded at start-up." if loaded else "Loading the base model.")
            n_takes = len(self.trainer.train_takes) + len(self.trainer.test_takes)
            self._say(f"Preparing the audio of {n_takes} takes on the CPU (no GPU time).")
            self.trainer.encode_examples(None, lambda done, n: self._say(f"Audio: {done}/{n} takes."))
            record = RunRecord.load(self.run_dir) if (self.run_dir / SUMMARY).is_file() else None
            before = record.eval if record and record.eval else None
            if self._evaluate and before is None:
                self.phase = "evaluating-before"
                self._say(f"Measuring the base model on {_held_out_said(self.trainer)}.")
                t0 = time.monotonic()
                before = self._evaluate_in_slices(None)
                self._measured(eval_s_per_take=(time.monotonic() - t0) / max(1, len(self.trainer.test_takes)))
                self._store_eval(before)
            # loaded after the evaluation (which uses the served bf16 base): never both at once
            base = gpu.preload_base(self.trainer.model_cfg)  # once per process; later calls reuse it
            self.phase = "training"
            if new := self.trainer.new_takes:
                self._say(
                    f"{new} take{'s' if new != 1 else ''} recorded since this run started "
                    "wait for the next run: a run keeps the takes it started with."
                )
            self._say(
                f"Training on {len(self.trainer.train_takes)} takes "
                f"({'in GPU slices' if self._sliced else 'in one run'})."
            )
            if n := self.trainer.config.adapt_encoder:
                extra = round(100 * (self.trainer.config.step_cost_factor() - 1))
                self._say(f"Acoustic adaptation: LoRA on {describe_adaptation(n)}; each step takes about "
                          f"{extra}% longer.")
            t0, step0 = time.monotonic(), self._said_step
            done = self._train_sliced() if self._sliced else self._train_long(base)
            base = self.trainer._base = None  # the served bf16 base replaces it for the evaluation
            self._measure_training(time.monotonic() - t0, step0)
            if self._paused or (done and self._evaluate and not self._keep_going()):
                self.phase = "paused"
                self._say(f"{PAUSED} (step {self.step}/{self.total})")
                return
            if not done:
                self.phase = "cancelled"
                self._say(f"Cancelled at step {self.step}/{self.total}; the checkpoint is kept for Resume.")
                return
            self._say(f"Adapter saved in {self.run_dir / ADAPTER_DIR}.")
            if self._evaluate:
                self.phase = "evaluating-after"
                self._say("Measuring the fine-tuned model on the held-out takes.")
                after = self._evaluate_in_slices(before)
                self._store_eval(after)
                if warning := after.not_better_sentence():
                    self._say(f"{warning} The Publish tab will ask before sharing it.")
            self.phase = "done"
            self._say("Done.")
        except BaseException as e:  # the thread must report every failure, not die silently
            log.exception("training run %s failed", self.run_dir)
            typed = e if isinstance(e, VoxSpaceError) else gpu.zerogpu_error(e)
            self.error = typed or e
            self.message = typed.user_message if typed is not None else self._unexpected()
            self.phase = "failed"
            self._say(self.message)
        finally:
            self.queue.leave(self.owner)

    def _measured(self, **figures: float | None) -> None:
        if self._timings_dir is not None:
            cfg = self.trainer.config
            timings.record(self._timings_dir, gpu.detect_hardware().kind, cfg.precision,
                           self.trainer.model_cfg.base_model, **figures)

    def _measure_training(self, seconds: float, step0: int) -> None:
        """Seconds per second of training audio per epoch, from this run's own steps (at step cost 1)."""
        cfg, steps = self.trainer.config, self.step - step0
        audio_s = sum(t.take.duration for t in self.trainer.train_takes)
        if steps <= 0 or not self.total or audio_s <= 0:
            return
        audio_epochs = audio_s * cfg.epochs * steps / self.total
        self._measured(train_s_per_audio_s=seconds / audio_epochs / cfg.step_cost_factor())

    def _unexpected(self) -> str:
        """The sentence for a failure nobody foresaw: Resume only if there is a checkpoint to resume."""
        where = "the Space's logs" if self._in_space else "the log printed where VoxSpace runs"
        if checkpoint.has_checkpoint(self.run_dir):
            return (f"Training stopped because of an unexpected error. The last checkpoint is kept: try "
                    f"Resume, and if it fails again, report it with {where}.")
        return (f"Training stopped because of an unexpected error before its first checkpoint. Try "
                f"again, and if it fails again, report it with {where}.")

    def _evaluate_in_slices(self, before: EvalReport | None) -> EvalReport:
        """Held-out takes transcribed across as many GPU calls as they need (voxspace.gpu_eval)."""

        model = "base model" if before is None else "fine-tuned model"

        def said(done: int, of: int) -> None:
            self._say(f"{model}: held-out takes transcribed {done} of {of}")

        return gpu_eval.evaluate_in_slices(
            self.run_dir, before, cap_s=self._cap_s, max_new_tokens=self._max_new_tokens, on_call=said
        )

    def _wait_for_turn(self) -> bool:
        """Wait in the shared queue; False if cancelled while waiting."""
        while (place := self.queue.join(self.owner)) > 0:
            if self.runs_ahead != place:
                self.runs_ahead = place
                self._say(f"Another training run is using the GPU; you are number {place + 1} in the queue.")
            if self._cancelled.wait(0.5):
                return False
        return True

    def _note_step(self, step: int, total: int, loss: float | None, step_time_s: float | None) -> None:
        """One log line per finished step, each once and in order, from the loss history (a poll
        every 0.5 s can miss a step; a run that has not stepped yet has no line to say)."""
        self.step, self.total, self.step_time_s = step, total, step_time_s
        for s, value in self.losses:
            if s > self._said_step:
                self._say(f"step {s}/{total}  loss {value:.4f}")
                self._said_step = s

    def _train_long(self, base: tuple[Any, Any]) -> bool:
        """In one go in a background worker (dedicated GPU or CPU); the checkpoint is pushed every
        checkpoint_every_s and at the end."""
        self.trainer._base = base  # the preloaded base, as gpu_slice does; Trainer takes no setter
        self._handle = gpu.RunHandle(
            self.trainer,
            checkpoint_every_s=self._checkpoint_every_s,
            on_checkpoint=self._on_checkpoint,
        )
        if self._cancelled.is_set():  # before start: a cancel that came first stops it at step 0
            self._handle.cancel()
        self._handle.start()
        while not self._handle.wait(0.5):
            p = self._handle.progress()
            self.losses = p.losses
            self._note_heldout(*self._trainer_heldout())
            self._note_step(p.step, p.total_steps, p.last_loss, getattr(self.trainer, "step_time_s", None))
        p = self._handle.progress()
        self.losses = p.losses
        self._note_heldout(*self._trainer_heldout())
        self._note_step(p.step, p.total_steps, p.last_loss, getattr(self.trainer, "step_time_s", None))
        self.trainer.close()  # LoRA off the shared base before the evaluation attaches the adapter
        self._push_checkpoint()
        if self._handle.error is not None:
            raise self._handle.error
        return p.status == "done"

    def _trainer_heldout(self) -> tuple[list[tuple[int, float]], Any]:
        return list(getattr(self.trainer, "heldout_history", [])), getattr(self.trainer, "best", None)

    def _note_heldout(self, history: list[tuple[int, float]], best: Any) -> None:
        """The held-out loss after each epoch, for the loss curve; a line in the log for a new one."""
        for step, loss in history[len(self.heldout) :]:
            kept = " (best so far: this adapter is kept)" if best and best[0] == step else ""
            self._say(f"held-out loss after step {step}: {loss:.4f}{kept}")
        self.heldout = list(history)
        self.best_step = best[0] if best else None

    def _train_sliced(self) -> bool:
        """Chained GPU slices (ZeroGPU), each checkpoint pushed between them."""

        def on_slice(s: Any) -> None:
            state = checkpoint.read_state(self.run_dir)
            self.losses = [tuple(x) for x in state["loss_history"]]
            self._note_heldout([tuple(x) for x in state.get("heldout_history", [])], state.get("best"))
            self._note_step(s.step, s.total_steps, s.last_loss, s.step_time_s)
            self._say(
                f"slice: {s.steps_run} steps, up to {s.takes_per_pass} takes per pass, "
                f"{s.step_seconds:.1f} s in steps, {s.overhead_seconds:.1f} s overhead "
                f"(LoRA attach {s.attach_seconds:.1f} s, checkpoint load {s.load_seconds:.1f} s, "
                f"checkpoint save {s.save_seconds:.1f} s, other setup "
                f"{s.other_setup_seconds:.1f} s), "
                f"{s.outside_seconds:.1f} s getting the GPU, starting the worker and moving the weights; "
                f"audio encoder run for {s.encoder_runs} takes"
            )

        summary = gpu.run_in_slices(
            self.run_dir,
            keep_going=self._keep_going,
            cap_s=self._cap_s,
            cancel_path=self.cancel_path,
            on_slice=on_slice,
            push=lambda _: self._push_checkpoint(),
            tracker=self._tracker,
            max_steps_per_slice=self._max_steps,
            owner=self.owner,
            queue=gpu.RunQueue(),  # this run already holds gpu.QUEUE, until its last evaluation
        )
        return bool(summary.done)

    def _keep_going(self) -> bool:
        """Before each GPU call the visitor pays for: is a page of theirs still open? (False pauses.)"""
        if self._page_open is None or self._page_open():
            return True
        self._paused = True
        return False

    def _on_checkpoint(self, s: Any) -> None:
        """Between two stretches of a run in one go: the Hub copy, as between ZeroGPU slices."""
        self._push_checkpoint()
        self._say(
            f"checkpoint saved at step {s.step}/{s.total_steps} (up to {s.takes_per_pass} takes per pass)"
        )

    def _push_checkpoint(self) -> None:
        if self._push is None or not checkpoint.has_checkpoint(self.run_dir):
            return
        try:
            self._push(self.run_dir)
        except HubError as e:  # losing the Hub copy must not lose the run
            self._say(e.user_message)

    def _store_eval(self, report: EvalReport) -> None:
        self.eval = report
        summary = self.run_dir / SUMMARY
        record = RunRecord.load(self.run_dir) if summary.is_file() else self.trainer.record()
        record.eval = report
        record.save(self.run_dir)
        if self._tracker is not None:
            self._tracker.log_eval(report, step=record.steps_done)

    def cancel(self) -> None:
        self._cancelled.set()
        self.cancel_path.touch()  # read by a slice, even in ZeroGPU's forked worker
        if self._handle is not None:
            self._handle.cancel()


# --- the functions both callers use -------------------------------------------------------------
_ACTIVE: dict[str, Run] = {}  # owner -> their latest run in this process (a reloaded page finds it)


def start_run(
    settings: Settings,
    identity: Identity,
    *,
    run_dir: str | Path,
    data: str | Path | None = None,
    config: TrainConfig | None = None,
    resume: bool = False,
    sliced: bool | None = None,
    evaluate: bool = True,
    max_new_tokens: int | None = None,
    max_steps_per_slice: int | None = None,
    queue: gpu.RunQueue | None = None,
    pause_when_page_closed: bool | None = False,
) -> Run:
    """Check the request, fetch the takes, and start the run in a worker; returns at once.

    Raises (before any model load or GPU time): BadHyperparameter, BadInput (nothing to resume,
    or a run already in `run_dir`), ModelUnavailable (model.check_base_model), NotEnoughTakes,
    HubError/BadInput when the takes cannot be fetched, Busy when this person already has a run going.
    `sliced` None means: slices on ZeroGPU. `pause_when_page_closed` (the Train tab passes None:
    on ZeroGPU only) pauses the run at its last checkpoint once no page of this person's is open.
    """
    owner = identity.owner
    if (current := _ACTIVE.get(owner)) is not None and current.phase not in FINISHED:
        raise BadInput("You already have a training run going: wait for it to finish or cancel it.")
    run_dir = Path(run_dir)
    if config is not None:
        config.validate()  # first: a bad value must cost nothing
        gpu.check_precision(config.precision)
    if resume:
        if not (run_dir / RUN_SPEC).is_file() and not checkpoint.has_checkpoint(run_dir):
            repo = checkpoint_repo(identity)
            if (
                repo is None
                or checkpoint.find_remote_checkpoint(repo, identity.token, settings.hub_endpoint) is None
            ):
                raise BadInput(f"Nothing to resume in {run_dir}: it holds no training run.")
            checkpoint.pull_checkpoint(run_dir, repo, identity.token, settings.hub_endpoint)
        config, data = None, None  # a resumed run keeps its own settings and data (run.json)
    else:
        if checkpoint.has_checkpoint(run_dir):
            raise BadInput(f"{run_dir} already holds a training run: resume it, or pick a new name.")
        if config is None or data is None:
            raise BadInput("A new run needs takes to train on and its settings.")
        shutil.rmtree(run_dir / run_record.ENCODER_CACHE_DIR, ignore_errors=True)
        shutil.rmtree(run_dir / gpu_eval.EVAL_PARTS, ignore_errors=True)
    model_cfg = None
    if config is not None:
        model_cfg = ModelConfig(settings.base_model, precision=config.precision, token=identity.token)
    trainer = Trainer(
        run_dir,
        config,
        data,
        model_cfg,
        data_token=identity.token,
        data_endpoint=settings.hub_endpoint,
        data_cache_dir=user_cache_dir(settings, identity),
        ranks=data_parallel.current(),  # rank 0 of a multi-GPU Job (voxspace.job_entry); else alone
    )
    trainer.model_cfg.token = identity.token
    check_base_model(trainer.model_cfg, endpoint=settings.hub_endpoint, in_space=settings.in_space)
    try:
        trainer.prepare()  # fetches the takes; NotEnoughTakes here
    except Exception as e:  # a Hub failure while fetching: one sentence (as_user_error keeps typed ones)
        raise as_user_error(e, action="read your takes from", repo_id=trainer.data) from e
    tracker = TrackioTracker(run_dir.resolve().name, trackio_dir=Path(settings.data_dir) / "trackio")
    repo = checkpoint_repo(identity)
    push = None
    if repo is not None:

        def push(d: Path) -> None:
            checkpoint.push_checkpoint(d, repo, identity.token, settings.hub_endpoint)

    hw_sliced = gpu.detect_hardware().kind == "zerogpu"
    sliced = hw_sliced if sliced is None else sliced
    if not sliced:
        trainer.tracker = tracker
    run = Run(
        trainer,
        owner=owner,
        sliced=sliced,
        cap_s=settings.slice_cap_s if hw_sliced else trainer.config.slice_seconds,
        push=push,
        tracker=tracker,
        evaluate=evaluate,
        max_new_tokens=max_new_tokens,
        max_steps_per_slice=max_steps_per_slice or settings.slice_max_steps or None,
        queue=_queue(settings, hw_sliced) if queue is None else queue,
        checkpoint_every_s=settings.checkpoint_every_s,
        in_space=settings.in_space,
        timings_dir=Path(settings.data_dir),
        page_open=(lambda: page_watch.is_open(owner))
        if (hw_sliced if pause_when_page_closed is None else pause_when_page_closed)
        else None,
    )
    _ACTIVE[owner] = run
    return run.start()


def follow_elsewhere(identity: Identity, handle: Any) -> None:
    """A run training elsewhere (a Hugging Face Job: voxspace.jobs.JobHandle, which has Run's
    phase/step/losses/lines/eval/cancel/join) becomes this person's active run: the page follows
    and cancels it with the same code as a run here."""
    _ACTIVE[identity.owner] = handle


def _queue(settings: Settings, zerogpu: bool) -> gpu.RunQueue:
    """The process's queue; on ZeroGPU up to settings.zerogpu_runs runs go at once."""
    gpu.QUEUE.capacity = max(1, settings.zerogpu_runs) if zerogpu else 1
    return gpu.QUEUE


def active_run(identity: Identity) -> Run | None:
    """This person's latest run in this process, so a reloaded page can follow it again."""
    return _ACTIVE.get(identity.owner)


def progress(handle: Run) -> RunProgress:
    """A snapshot for the page (poll it) or the CLI."""
    if not isinstance(handle, Run):  # a run elsewhere (voxspace.jobs.JobHandle) keeps its own snapshot
        return handle.progress()
    left = None
    if handle.phase == "training" and handle.step_time_s and handle.total:
        left = (handle.total - handle.step) * handle.step_time_s
    return RunProgress(
        phase=handle.phase,
        run_dir=str(handle.run_dir),
        step=handle.step,
        total=handle.total,
        seconds_left=left,
        losses=list(handle.losses),
        heldout=list(handle.heldout),
        best_step=handle.best_step,
        log=handle.lines()[-LOG_LINES:],
        runs_ahead=handle.runs_ahead if handle.phase == "queued" else None,
        eval=handle.eval,
        message=handle.message,
    )


def cancel(handle: Run) -> None:
    """Stop at the next step boundary (a queued run just leaves the queue); the checkpoint is kept."""
    handle.cancel()


def wait(handle: Run, *, on_line: Callable[[str], None] | None = None, poll_s: float = 0.5) -> RunProgress:
    """Block until the run ends, passing each new log line to `on_line`; re-raise a failure (CLI)."""
    seen = 0

    def drain() -> None:
        nonlocal seen
        new = handle.lines(seen)
        seen += len(new)
        for line in new:
            if on_line is not None:
                on_line(line)

    while not handle.join(poll_s):
        drain()
    drain()
    if isinstance(handle.error, VoxSpaceError):
        raise handle.error
    if handle.error is not None:  # the traceback is in the log; the caller gets the run's sentence
        raise TrainError(handle.message or "Training failed.") from handle.error
    return progress(handle)


# --- resuming after a restart --------------------------------------------------------------------
@dataclass(frozen=True)
class Resumable:
    run_dir: Path
    step: int
    total: int
    on_hub_only: bool  # the local folder is gone (a Space restart): start_run(resume=True) pulls it
    # the run's own take ids (voxspace.pinning; empty if unknown): extra detail, not part of its identity
    pinned: frozenset[str] = field(default=frozenset(), compare=False)

    def new_takes(self, take_ids: Iterable[str]) -> int:
        """How many of `take_ids` (the person's takes now) this run does not use: they wait."""
        return sum(1 for i in take_ids if i not in self.pinned) if self.pinned else 0

    def describe(self) -> str:
        where = "saved in your model repo" if self.on_hub_only else "saved on this machine"
        return f"A training run stopped at step {self.step} of {self.total} ({where}). Resume continues it."


def find_resumable(settings: Settings, identity: Identity) -> Resumable | None:
    """The newest unfinished run: a local run folder with a checkpoint, else the Hub's copy."""
    root = runs_root(settings, identity)
    folders = sorted(
        (d for d in root.glob("*") if checkpoint.has_checkpoint(d)),
        key=lambda d: d.stat().st_mtime,
        reverse=True,
    )
    for d in folders:
        state = checkpoint.read_state(d)
        record = RunRecord.load(d) if (d / SUMMARY).is_file() else None
        evaluated = record is not None and record.eval is not None and record.eval.wer_after is not None
        if state["step"] < state["total_steps"] or not evaluated:
            return Resumable(d, state["step"], state["total_steps"], on_hub_only=False, pinned=_pinned(state))
    repo = checkpoint_repo(identity)
    if repo is None:
        return None
    try:
        state = checkpoint.find_remote_checkpoint(repo, identity.token, settings.hub_endpoint)
    except Exception:  # an unreachable Hub must not break the page; there is just nothing to offer
        log.warning("could not look for a checkpoint in %s", repo, exc_info=True)
        return None
    if state is None or state["step"] >= state["total_steps"]:
        return None
    return Resumable(root / f"restored-step-{state['step']}", state["step"], state["total_steps"], True,
                     pinned=_pinned(state))


def _pinned(state: dict[str, Any]) -> frozenset[str]:
    from voxspace.pinning import TakePins

    pins = TakePins.from_dict(state.get("takes"))
    return frozenset(pins.ids) if pins else frozenset()


# --- the estimate shown before starting ----------------------------------------------------------
def _held_out_said(trainer: Any) -> str:
    """"12 held-out takes", or, when the cap sampled them, how many of how many and why."""
    measured = len(trainer.test_takes)
    held_back = len(trainer.pins.held_back) if trainer.pins else 0
    if not held_back:
        return f"{measured} held-out takes"
    return (f"{measured} of its {measured + held_back} held-out takes (a sample across languages and "
            f"recording time, to keep measuring cheap; none of them is trained on)")


def estimate(config: TrainConfig, n_takes: int, minutes: float, hardware: str,
             measured: timings.Measured | None = None) -> float:
    """GPU minutes (CPU minutes on a CPU) a run should take: training plus both evaluations.

    From audio length, epochs and what a run on this machine measured (`measured`, timings.load);
    without a measurement, from the planning figures for the kind of hardware. Not a promise.
    """
    kind = hardware if hardware in COMPUTE_S_PER_AUDIO_S else "cpu"
    if n_takes <= 0:
        return 0.0
    marks = [split_for(i) for i in range(n_takes)]
    n_train, n_test = marks.count("train"), marks.count("test")
    if config.eval_max_takes:
        n_test = min(n_test, config.eval_max_takes)
    audio_s = minutes * 60 * n_train / n_takes
    per_audio_s = measured.train_s_per_audio_s if measured else None
    if per_audio_s is None:
        per_audio_s = COMPUTE_S_PER_AUDIO_S[kind] * (INT8_SLOWDOWN if config.precision == "8bit" else 1.0)
    train_s = audio_s * config.epochs * per_audio_s * config.step_cost_factor()
    steps = config.steps_per_epoch(n_train) * config.epochs
    slices = math.ceil(train_s / max(1, config.slice_seconds)) if kind == "zerogpu" else 1
    # A measured figure already holds this machine's set-up and per-step overheads.
    overhead_s = 0.0 if measured and measured.train_s_per_audio_s else (
        slices * gpu.FIRST_SLICE_OVERHEAD_S + steps * 0.05)
    eval_s = 2 * n_test * (measured.eval_s_per_take if measured and measured.eval_s_per_take
                           else EVAL_S_PER_TAKE[kind])
    return (train_s + overhead_s + eval_s) / 60  # unrounded: the page rounds what it shows


def describe_phase(p: RunProgress) -> str:
    """One plain sentence for where the run is (the page's status line)."""
    if p.phase == "queued":
        ahead = p.runs_ahead or 0
        return (
            f"Waiting for the GPU: you are number {ahead + 1} in the queue. Your run starts by itself."
            if ahead
            else "Starting…"
        )
    if p.phase == "training":
        left = "" if p.seconds_left is None else f", about {_duration(p.seconds_left)} left"
        return f"Training: step {p.step} of {p.total or '?'}{left}."
    return {
        "evaluating-before": "Measuring how well the base model knows your voice…",
        "evaluating-after": "Measuring how well the fine-tuned model knows your voice…",
        "done": (p.eval.not_better_sentence() if p.eval else None)
        or "Done. The adapter is ready on the Publish tab.",
        "cancelled": "Cancelled. The checkpoint is kept: Resume continues from it.",
        "paused": PAUSED,
        "failed": p.message or "Training failed.",
    }[p.phase]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"
