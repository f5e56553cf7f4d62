"""Resumable training state in <run_dir>/checkpoint, written atomically, optionally mirrored to the Hub.

    checkpoint/
        adapter_model.safetensors, adapter_config.json   the LoRA weights (peft format)
        trainer_state.pt     optimizer, scheduler, RNG states (torch, numpy, python, cuda)
        state.json           step, data position, metrics so far (readable without torch)

A slice may be killed at any moment (ZeroGPU ends the worker at its duration), so a checkpoint is
written to a sibling folder and swapped in with renames: the folder on disk is always whole.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from voxspace.run_record import CHECKPOINT_DIR, SUMMARY

STATE_JSON = "state.json"
TRAINER_STATE = "trainer_state.pt"
REMOTE_PREFIX = "checkpoint"  # folder in the user's model repo


def checkpoint_dir(run_dir: str | Path) -> Path:
    """The current checkpoint folder, falling back to the previous one if a swap was interrupted."""
    run_dir = Path(run_dir)
    current, previous = run_dir / CHECKPOINT_DIR, run_dir / f"{CHECKPOINT_DIR}.old"
    if (current / STATE_JSON).is_file():
        return current
    if (previous / STATE_JSON).is_file():
        return previous
    return current


def has_checkpoint(run_dir: str | Path) -> bool:
    return (checkpoint_dir(run_dir) / STATE_JSON).is_file()


def read_state(run_dir: str | Path) -> dict[str, Any]:
    return json.loads((checkpoint_dir(run_dir) / STATE_JSON).read_text())


def save(run_dir: str | Path, model: Any, trainer_state: dict[str, Any], state: dict[str, Any]) -> Path:
    """Write adapter + trainer_state + state.json to a temp folder, then swap it in."""
    import torch

    run_dir = Path(run_dir)
    final = run_dir / CHECKPOINT_DIR
    tmp = run_dir / f"{CHECKPOINT_DIR}.tmp-{os.getpid()}"
    old = run_dir / f"{CHECKPOINT_DIR}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    torch.save(trainer_state, tmp / TRAINER_STATE)
    (tmp / STATE_JSON).write_text(json.dumps(state, indent=1))
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load(run_dir: str | Path, model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Put the adapter weights into `model` (a PeftModel); return (trainer_state, state)."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = checkpoint_dir(run_dir)
    weights = load_file(str(folder / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(model, weights)
    if getattr(result, "unexpected_keys", None):
        raise RuntimeError(f"checkpoint does not fit this model: {result.unexpected_keys[:3]}")
    trainer_state = torch.load(folder / TRAINER_STATE, weights_only=False)  # our own file: RNG states
    return trainer_state, json.loads((folder / STATE_JSON).read_text())


# --- mirror on the Hub, so a run survives a Space restart ---------------------------------------
def push_checkpoint(run_dir: str | Path, repo_id: str, token: str | None, endpoint: str | None = None) -> str:
    """Upload checkpoint/ and summary.json to the user's private model repo in one commit; its oid.

    The commit is retried (voxspace.hub.commit_with_retry): the client never retries it itself.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    from voxspace.hub import as_user_error, commit_with_retry, ensure_private_repo, folder_operations

    run_dir = Path(run_dir)
    api = HfApi(endpoint=endpoint, token=token or False, library_name="voxspace")
    # peft's README card may name a local base path, which the Hub's YAML check would refuse
    ops = folder_operations(
        checkpoint_dir(run_dir), path_in_repo=REMOTE_PREFIX, skip=lambda p: p == "README.md"
    )
    if (run_dir / SUMMARY).is_file():
        ops.append(CommitOperationAdd(f"{REMOTE_PREFIX}/{SUMMARY}", run_dir / SUMMARY))
    try:
        ensure_private_repo(api, repo_id, repo_type="model")
        info = commit_with_retry(api, repo_id, ops, commit_message="VoxSpace checkpoint", repo_type="model")
    except Exception as e:  # one sentence for the person; training itself carries on locally
        raise as_user_error(e, action="save the training checkpoint to", repo_id=repo_id) from e
    return info.oid


def find_remote_checkpoint(repo_id: str, token: str | None, endpoint: str | None = None) -> dict | None:
    """state.json of the checkpoint in `repo_id` (step, total_steps, ...), or None if there is none."""
    import tempfile

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    with tempfile.TemporaryDirectory() as tmp:  # never the shared cache: it serves stale private files
        try:
            path = hf_hub_download(
                repo_id,
                f"{REMOTE_PREFIX}/{STATE_JSON}",
                repo_type="model",
                token=token,
                endpoint=endpoint,
                local_dir=tmp,
            )
        except (EntryNotFoundError, RepositoryNotFoundError):
            return None
        return json.loads(Path(path).read_text())


def pull_checkpoint(
    run_dir: str | Path, repo_id: str, token: str | None, endpoint: str | None = None
) -> Path:
    """Download the remote checkpoint (and summary) into run_dir, ready for Trainer.setup()."""
    from huggingface_hub import snapshot_download

    run_dir = Path(run_dir)
    staging = run_dir / "remote"
    snapshot_download(
        repo_id,
        repo_type="model",
        token=token,
        endpoint=endpoint,
        allow_patterns=[f"{REMOTE_PREFIX}/*"],
        local_dir=str(staging),
    )
    src = staging / REMOTE_PREFIX
    if (src / SUMMARY).is_file():
        shutil.move(str(src / SUMMARY), str(run_dir / SUMMARY))
    shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
    src.rename(run_dir / CHECKPOINT_DIR)
    shutil.rmtree(staging, ignore_errors=True)
    return run_dir / CHECKPOINT_DIR
