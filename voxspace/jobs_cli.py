"""`python -m voxspace train --on-jobs FLAVOR` and `python -m voxspace job status|cancel`.

    python -m voxspace train --on-jobs l4x1 --data alice/voxspace-recordings --base-model ID \\
        --out runs/alice-1 [--timeout 60] [--no-follow]
    python -m voxspace train --on-jobs l4x1 --out runs/alice-1 --resume     # a failed Job, as a new Job
    python -m voxspace job status --out runs/alice-1 [--follow]
    python -m voxspace job cancel --out runs/alice-1

The Job runs on your own account (the local token: HF_TOKEN or `hf auth login`) and is billed to
it; the image is VOXSPACE_JOBS_IMAGE (or --image), a VoxSpace Space's. The Job id is kept in
<out>/job.json, so `job status` finds it again later; results land in <out> as for a run here.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from voxspace.errors import AuthError, BadInput


def add_train_options(tr: argparse.ArgumentParser) -> None:
    from voxspace.jobs import FLAVORS

    tr.add_argument(
        "--on-jobs",
        metavar="FLAVOR",
        choices=list(FLAVORS),
        help=f"train on Hugging Face Jobs, billed to your account ({', '.join(FLAVORS)})",
    )
    tr.add_argument(
        "--timeout", type=int, metavar="MIN", help="with --on-jobs: stop the Job after MIN minutes"
    )
    tr.add_argument(
        "--image", help="with --on-jobs: the Space image the Job runs (default VOXSPACE_JOBS_IMAGE)"
    )
    tr.add_argument("--no-follow", action="store_true", help="with --on-jobs: launch and return")


def register(sub: argparse._SubParsersAction) -> None:
    job = sub.add_parser("job", help="a run on Hugging Face Jobs: status or cancel")
    jsub = job.add_subparsers(dest="job_command", required=True)
    st = jsub.add_parser("status", help="where the Job of --out is; brings its results home when done")
    st.add_argument("--out", required=True)
    st.add_argument("--follow", action="store_true", help="print its log until it ends")
    st.set_defaults(func=_status)
    ca = jsub.add_parser("cancel", help="cancel the Job of --out (its checkpoint is kept for --resume)")
    ca.add_argument("--out", required=True)
    ca.set_defaults(func=_cancel)


def _context(args: argparse.Namespace):
    from voxspace.auth import resolve_identity
    from voxspace.settings import Settings

    settings = Settings.from_env()
    if getattr(args, "image", None):
        settings = replace(settings, jobs_image=args.image)
    if getattr(args, "base_model", None):
        settings = replace(settings, base_model=args.base_model)
    identity = resolve_identity(settings)
    if not identity.signed_in:
        raise AuthError("A Job runs on your own account: set HF_TOKEN or run `hf auth login`.")
    return settings, identity


def _print_end(p, out: Path) -> None:
    from voxspace.evaluate import format_report

    if p.phase == "done":
        print(f"adapter: {out / 'adapter'}", flush=True)
        if p.eval is not None:
            print(format_report(p.eval), flush=True)
    elif p.phase == "failed":
        print(
            f"{p.message}\nresume with: python -m voxspace train --on-jobs FLAVOR --resume --out {out}",
            flush=True,
        )
    elif p.phase == "cancelled":
        print(
            f"cancelled; resume with: python -m voxspace train --on-jobs FLAVOR --resume --out {out}",
            flush=True,
        )


def train_on_jobs(args: argparse.Namespace, config) -> int:
    """Launch (and follow) the run as a Job; `config` is the CLI's TrainConfig (None on --resume)."""
    from voxspace import jobs

    if not args.resume and not (args.data and args.base_model):
        raise BadInput("A new run needs --data and --base-model (or --resume to continue one in --out).")
    settings, identity = _context(args)
    out = Path(args.out)
    job = jobs.launch(
        settings,
        identity,
        run_dir=out,
        flavor_name=args.on_jobs,
        data=args.data,
        config=config,
        timeout_min=args.timeout,
        evaluate=not args.no_eval,
        resume=args.resume,
    )
    print(job.plan.describe(), flush=True)
    print(f"Job {job.record.job_id}: {job.url}", flush=True)
    if args.no_follow:
        print(f"follow it with: python -m voxspace job status --follow --out {out}", flush=True)
        return 0
    final = jobs.follow(job, on_line=lambda line: print(line, flush=True))
    _print_end(final, out)
    return 0 if final.phase == "done" else 1


def _status(args: argparse.Namespace) -> int:
    from voxspace import jobs
    from voxspace.run_service import describe_phase

    settings, identity = _context(args)
    job = jobs.attach(settings, identity, args.out)
    if job is None:
        raise BadInput(f"{args.out} holds no run on Hugging Face Jobs.")
    if args.follow:
        p = jobs.follow(job, on_line=lambda line: print(line, flush=True))
    else:
        p = jobs.progress(job)
        for line in p.log:
            print(line, flush=True)
    print(f"Job {job.record.job_id} ({job.record.flavor}): {describe_phase(p)}", flush=True)
    _print_end(p, Path(args.out))
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from voxspace import jobs

    settings, identity = _context(args)
    job = jobs.attach(settings, identity, args.out)
    if job is None:
        raise BadInput(f"{args.out} holds no run on Hugging Face Jobs.")
    jobs.cancel(job)
    print(f"Job {job.record.job_id} cancelled; its last checkpoint is kept for --resume.", flush=True)
    return 0
