"""The same run on Hugging Face Jobs, on the visitor's own account and credits.

    plan = jobs.plan(config, n_takes=500, minutes=40, flavor="l4x1")   # minutes and dollars, before
    job = jobs.launch(settings, identity, run_dir=root / "run-1", data="alice/voxspace-recordings",
                      config=config, flavor="l4x1")                     # pins takes, starts the Job
    p = jobs.progress(job)       # a run_service.RunProgress, like a run here; results come back on done
    jobs.cancel(job)
    job = jobs.attach(settings, identity, run_dir)   # after a reload or a restart: job.json in the run

One engine: the Job runs the Space's own Docker image (`hf.co/spaces/<SPACE_ID>`), so it has the
very code and pinned requirements of the app that launched it; `python -m voxspace.job_entry`
inside it calls run_service like the Train tab does. (`run_uv_job` would need the package itself
installed from somewhere at the same revision: a second environment to keep in step.) Outside a
Space, VOXSPACE_JOBS_IMAGE names the Space image to use.

The takes are pinned here, before launch (ids, content hashes, dataset commit in run.json); the
spec travels through the person's private checkpoint repo (`jobs/<run>/run.json`), never in the
command. The visitor's token is passed only as the Job secret HF_TOKEN: never in the command, the
env, a label or a file. The Job mirrors its checkpoint to `checkpoint/` (as a run here does) and
leaves its adapter and summary in `jobs/<run>/`, which `progress` brings back into the run folder.
On a multi-GPU flavor the command starts job_entry once per GPU (`job_command`; voxspace.data_parallel).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from huggingface_hub import CommitOperationAdd
from huggingface_hub.errors import HfHubHTTPError

from voxspace import atomic_file
from voxspace.auth import Identity
from voxspace.data_parallel import launcher
from voxspace.errors import AuthError, BadInput, HubError, VoxSpaceError
from voxspace.hub import as_user_error, commit_with_retry, ensure_private_repo, hub_api, user_cache_dir
from voxspace.model import ModelConfig, check_base_model
from voxspace.run_record import ADAPTER_DIR, SUMMARY, RunRecord
from voxspace.run_service import CHECKPOINT_REPO_NAME, LOG_LINES, RunProgress, estimate
from voxspace.settings import Settings
from voxspace.train import RUN_SPEC, TrainConfig, Trainer
from voxspace.worker import LoggedWorker

log = logging.getLogger(__name__)

JOB_FILE = "job.json"  # in the run folder: the Job id survives a page reload and a Space restart
REMOTE_JOBS = "jobs"  # folder in the checkpoint repo: jobs/<run>/run.json, adapter/, summary.json
TOKEN_SECRET = "HF_TOKEN"
STARTUP_MIN = 5.0  # planning figure: pulling the image and the base model before the first step
MIN_TIMEOUT_MIN = 15


@dataclass(frozen=True)
class Flavor:
    """A Jobs machine. `speed`: one card's throughput relative to the H100 that run_service's
    figures were measured on (bench/results/h100_train_speed.txt); planning factors from the cards'
    bf16 specs, not measured here. `memory_gb`: per card (data-parallel: each card holds the whole
    model). Prices: the Hub's 2026 list (FACTS) for one card; the multi-card ones from the Hub's
    hardware price list, not re-checked in 2026. Billed per minute."""

    name: str
    gpu: str
    memory_gb: int
    usd_per_hour: float
    speed: float
    gpus: int = 1

    def label(self) -> str:
        if self.gpus > 1:
            cards = f"{self.gpus} × {self.gpu}, {self.memory_gb} GB each"
        else:
            cards = f"{self.gpu}, {self.memory_gb} GB"
        return f"{self.name}: {cards}, ${self.usd_per_hour:.2f}/h"

    @property
    def throughput(self) -> float:
        """Relative to one H100: every card trains its share of each step; the gradient exchange and
        rank 0's evaluation alone cost some of it (DATA_PARALLEL_EFFICIENCY, a planning figure)."""
        return self.speed * self.gpus * (DATA_PARALLEL_EFFICIENCY if self.gpus > 1 else 1.0)


FLAVORS = {
    f.name: f
    for f in (
        Flavor("t4-small", "NVIDIA T4", 16, 0.40, 0.12),
        Flavor("l4x1", "NVIDIA L4", 24, 0.80, 0.25),
        Flavor("a10g-large", "NVIDIA A10G", 24, 1.50, 0.30),
        Flavor("l40sx1", "NVIDIA L40S", 48, 1.80, 0.55),
        Flavor("a100-large", "NVIDIA A100", 80, 2.50, 0.60),
        Flavor("h200", "NVIDIA H200", 141, 5.00, 1.10),
        Flavor("a10g-largex2", "NVIDIA A10G", 24, 3.00, 0.30, gpus=2),
        Flavor("l4x4", "NVIDIA L4", 24, 3.80, 0.25, gpus=4),
        Flavor("a10g-largex4", "NVIDIA A10G", 24, 5.00, 0.30, gpus=4),
        Flavor("l40sx4", "NVIDIA L40S", 48, 8.30, 0.55, gpus=4),
    )
}
DEFAULT_FLAVOR = "l4x1"
DATA_PARALLEL_EFFICIENCY = 0.85  # planning figure (not measured): share of N cards' speed a run gets
# GPU memory a LoRA run needs (weights + activations at the default batch), planning figures
# (Voxtral-Mini-3B 8-bit: 9.0-19.8 GB measured on an H100, README "Performance"); other models: no check
_MODEL_GB = {
    "Voxtral-Mini-3B": {"8bit": 10, "bf16": 20, "fp32": 40},
    "Voxtral-Small-24B": {"8bit": 40, "bf16": 70, "fp32": 140},
}


# --- errors the Hub can answer a launch with -------------------------------------------------------
class JobsNotAllowed(AuthError):
    """The sign-in does not allow starting Jobs (OAuth without the `jobs` scope, or a 403)."""


class NoCredits(HubError):
    """The account cannot pay for a Job (the Hub's 402): its own sentence is kept."""


# --- before launch ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobPlan:
    flavor: Flavor
    minutes: float
    cost_usd: float
    timeout_min: int

    def describe(self) -> str:
        return (
            f"On {self.flavor.label()}: about {self.minutes:.0f} min, about ${self.cost_usd:.2f} "
            f"(billed per minute to your account); stopped after {self.timeout_min} min at most."
        )


def flavor(name: str) -> Flavor:
    if name not in FLAVORS:
        raise BadInput(f"Unknown Jobs hardware {name!r}: choose one of {', '.join(FLAVORS)}.")
    return FLAVORS[name]


def memory_needed_gb(base_model: str, precision: str) -> int:
    """GPU memory a LoRA run of a known Voxtral needs in `precision`; 0 for a model we have no figure for."""
    for key, table in _MODEL_GB.items():
        if key in base_model:
            return table.get(precision, table["bf16"])
    return 0


def check_fits(f: Flavor, base_model: str, precision: str) -> None:
    need = memory_needed_gb(base_model, precision)
    if need > f.memory_gb:
        fits = [x.name for x in FLAVORS.values() if x.memory_gb >= need]
        has = f"{f.memory_gb} GB"
        if f.gpus > 1:
            has += f" on each of its {f.gpus} GPUs (each holds the whole model)"
        raise BadInput(
            f"{base_model} in {precision} needs about {need} GB of GPU memory; {f.name} has "
            f"{has}. Choose {', '.join(fits) or 'a larger machine'}."
        )


def plan(
    config: TrainConfig, n_takes: int, minutes: float, flavor_name: str, timeout_min: int | None = None
) -> JobPlan:
    """Minutes and dollars for this run on `flavor_name`: run_service's H100 estimate scaled by the
    card's speed, plus start-up. The default timeout is twice that, at least MIN_TIMEOUT_MIN."""
    f = flavor(flavor_name)
    run_min = STARTUP_MIN + estimate(config, n_takes, minutes, "cuda") / f.throughput
    if timeout_min is None:
        timeout_min = max(MIN_TIMEOUT_MIN, math.ceil(2 * run_min / 5) * 5)
    if timeout_min <= 0:
        raise BadInput("The timeout must be a positive number of minutes.")
    return JobPlan(f, round(run_min, 1), round(run_min / 60 * f.usd_per_hour, 2), int(timeout_min))


# --- the record kept in the run folder --------------------------------------------------------------
@dataclass
class JobRecord:
    job_id: str
    namespace: str
    flavor: str
    image: str
    timeout_min: int
    repo: str  # the person's checkpoint repo: the spec goes in, the results come out
    run_name: str
    spec_revision: str
    launched_at: float
    resumed_from: str | None = None  # the Job this one continues
    results_fetched: bool = False

    def save(self, run_dir: Path) -> None:
        atomic_file.write_json(Path(run_dir) / JOB_FILE, asdict(self))

    @classmethod
    def load(cls, run_dir: Path) -> JobRecord | None:
        path = Path(run_dir) / JOB_FILE
        return cls(**json.loads(path.read_text())) if path.is_file() else None


@dataclass
class JobRun:
    """A run that lives in a Job: what progress() and cancel() need, rebuilt from job.json."""

    settings: Settings
    identity: Identity
    run_dir: Path
    record: JobRecord
    plan: JobPlan | None = None  # set by launch: what was estimated before it started

    @property
    def url(self) -> str:
        return f"{self.settings.hub_endpoint}/jobs/{self.record.namespace}/{self.record.job_id}"


def image_for(settings: Settings) -> str:
    if settings.jobs_image:
        return settings.jobs_image
    if settings.space_id:
        return f"hf.co/spaces/{settings.space_id}"
    raise BadInput(
        "Outside a Space, set VOXSPACE_JOBS_IMAGE to the VoxSpace Space whose image the Job runs "
        "(e.g. hf.co/spaces/you/voxspace)."
    )


def _check_scope(identity: Identity, settings: Settings) -> None:
    """An OAuth sign-in must carry the `jobs` scope (when the Hub says which scopes it has)."""
    if identity.source != "oauth":
        return
    try:
        auth = hub_api(identity, settings).whoami().get("auth", {})
    except Exception as e:
        raise as_user_error(e, action="check who you are on Hugging Face") from e
    scopes = auth.get("scopes")
    if auth.get("type") == "oauth" and scopes is not None and "jobs" not in scopes:
        raise JobsNotAllowed(
            "Your sign-in does not allow VoxSpace to start Jobs for you. Sign out, sign in again and "
            'accept "Start and manage Jobs".'
        )


def _launch_error(e: Exception) -> Exception:
    """The Hub's refusal of a launch, in its own words where it gives some."""
    response = e.response if isinstance(e, HfHubHTTPError) else None
    status = response.status_code if response is not None else None
    said = _hub_message(response) if response is not None else ""
    if status == 402:
        return NoCredits(
            f"Hugging Face would not start the Job: {said or 'your account has no credits left'}. Jobs are "
            "billed to your account: add credits on huggingface.co/settings/billing, then try again.",
            detail=f"HTTP 402: {said}",
        )
    if status == 403:
        return JobsNotAllowed(
            f"Hugging Face would not start the Job: {said or 'your sign-in may not start Jobs'}. Sign in "
            'again and accept "Start and manage Jobs".',
            detail=f"HTTP 403: {said}",
        )
    return as_user_error(e, action="start the Job")


def _hub_message(response) -> str:
    try:
        said = response.json().get("error") or ""
    except ValueError:
        said = response.headers.get("X-Error-Message", "")
    return str(said).rstrip(".")


# --- launch ---------------------------------------------------------------------------------------
def launch(
    settings: Settings,
    identity: Identity,
    *,
    run_dir: str | Path,
    flavor_name: str,
    data: str | None = None,
    config: TrainConfig | None = None,
    timeout_min: int | None = None,
    evaluate: bool = True,
    resume: bool = False,
) -> JobRun:
    """Pin the takes, hand the spec to the Job through the checkpoint repo, start the Job.

    `resume`: continue `run_dir` (a Job that failed, timed out or was cancelled) in a new Job from
    its last mirrored checkpoint. Raises before anything is billed: BadInput (a local folder of
    takes, an unknown flavor, a model that does not fit), NotEnoughTakes, ModelUnavailable,
    JobsNotAllowed, NoCredits, AuthError/HubError.
    """
    if not identity.signed_in:
        raise AuthError("A Job runs on your own Hugging Face account: sign in first.")
    run_dir = Path(run_dir)
    f = flavor(flavor_name)
    image = image_for(settings)
    previous = JobRecord.load(run_dir)
    if resume:
        if previous is None:
            raise BadInput(f"{run_dir} was not trained on Jobs: there is no Job to resume.")
        trainer = Trainer(run_dir)
    else:
        if previous is not None or (run_dir / RUN_SPEC).is_file():
            raise BadInput(f"{run_dir} already holds a run: resume it, or pick a new name.")
        if config is None or not data:
            raise BadInput("A new run needs takes to train on and its settings.")
        config.validate()
        if Path(str(data)).expanduser().is_dir():
            raise BadInput("A Job reads your takes from the Hub: push them to your dataset repo first.")
        trainer = Trainer(
            run_dir,
            config,
            data,
            ModelConfig(settings.base_model, precision=config.precision, token=identity.token),
            data_token=identity.token,
            data_endpoint=settings.hub_endpoint,
            data_cache_dir=user_cache_dir(settings, identity),
        )
    check_fits(f, trainer.model_cfg.base_model, trainer.config.precision)
    trainer.model_cfg.token = identity.token
    check_base_model(trainer.model_cfg, endpoint=settings.hub_endpoint, in_space=settings.in_space)
    _check_scope(identity, settings)
    if not resume:
        try:
            trainer.prepare()  # pins the takes at their dataset commit; NotEnoughTakes here, for free
        except Exception as e:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise as_user_error(e, action="read your takes from", repo_id=trainer.data) from e
    n = len(trainer.train_takes) + len(trainer.test_takes) if not resume else 0
    minutes = sum(t.take.duration for t in trainer.train_takes + trainer.test_takes) / 60 if n else 0.0
    job_plan = (
        plan(trainer.config, n, minutes, f.name, timeout_min)
        if not resume
        else plan(trainer.config, 0, 0, f.name, timeout_min or (previous.timeout_min if previous else None))
    )

    repo = f"{identity.username}/{CHECKPOINT_REPO_NAME}"
    spec = json.loads((run_dir / RUN_SPEC).read_text())
    spec["data_dir"] = None  # this machine's copy means nothing there: the Job fetches the pinned commit
    api = hub_api(identity, settings)
    try:
        ensure_private_repo(api, repo, repo_type="model")
        info = commit_with_retry(
            api,
            repo,
            [
                CommitOperationAdd(
                    f"{REMOTE_JOBS}/{run_dir.name}/{RUN_SPEC}", json.dumps(spec, indent=1).encode()
                )
            ],
            commit_message=f"VoxSpace Job spec for {run_dir.name}",
            repo_type="model",
        )
    except Exception as e:
        raise as_user_error(e, action="save the run's settings to", repo_id=repo) from e
    command = job_command(f, repo, run_dir.name, info.oid, resume=resume, evaluate=evaluate)
    try:
        job = api.run_job(
            image=image,
            command=command,
            env={
                "PYTHONUNBUFFERED": "1",
                "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            },
            secrets={TOKEN_SECRET: identity.token},
            flavor=f.name,
            timeout=job_plan.timeout_min * 60,
            labels={"app": "voxspace"},
            name=f"voxspace-{run_dir.name}"[:60],
            namespace=identity.username,
        )
    except Exception as e:
        raise _launch_error(e) from e
    record = JobRecord(
        job_id=job.id,
        namespace=identity.username,
        flavor=f.name,
        image=image,
        timeout_min=job_plan.timeout_min,
        repo=repo,
        run_name=run_dir.name,
        spec_revision=info.oid,
        launched_at=time.time(),
        resumed_from=previous.job_id if resume and previous else None,
    )
    record.save(run_dir)
    log.info("launched Job %s on %s for %s", job.id, f.name, run_dir.name)
    return JobRun(settings, identity, run_dir, record, job_plan)


def job_command(
    f: Flavor, repo: str, run_name: str, spec_revision: str, *, resume: bool = False, evaluate: bool = True
) -> list[str]:
    """What the Job runs: voxspace.job_entry, once per GPU on a multi-GPU flavor (data-parallel,
    started by `accelerate launch`: voxspace.data_parallel). Names and a commit id only, no secret."""
    entry = ["-m", "voxspace.job_entry", "--repo", repo, "--run", run_name, "--spec-revision", spec_revision]
    entry += ["--resume"] if resume else []
    entry += [] if evaluate else ["--no-eval"]
    return (launcher(f.gpus) or ["python"]) + entry


def attach(settings: Settings, identity: Identity, run_dir: str | Path) -> JobRun | None:
    """The Job of `run_dir`, from its job.json (after a page reload or a Space restart); None if none."""
    record = JobRecord.load(Path(run_dir))
    return None if record is None else JobRun(settings, identity, Path(run_dir), record)


# --- while it runs ---------------------------------------------------------------------------------
_STEP = re.compile(r"step (\d+)/(\d+)\s+loss ([0-9.eE+-]+|nan)")
_PHASES = (  # the log line job_entry prints (run_service's own sentences) -> phase
    ("Measuring the fine-tuned model", "evaluating-after"),
    ("Training on ", "training"),
    ("Measuring the base model", "evaluating-before"),
)


def progress(job: JobRun) -> RunProgress:
    """Where the Job is (its stage, its log lines, step and loss from them); on COMPLETED the
    adapter, WER and loss history are brought into the run folder first. Raises AuthError/HubError
    when the Hub cannot be asked (the Job itself goes on)."""
    return _poll(job)[0]


def _poll(job: JobRun) -> tuple[RunProgress, list[str]]:
    api = hub_api(job.identity, job.settings)
    rec = job.record
    try:
        info = api.inspect_job(job_id=rec.job_id, namespace=rec.namespace)
        lines = list(api.fetch_job_logs(job_id=rec.job_id, namespace=rec.namespace))
    except Exception as e:
        raise as_user_error(e, action="follow the Job") from e
    stage = str(getattr(info.status.stage, "value", info.status.stage))
    losses, step, total = [], 0, 0
    for line in lines:
        if m := _STEP.search(line):
            step, total = int(m.group(1)), int(m.group(2))
            losses.append((step, float(m.group(3))))
    p = RunProgress(
        phase="queued",
        run_dir=str(job.run_dir),
        step=step,
        total=total,
        losses=losses,
        log=lines[-LOG_LINES:],
    )
    if stage == "SCHEDULING":
        p.log = p.log or [f"Waiting for a {rec.flavor} machine on Hugging Face Jobs."]
    elif stage == "RUNNING":
        p.phase = next((ph for key, ph in _PHASES if any(key in line for line in lines)), "evaluating-before")
    elif stage == "COMPLETED":
        fetch_results(job)
        record = RunRecord.load(job.run_dir)
        p.phase, p.eval = "done", record.eval
        p.losses = [tuple(x) for x in record.loss_history] or losses
        p.step, p.total = record.steps_done, record.steps_total
        p.heldout, p.best_step = list(record.heldout_loss_history), record.best_step  # the kept epoch
    elif stage == "CANCELED":
        p.phase = "cancelled"
    else:  # ERROR, DELETED (a timeout ends as an error)
        p.phase = "failed"
        why = info.status.message or "it ended with an error"
        p.message = (
            f"The Job stopped: {why}. Resume starts a new Job from its last checkpoint; its "
            f"log is at {job.url}."
        )
    return p, lines


def fetch_results(job: JobRun) -> Path:
    """adapter/ and summary.json from jobs/<run>/ in the checkpoint repo into the run folder (once)."""
    rec = job.record
    if rec.results_fetched and (job.run_dir / ADAPTER_DIR).is_dir():
        return job.run_dir
    from huggingface_hub import snapshot_download

    prefix = f"{REMOTE_JOBS}/{rec.run_name}"
    with tempfile.TemporaryDirectory(dir=job.run_dir) as tmp:  # never the shared cache
        try:
            snapshot_download(
                rec.repo,
                repo_type="model",
                token=job.identity.token,
                endpoint=job.settings.hub_endpoint,
                local_dir=tmp,
                allow_patterns=[f"{prefix}/{ADAPTER_DIR}/*", f"{prefix}/{SUMMARY}"],
            )
        except Exception as e:
            raise as_user_error(e, action="fetch the Job's results from", repo_id=rec.repo) from e
        src = Path(tmp) / prefix
        if not (src / SUMMARY).is_file() or not (src / ADAPTER_DIR).is_dir():
            raise HubError(f"The Job finished but left no adapter in {rec.repo}: start it again with Resume.")
        shutil.rmtree(job.run_dir / ADAPTER_DIR, ignore_errors=True)
        shutil.move(str(src / ADAPTER_DIR), str(job.run_dir / ADAPTER_DIR))
        shutil.move(str(src / SUMMARY), str(job.run_dir / SUMMARY))
    rec.results_fetched = True
    rec.save(job.run_dir)
    return job.run_dir


def cancel(job: JobRun) -> None:
    """Cancel the Job on the Hub (billing stops); its last mirrored checkpoint stays for Resume."""
    try:
        hub_api(job.identity, job.settings).cancel_job(
            job_id=job.record.job_id, namespace=job.record.namespace
        )
    except Exception as e:
        raise as_user_error(e, action="cancel the Job") from e


def follow(job: JobRun, *, on_line: Callable[[str], None] | None = None, poll_s: float = 5.0) -> RunProgress:
    """Poll until the Job ends, passing each new log line to `on_line` (the CLI). A Hub that does
    not answer for a while is said once per failed poll and asked again; a refused token raises."""
    seen = 0
    while True:
        try:
            p, lines = _poll(job)
        except AuthError:
            raise
        except HubError as e:
            if on_line is not None:
                on_line(e.user_message)
            time.sleep(poll_s)
            continue
        for line in lines[seen:]:
            if on_line is not None:
                on_line(line)
        seen = max(seen, len(lines))
        if p.finished:
            return p
        time.sleep(poll_s)


# --- the Train tab's view of a Job ----------------------------------------------------------------
class JobHandle(LoggedWorker):
    """A Job seen as run_service sees a Run (phase, step, losses, lines(), eval, cancel, join), so
    the Train tab follows, cancels and shows it with the same code; a thread polls the Hub."""

    def __init__(self, job: JobRun, *, poll_s: float = 5.0) -> None:
        self.job, self.run_dir, self.poll_s = job, job.run_dir, poll_s
        self.owner = job.identity.username or "local"
        self.phase, self.runs_ahead, self.message = "queued", None, None
        self.step, self.total, self.step_time_s = 0, 0, None
        self.losses: list[tuple[int, float]] = []
        self.eval = None
        self.error: BaseException | None = None
        self._latest = RunProgress(phase="queued", run_dir=str(job.run_dir))
        super().__init__(
            threading.Thread(target=self._main, name=f"voxspace-job-{self.owner}", daemon=True),
            [f"Job {job.record.job_id} on {job.record.flavor}: {job.url}"],
        )

    def _main(self) -> None:
        while True:
            try:
                p, lines = _poll(self.job)
            except AuthError as e:  # an expired sign-in: the Job goes on; a new sign-in follows it again
                self._add(f"{e.user_message} The Job keeps running: sign in again to follow it.")
                return
            except HubError as e:
                self._add(e.user_message)
                time.sleep(self.poll_s)
                continue
            with self._lock:
                self._lines = self._lines[:1] + lines
                self._latest = p
            if p.message:
                self._add(p.message)
            self.step, self.total, self.losses, self.eval, self.message = (
                p.step,
                p.total,
                p.losses,
                p.eval,
                p.message,
            )
            self.phase = p.phase
            if p.finished:
                return
            time.sleep(self.poll_s)

    def progress(self) -> RunProgress:
        """What run_service.progress returns for this run: the last poll, with the latest lines."""
        with self._lock:
            p = dataclasses.replace(self._latest, phase=self.phase, log=self._lines[-LOG_LINES:])
        return p

    def _add(self, line: str) -> None:
        with self._lock:
            if not self._lines or self._lines[-1] != line:
                self._lines.append(line)

    def cancel(self) -> None:
        try:
            cancel(self.job)
            self._add("Cancelling the Job; its last checkpoint is kept for Resume.")
        except VoxSpaceError as e:
            self._add(e.user_message)


def unfinished(settings: Settings, identity: Identity) -> JobRun | None:
    """This person's newest run on Jobs whose results are not home yet (after a Space restart)."""
    from voxspace.run_service import runs_root

    root = runs_root(settings, identity)
    records = sorted(root.glob(f"*/{JOB_FILE}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in records:
        job = attach(settings, identity, path.parent)
        if job is not None and not job.record.results_fetched:
            return job
    return None
