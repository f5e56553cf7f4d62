"""`python -m voxspace train` and `python -m voxspace evaluate`: the engine, headless.

    python -m voxspace train --data alice/voxspace-recordings --base-model mistralai/Voxtral-Mini-3B-2507 \\
        --out runs/alice-1 --preset quick [--precision 8bit] [--slice-seconds 60] [--resume]
    python -m voxspace evaluate --data DIR_OR_REPO --base-model ID_OR_PATH [--adapter runs/alice-1/adapter]

Without --slice-seconds the run goes in one go (a dedicated GPU or a CPU), saving a checkpoint every
VOXSPACE_CHECKPOINT_EVERY_S (300 s); with it, the run is chained in slices of that length exactly as
on ZeroGPU. Either way a killed run continues with --resume. With --on-jobs FLAVOR the same run
goes to a Hugging Face Job on your account instead (voxspace.jobs_cli; `job status|cancel`).
The Hub token comes from the environment (HF_TOKEN or `hf auth login`), never from the command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from voxspace.errors import BadInput


def register(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser("train", help="fine-tune Voxtral (LoRA) on your takes")
    tr.add_argument("--data", help="a dataset repo id or a local folder in the VoxSpace layout")
    tr.add_argument("--base-model", help="a Voxtral repo id or local folder")
    tr.add_argument("--out", required=True, help="the run folder (checkpoint, adapter, summary.json)")
    tr.add_argument("--preset", default="standard", choices=["quick", "standard", "thorough"])
    tr.add_argument("--precision", choices=["8bit", "bf16", "fp32"])
    tr.add_argument("--slice-seconds", type=int, help="train in slices of this many seconds (as on ZeroGPU)")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    for name, typ in (
        ("epochs", int),
        ("lr", float),
        ("batch-size", int),
        ("grad-accum", int),
        ("rank", int),
        ("alpha", int),
        ("seed", int),
        ("early-stop-epochs", int),
    ):
        tr.add_argument(f"--{name}", type=typ)
    tr.add_argument(
        "--fixed-batch",
        action="store_true",
        help="always --batch-size takes per pass (default: fitted to free GPU memory)",
    )
    tr.add_argument(
        "--adapt-encoder",
        type=int,
        metavar="N",
        help="also adapt the top N audio-encoder layers and the projector, for speech far from typical "
        "(e.g. 4 or 8; costs more per step)",
    )
    tr.add_argument("--no-eval", action="store_true", help="skip WER/CER before and after")
    tr.add_argument(
        "--eval-takes",
        type=int,
        metavar="N",
        help="measure WER/CER on a sample of at most N held-out takes across languages and recording "
        "time (default 64; 0 measures every held-out take)",
    )
    tr.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="cap on a transcript's tokens in evaluation (default: from each take's duration)",
    )
    from voxspace import jobs_cli

    jobs_cli.add_train_options(tr)  # --on-jobs FLAVOR, --timeout, --image, --no-follow
    tr.set_defaults(func=_train)
    jobs_cli.register(sub)  # `job status|cancel`

    ev = sub.add_parser("evaluate", help="WER/CER of the base model (and an adapter) on held-out takes")
    ev.add_argument("--data", required=True)
    ev.add_argument("--base-model", required=True)
    ev.add_argument("--adapter", help="a folder with adapter_config.json (e.g. RUN/adapter)")
    ev.add_argument("--precision", default="bf16", choices=["8bit", "bf16", "fp32"],
                    help="how to load the base (default bf16: as the demo and the card's snippet do)")
    ev.add_argument("--max-new-tokens", type=int, default=None)
    ev.set_defaults(func=_evaluate)


def _token() -> str | None:
    from huggingface_hub import get_token

    return get_token()


def _config(args: argparse.Namespace) -> Any:
    from voxspace.train import TrainConfig

    overrides = {
        k: v
        for k, v in {
            "epochs": args.epochs,
            "lr": args.lr,
            "batch_size": args.batch_size,
            "grad_accum": args.grad_accum,
            "rank": args.rank,
            "alpha": args.alpha,
            "seed": args.seed,
            "early_stop_epochs": args.early_stop_epochs,
            "precision": args.precision,
            "slice_seconds": args.slice_seconds,
            "auto_batch": False if args.fixed_batch else None,
            "adapt_encoder": args.adapt_encoder,
            "eval_max_takes": args.eval_takes,
        }.items()
        if v is not None
    }
    return TrainConfig.preset(args.preset, **overrides)


def _train(args: argparse.Namespace) -> int:
    """A thin caller of voxspace.run_service: the page runs the very same code."""
    from dataclasses import replace

    from voxspace import checkpoint, run_service
    from voxspace.auth import Identity
    from voxspace.evaluate import format_report
    from voxspace.settings import Settings

    if args.on_jobs:  # the same run on Hugging Face Jobs (voxspace.jobs_cli)
        from voxspace.jobs_cli import train_on_jobs

        return train_on_jobs(args, None if args.resume else _config(args))
    if args.timeout or args.image or args.no_follow:
        raise BadInput("--timeout, --image and --no-follow go with --on-jobs FLAVOR.")
    settings = Settings.from_env()
    if args.base_model:
        settings = replace(settings, base_model=args.base_model)
    if not args.resume and checkpoint.has_checkpoint(args.out):
        raise BadInput(
            f"{args.out} already holds a training run: pass --resume to continue it, or pick a new --out."
        )
    if not args.resume and not (args.data and args.base_model):
        raise BadInput("A new run needs --data and --base-model (or --resume to continue one in --out).")
    # Every detail (tracebacks included) goes to <out>/train.log; the terminal gets one line a step.
    from voxspace.cli import log_to_file

    args.log_file = Path(args.out) / "train.log"
    log_to_file(args.log_file)
    # No username: the CLI never mirrors checkpoints to a repo; --out is the run.
    identity = Identity(None, token=_token(), source="local")
    handle = run_service.start_run(
        settings,
        identity,
        run_dir=Path(args.out),
        data=args.data,
        config=None if args.resume else _config(args),
        resume=args.resume,
        sliced=args.slice_seconds is not None,
        evaluate=not args.no_eval,
        max_new_tokens=args.max_new_tokens,
    )
    final = run_service.wait(handle, on_line=lambda line: print(line, flush=True))
    out = Path(args.out)
    if final.phase != "done":
        print(f"stopped; resume with --resume --out {out}", flush=True)
    else:
        print(f"adapter: {out / 'adapter'}", flush=True)
        if final.eval is not None:
            print(format_report(final.eval), flush=True)
        from voxspace.tracking import PROJECT, trackio_dir_in_use

        print(f"curves: TRACKIO_DIR={trackio_dir_in_use()} trackio show --project {PROJECT}", flush=True)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from voxspace.data import load_takes, split_takes
    from voxspace.evaluate import check_adapter, evaluate_adapter, format_report
    from voxspace.hub import as_user_error
    from voxspace.model import ModelConfig, check_base_model, load_base
    from voxspace.settings import Settings

    token, settings = _token(), Settings.from_env()
    adapter = check_adapter(args.adapter) if args.adapter else None  # checked before anything loads
    cfg = ModelConfig(args.base_model, precision=args.precision, token=token)
    check_base_model(cfg, endpoint=settings.hub_endpoint, in_space=settings.in_space)
    try:
        _, test = split_takes(load_takes(args.data, token=token, endpoint=settings.hub_endpoint))
    except Exception as e:  # the Hub or a folder that cannot be read: one sentence
        raise as_user_error(e, action="read the takes from", repo_id=args.data) from e
    base = load_base(cfg)
    print(
        format_report(evaluate_adapter(base, test, adapter, max_new_tokens=args.max_new_tokens)),
        flush=True,
    )
    return 0
