"""`python -m voxspace train` and `python -m voxspace evaluate`: the engine, headless.

    python -m voxspace train --data alice/voxspace-recordings --base-model mistralai/Voxtral-Mini-3B-2507 \\
        --out runs/alice-1 --preset quick [--precision 8bit] [--slice-seconds 60] [--resume]
    python -m voxspace evaluate --data DIR_OR_REPO --base-model ID_OR_PATH [--adapter runs/alice-1/adapter]

Without --slice-seconds the run is one long slice (a dedicated GPU or a CPU); with it, the run is
chained in slices of that length exactly as on ZeroGPU, so a killed run resumes with --resume.
The Hub token comes from the environment (HF_TOKEN or `hf auth login`), never from the command line.
"""

from __future__ import annotations

import argparse
import shutil
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
    ):
        tr.add_argument(f"--{name}", type=typ)
    tr.add_argument("--no-eval", action="store_true", help="skip WER/CER before and after")
    tr.add_argument(
        "--max-new-tokens", type=int, default=64, help="longest transcript generated in evaluation"
    )
    tr.set_defaults(func=_train)

    ev = sub.add_parser("evaluate", help="WER/CER of the base model (and an adapter) on held-out takes")
    ev.add_argument("--data", required=True)
    ev.add_argument("--base-model", required=True)
    ev.add_argument("--adapter", help="a folder with adapter_config.json (e.g. RUN/adapter)")
    ev.add_argument("--precision", default="8bit", choices=["8bit", "bf16", "fp32"])
    ev.add_argument("--max-new-tokens", type=int, default=64)
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
            "precision": args.precision,
            "slice_seconds": args.slice_seconds,
        }.items()
        if v is not None
    }
    return TrainConfig.preset(args.preset, **overrides)


def _print_progress(step: int, total: int, loss: float | None, seconds_left: float | None) -> None:
    loss_s = "-" if loss is None else f"{loss:.4f}"
    left = "" if seconds_left is None else f"  ~{seconds_left:.0f} s left"
    print(f"step {step}/{total}  loss {loss_s}{left}", flush=True)


def _train(args: argparse.Namespace) -> int:
    from voxspace import checkpoint, gpu
    from voxspace.evaluate import evaluate_run_dir, format_report
    from voxspace.model import ModelConfig
    from voxspace.settings import Settings
    from voxspace.tracking import TrackioTracker
    from voxspace.train import RUN_SPEC, Trainer

    out = Path(args.out)
    settings = Settings.from_env()
    token = _token()
    if checkpoint.has_checkpoint(out) and not args.resume:
        raise BadInput(
            f"{out} already holds a training run: pass --resume to continue it, or pick a new --out."
        )
    if args.resume and not (out / RUN_SPEC).is_file():
        raise BadInput(f"Nothing to resume in {out}: it holds no training run.")
    if not args.resume and not (args.data and args.base_model):
        raise BadInput("A new run needs --data and --base-model (or --resume to continue one in --out).")
    if not args.resume:
        shutil.rmtree(out / "encoder_cache", ignore_errors=True)
    config = None if args.resume else _config(args)
    precision = config.precision if config else None
    model_cfg = ModelConfig(args.base_model, precision=precision or "8bit", token=token)
    tracker = TrackioTracker(out.resolve().name, trackio_dir=settings.data_dir / "trackio")
    trainer = Trainer(
        out,
        config,
        None if args.resume else args.data,
        None if args.resume else model_cfg,
        tracker=tracker,
        data_token=token,
        data_endpoint=settings.hub_endpoint,
    )
    trainer.model_cfg.token = token
    trainer.prepare()
    print(
        f"training on {len(trainer.train_takes)} takes, holding out {len(trainer.test_takes)}; "
        f"{gpu.detect_hardware().description}",
        flush=True,
    )
    base = gpu.preload_base(trainer.model_cfg)
    if trainer.config.slice_seconds and args.slice_seconds:

        def show(s: Any) -> None:
            _print_progress(s.step, s.total_steps, s.last_loss, None)
            print(
                f"slice: {s.steps_run} steps, {s.step_seconds:.1f} s in steps, {s.overhead_seconds:.1f} s "
                "overhead",
                flush=True,
            )

        summary = gpu.run_in_slices(out, cap_s=args.slice_seconds, on_slice=show, tracker=tracker)
        done = summary.done
    else:
        trainer._base = base
        last = [-1]

        def on_progress(p: gpu.Progress) -> None:
            if p.step != last[0]:
                last[0] = p.step
                _print_progress(p.step, p.total_steps, p.last_loss, p.seconds_left)

        final = gpu.wait_for(gpu.start_background_run(trainer), on_progress=on_progress)
        done = final.status == "done"
        trainer.close()
    print(f"adapter: {out / 'adapter'}" if done else f"stopped; resume with --resume --out {out}", flush=True)
    if done and not args.no_eval:
        print(format_report(evaluate_run_dir(out, base, max_new_tokens=args.max_new_tokens)), flush=True)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from voxspace.data import load_takes, split_takes
    from voxspace.evaluate import evaluate_adapter, format_report
    from voxspace.model import ModelConfig, load_base
    from voxspace.settings import Settings

    token = _token()
    _, test = split_takes(load_takes(args.data, token=token, endpoint=Settings.from_env().hub_endpoint))
    base = load_base(ModelConfig(args.base_model, precision=args.precision, token=token))
    print(
        format_report(evaluate_adapter(base, test, args.adapter, max_new_tokens=args.max_new_tokens)),
        flush=True,
    )
    return 0
