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

from voxspace.errors import HubError
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
    """Upload checkpoint/ and summary.json to the user's private model repo; returns the commit oid."""
    from huggingface_hub import HfApi

    run_dir = Path(run_dir)
    api = HfApi(endpoint=endpoint, token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=True, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            repo_type="model",
            folder_path=str(checkpoint_dir(run_dir)),
            path_in_repo=REMOTE_PREFIX,
            commit_message="VoxSpace checkpoint",
            delete_patterns=["*"],
            ignore_patterns=["README.md"],  # peft's card may name a local base path the Hub would refuse
        )
        if (run_dir / SUMMARY).is_file():
            api.upload_file(
                repo_id=repo_id,
                repo_type="model",
                path_or_fileobj=str(run_dir / SUMMARY),
                path_in_repo=f"{REMOTE_PREFIX}/{SUMMARY}",
                commit_message="VoxSpace run summary",
            )
    except Exception as e:  # huggingface_hub raises many types; the user needs one sentence
        raise HubError(
            "Could not save the checkpoint to your model repo; training continues locally.",
            detail=type(e).__name__,
        ) from e
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
