"""Push a run's adapter + model card to the owner's model repo, in one commit, private by default.

    python -m voxspace publish --run runs/2026-11-26 --repo me/voxtral-my-voice [--public] [--merged]

Only what the card and `PeftModel.from_pretrained` need leaves the machine: adapter_config.json,
adapter_model.safetensors, README.md and the loss image. Checkpoints, optimizer state and tokens
never do (the file list is an allow-list, not a folder upload). An optional merged bf16 model goes
under `merged/` in the same commit; it is ~2 bytes per base parameter, so its size is stated first.
"""

from __future__ import annotations

import json
import logging
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from voxspace.card import base_hub_id, base_model_license, card_files
from voxspace.errors import NotBetter, NothingToPublish, PublishError
from voxspace.hub import as_user_error, commit_with_retry, hub_api, validate_repo_id
from voxspace.run_record import ADAPTER_DIR, CHECKPOINT_DIR, SUMMARY, RunRecord
from voxspace.settings import Settings

if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from voxspace.auth import Identity

log = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
MERGED_DIR = "merged"
Progress = Callable[[str], None]


@dataclass
class PublishResult:
    """Where the adapter went. `files` are repo paths; `merged_bytes` is set if a merged model went too."""

    repo_id: str
    url: str
    private: bool
    commit_url: str
    files: list[str] = field(default_factory=list)
    merged_bytes: int | None = None


def adapter_files(run_dir: Path) -> dict[str, Path]:
    """The adapter files of a run, checked: both present and the config readable."""
    run_dir = Path(run_dir)
    if not (run_dir / SUMMARY).is_file():
        raise NothingToPublish(f"No training run found in {run_dir}: train a model first.")
    adapter = run_dir / ADAPTER_DIR
    missing = [name for name in ADAPTER_FILES if not (adapter / name).is_file()]
    if missing:
        raise NothingToPublish("This run has no saved adapter yet: let training finish (or save) first.",
                               detail=f"missing {', '.join(missing)} in {adapter}")
    try:
        json.loads((adapter / "adapter_config.json").read_text())
    except ValueError as e:
        raise NothingToPublish("The adapter's configuration file is damaged; train again.",
                               detail=str(e)) from e
    return {name: adapter / name for name in ADAPTER_FILES}


def check_better(record: RunRecord) -> None:
    """Raise NotBetter when the adapter measured no better than the base model (before any push)."""
    warning = record.eval.not_better_sentence() if record.eval is not None else None
    if warning:
        raise NotBetter(f"{warning} Publishing it would share a model that knows your voice no better. "
                        "Train again (more takes, or fewer epochs), or choose to publish it anyway.")


def published_adapter_config(path: Path, base_model: str) -> bytes:
    """adapter_config.json as published: `base_model_name_or_path` names the base repo id.

    Training may have loaded the base from a local folder or cache, whose path (with the user's
    home directory in it) means nothing to a reader and should not leave the machine; the repo it
    came from is named when card.base_hub_id knows it.
    """
    config = json.loads(Path(path).read_text())
    config["base_model_name_or_path"] = base_hub_id(base_model)
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()


def format_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _local_param_count(folder: Path) -> int:
    # A safetensors file opens with an 8-byte little-endian header length, then a JSON header.
    total = 0
    for f in folder.glob("*.safetensors"):
        with f.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for name, meta in header.items():
            if name != "__metadata__":
                count = 1
                for d in meta["shape"]:
                    count *= d
                total += count
    return total


def estimate_merged_bytes(base_model: str, api: HfApi | None = None) -> int | None:
    """Size of a merged bf16 model (2 bytes per base parameter; LoRA adds none once merged).

    Reads safetensors headers only (a local folder, or the Hub's metadata), never the weights.
    None when the size cannot be known without downloading.
    """
    if Path(base_model).is_dir():
        return 2 * _local_param_count(Path(base_model)) or None
    if api is None:
        return None
    try:
        meta = api.get_safetensors_metadata(base_model)
        return 2 * sum(meta.parameter_count.values())
    except Exception as e:
        log.info("no safetensors metadata for %s: %s", base_model, type(e).__name__)
        return None


def _prepare_repo(api: HfApi, repo_id: str, private: bool) -> str:
    """Create `repo_id` or reuse it with the chosen visibility; returns its URL.

    A repo that also holds training checkpoints is never made public: they, and the repo's history
    with them, would be published.
    """
    try:
        url = str(api.create_repo(repo_id, private=private, exist_ok=True))
        info = api.model_info(repo_id)
    except Exception as e:
        raise as_user_error(e, action="create the model repo", repo_id=repo_id) from e
    held_back = [f.rfilename for f in info.siblings or [] if f.rfilename.startswith(f"{CHECKPOINT_DIR}/")]
    if held_back and not private:
        raise PublishError(
            f"{repo_id} also holds training checkpoints ({CHECKPOINT_DIR}/); making it public would publish "
            "them and their history. Publish to a new repo name, or keep this one private.",
            detail=f"{len(held_back)} files under {CHECKPOINT_DIR}/")
    if info.private != private:
        try:
            api.update_repo_settings(repo_id, private=private)
        except Exception as e:
            raise as_user_error(e, action="change the visibility of", repo_id=repo_id) from e
    return url


def _merge_to(run_dir: Path, base_model: str, token: str | None, out: Path) -> int:
    """Load base in bf16, merge the adapter in, save to `out`; return the bytes written."""
    import torch
    from peft import PeftModel
    from transformers import AutoProcessor, VoxtralForConditionalGeneration

    base = VoxtralForConditionalGeneration.from_pretrained(base_model, dtype=torch.bfloat16, token=token)
    merged = PeftModel.from_pretrained(base, str(Path(run_dir) / ADAPTER_DIR)).merge_and_unload()
    merged.save_pretrained(out)
    AutoProcessor.from_pretrained(base_model, token=token).save_pretrained(out)
    return sum(f.stat().st_size for f in out.rglob("*") if f.is_file())


PLACEHOLDER_NAMESPACE = "your-username"  # in a preview made with no token: who would own the repo


@dataclass
class PublishPlan:
    """What publish_adapter would push, worked out with no token and no write: the preview, and the
    list publish_adapter then commits. `files` maps each repo path to its bytes or local file."""

    repo_id: str
    private: bool
    card: str
    files: dict[str, bytes | Path]

    def sizes(self) -> dict[str, int]:
        return {name: len(c) if isinstance(c, bytes) else Path(c).stat().st_size
                for name, c in self.files.items()}

    def summary(self) -> str:
        """One sentence: where it would go, who could see it, and each file with its size."""
        listing = ", ".join(f"{name} ({format_bytes(n)})" for name, n in self.sizes().items())
        who = "only you" if self.private else "everyone"
        return (f"Nothing has been pushed. Publishing would put {len(self.files)} files in {self.repo_id} "
                f"({'private' if self.private else 'public'}: {who} could see them): {listing}.")


def plan(run_dir: Path, repo_id: str, identity: Identity | None, settings: Settings, *, private: bool = True,
         include_per_take: bool = False) -> PublishPlan:
    """The card and files exactly as publish_adapter would push them, after the same checks.

    Needs no token: the base model's license is read from the Hub anonymously when it answers (a
    fallback otherwise), and a bare repo name gets the signed-in user, or PLACEHOLDER_NAMESPACE.
    """
    from voxspace.auth import ANONYMOUS

    identity = identity or ANONYMOUS
    run_dir = Path(run_dir)
    files = adapter_files(run_dir)
    record = RunRecord.load(run_dir)
    repo_id = validate_repo_id(repo_id, default_namespace=identity.username or PLACEHOLDER_NAMESPACE)
    license = base_model_license(record.base_model, hub_api(identity, settings))
    card = card_files(run_dir, repo_id, license=license, private=private, include_per_take=include_per_take)
    out: dict[str, bytes | Path] = {
        "adapter_config.json": published_adapter_config(files["adapter_config.json"], record.base_model),
        "adapter_model.safetensors": files["adapter_model.safetensors"],
        **card.as_repo_files(),
    }
    return PublishPlan(repo_id=repo_id, private=private, card=card.readme, files=out)


def merged_size(run_dir: Path, identity: Identity, settings: Settings) -> int | None:
    """Bytes a merged bf16 model of this run would take, to show before the person opts in."""
    return estimate_merged_bytes(RunRecord.load(run_dir).base_model, hub_api(identity, settings))


def publish_adapter(run_dir: Path, repo_id: str, identity: Identity, settings: Settings, *,
                    private: bool = True, merged: bool = False, include_per_take: bool = False,
                    progress: Progress | None = None, anyway: bool = False) -> PublishResult:
    """Create (or reuse) `repo_id` with the chosen visibility and push the adapter + card in one commit.

    `private` is applied to an existing repo too: publishing is where the owner chooses who sees it.
    `merged=True` also pushes a merged bf16 model under merged/ (size reported through `progress`
    before the push starts). An adapter measured no better than the base model raises NotBetter
    unless `anyway`; its card says so either way.
    """
    from huggingface_hub import CommitOperationAdd

    say = progress or (lambda msg: log.info("%s", msg))
    run_dir = Path(run_dir)
    what = plan(run_dir, repo_id, identity, settings, private=private, include_per_take=include_per_take)
    record = RunRecord.load(run_dir)
    if not anyway:
        check_better(record)
    repo_id = what.repo_id
    api = hub_api(identity, settings)
    ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=c if isinstance(c, bytes) else str(c))
           for name, c in what.files.items()]

    with tempfile.TemporaryDirectory(prefix="voxspace-merged-") as tmp:
        merged_bytes = None
        if merged:  # the heavy local work first: nothing on the Hub changes if it fails
            estimate = estimate_merged_bytes(record.base_model, api)
            about = f" (about {format_bytes(estimate)})" if estimate else ""
            say(f"Merging the adapter into a bf16 copy of the base model{about}…")
            merged_bytes = _merge_to(run_dir, record.base_model, identity.token, Path(tmp))
            say(f"Merged model: {format_bytes(merged_bytes)} to upload under {MERGED_DIR}/.")
            ops += [CommitOperationAdd(path_in_repo=f"{MERGED_DIR}/{f.relative_to(tmp).as_posix()}",
                                       path_or_fileobj=str(f))
                    for f in sorted(Path(tmp).rglob("*")) if f.is_file()]

        say(f"Creating {'private' if private else 'public'} model repo {repo_id}…")
        url = _prepare_repo(api, repo_id, private)
        say(f"Uploading {len(ops)} files to {repo_id} in one commit…")
        try:
            commit = commit_with_retry(api, repo_id, ops, repo_type="model",
                                       commit_message="Publish adapter and model card (VoxSpace)")
        except Exception as e:
            raise as_user_error(e, action="upload the adapter to", repo_id=repo_id) from e
    result = PublishResult(repo_id=repo_id, url=url, private=private, commit_url=commit.commit_url,
                           files=[op.path_in_repo for op in ops], merged_bytes=merged_bytes)
    say(f"Published {repo_id} ({'private' if private else 'public'}): {url}")
    return result

