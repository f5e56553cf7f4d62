"""What a Hugging Face Job launched by voxspace.jobs runs: the normal run, then its results to the Hub.

    python -m voxspace.job_entry --repo alice/voxspace-checkpoints --run run-1 --spec-revision OID
        [--resume] [--no-eval]

The token comes only from the Job secret HF_TOKEN (huggingface_hub reads it from the environment);
it is never printed. The run's spec (config, base model, pinned takes at their dataset commit) is
read from `jobs/<run>/run.json` at `--spec-revision`; training goes through run_service exactly as
in the Space (checkpoints mirrored to `checkpoint/` of the same repo), and at the end the adapter
and summary.json (WER before/after, loss history) are committed to `jobs/<run>/`.
Exit status: 0 done, 1 stopped or failed (the reason is the last line of the log), 2 refused.

On a multi-GPU machine the Job starts this once per GPU (voxspace.data_parallel): rank 0 does all
of the above; the other ranks wait for its run folder, train their share of each step and write
nothing (no log lines, checkpoints, trackio or Hub commits).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from voxspace import atomic_file
from voxspace.errors import AuthError, VoxSpaceError

log = logging.getLogger("voxspace.job_entry")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m voxspace.job_entry", description=__doc__.split("\n")[0])
    p.add_argument("--repo", required=True, help="the person's private checkpoint repo")
    p.add_argument("--run", required=True, help="the run's name (its folder in the Space)")
    p.add_argument("--spec-revision", required=True, help="the commit holding jobs/<run>/run.json")
    p.add_argument("--resume", action="store_true", help="continue from checkpoint/ in --repo")
    p.add_argument("--no-eval", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    from huggingface_hub import CommitOperationAdd, hf_hub_download

    from voxspace import checkpoint, data_parallel, run_service
    from voxspace.auth import Identity, whoami_username
    from voxspace.hub import as_user_error, commit_with_retry, folder_operations, hub_api
    from voxspace.jobs import REMOTE_JOBS, TOKEN_SECRET
    from voxspace.run_record import ADAPTER_DIR, SUMMARY
    from voxspace.settings import Settings
    from voxspace.train import RUN_SPEC

    token = os.environ.get(TOKEN_SECRET)
    if not token:
        raise AuthError(f"The Job has no {TOKEN_SECRET} secret: launch it from VoxSpace.")
    settings = Settings.from_env()
    identity = Identity(whoami_username(token, settings), token, "local")
    run_dir = run_service.runs_root(settings, identity) / args.run
    ranks = data_parallel.join()  # one process per GPU on a multi-GPU machine (jobs.job_command)
    if not ranks.is_main:  # rank 0 does everything below; the others only share its training steps
        data_parallel.train_as_helper(run_dir, ranks)
        return 0
    run_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"{REMOTE_JOBS}/{args.run}"
    try:
        path = hf_hub_download(
            args.repo,
            f"{prefix}/{RUN_SPEC}",
            revision=args.spec_revision,
            token=token,
            endpoint=settings.hub_endpoint,
            local_dir=run_dir / ".spec",
        )
    except Exception as e:
        raise as_user_error(e, action="read the run's settings from", repo_id=args.repo) from e
    spec = json.loads(Path(path).read_text())
    if args.resume:
        remote = checkpoint.find_remote_checkpoint(args.repo, token, settings.hub_endpoint)
        if remote is not None and _same_run(remote, spec):
            checkpoint.pull_checkpoint(run_dir, args.repo, token, settings.hub_endpoint)
            print(f"Continuing from step {remote['step']}.", flush=True)
        else:  # checkpoint/ holds another run's state (or none): this one starts over
            print("No checkpoint of this run was saved: starting from step 0.", flush=True)
    atomic_file.write_json(run_dir / RUN_SPEC, spec)

    handle = run_service.start_run(
        settings, identity, run_dir=run_dir, resume=True, sliced=False, evaluate=not args.no_eval
    )
    final = run_service.wait(handle, on_line=lambda line: print(line, flush=True))
    if final.phase != "done":
        return 1
    ops = folder_operations(
        run_dir / ADAPTER_DIR, path_in_repo=f"{prefix}/{ADAPTER_DIR}", skip=lambda p: p == "README.md"
    )
    ops.append(CommitOperationAdd(f"{prefix}/{SUMMARY}", run_dir / SUMMARY))
    try:
        commit_with_retry(
            hub_api(identity, settings),
            args.repo,
            ops,
            repo_type="model",
            commit_message=f"VoxSpace Job results for {args.run}",
        )
    except Exception as e:
        raise as_user_error(e, action="save the adapter to", repo_id=args.repo) from e
    print(f"Results saved in {args.repo}/{prefix}.", flush=True)
    return 0


def _same_run(state: dict, spec: dict) -> bool:
    """checkpoint/ in the repo is the person's latest run anywhere: resume only from this run's."""
    return all(state.get(k) == spec.get(k) for k in ("config", "data", "base_model", "takes"))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from voxspace.quiet import quiet_third_party

    quiet_third_party()
    try:
        return run(args)
    except VoxSpaceError as e:
        log.info("job failed", exc_info=True)
        print(f"error: {e.user_message}", flush=True)
        return 2
    finally:
        from voxspace.data_parallel import leave

        leave()


if __name__ == "__main__":
    sys.exit(main())
