"""All configuration in one place: one frozen dataclass read from the environment.

Every module receives a `Settings` (or reads `Settings.from_env()` once); nothing else reads
os.environ for configuration. Variables are listed in README "Configuration".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from voxspace.commit_budget import BudgetConfig

DEFAULT_BASE_MODEL = "mistralai/Voxtral-Mini-3B-2507"
LANGUAGES = ("en", "es", "fr", "pt", "hi", "de", "nl", "it")  # what Voxtral supports
LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "fr": "French", "pt": "Portuguese", "hi": "Hindi",
                  "de": "German", "nl": "Dutch", "it": "Italian"}


def language_choices(blank: str | None = None) -> list[tuple[str, str]]:
    """(name shown, code kept) pairs for a dropdown; `blank` labels an extra "" choice first."""
    return ([(blank, "")] if blank else []) + [(LANGUAGE_NAMES[c], c) for c in LANGUAGES]


def _default_data_dir() -> Path:
    # A Space with a Storage Bucket mounted at /data keeps pending takes there (voxspace.storage);
    # otherwise a folder in the user's home (a Space's own disk: wiped on restart).
    if os.environ.get("SPACE_ID") and Path("/data").is_dir():
        return Path("/data/voxspace")
    return Path.home() / ".voxspace"


@dataclass(frozen=True)
class Limits:
    """Checks every take must pass before it is stored (see voxspace.audio)."""

    sample_rate: int = 16_000
    min_speech_s: float = 1.0  # after trimming silence
    max_take_s: float = 30.0  # one Voxtral chunk
    min_rms_dbfs: float = -45.0  # quieter than this is "too quiet"
    clip_fraction: float = 0.001  # share of samples at full scale that counts as clipped
    max_upload_files: int = 2_000
    max_upload_mb: int = 500


@dataclass(frozen=True)
class SignInRetryConfig:
    """Backoff for checking again a sign-in the Hub could not answer (voxspace.sign_in_retry)."""

    first_s: float = 5.0  # the first wait after the failed check
    max_s: float = 300.0  # the longest wait: a longer Retry-After is cut to this (whoami is cheap)

    def delay_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """The wait before check number `attempt` (1: the first re-check): doubling from first_s,
        at least a 429's Retry-After, never over max_s."""
        backoff = self.first_s * 2 ** (attempt - 1)
        return min(self.max_s, max(backoff, retry_after_s or 0.0))


@dataclass(frozen=True)
class Settings:
    base_model: str = DEFAULT_BASE_MODEL
    data_dir: Path = field(default_factory=_default_data_dir)
    hub_endpoint: str = "https://huggingface.co"
    dataset_repo_name: str = "voxspace-recordings"
    space_id: str | None = None  # set by the Spaces platform; means "use the visitor's OAuth token"
    push_retry_max_s: float = 300.0  # backoff cap between push retries
    slice_cap_s: int = 120  # longest single ZeroGPU call we ask for
    slice_max_steps: int = 0  # at most this many steps per GPU slice (0: as many as fit); to try resuming
    zerogpu_runs: int = 4  # runs that train at once on ZeroGPU (each call there gets its own GPU)
    checkpoint_every_s: float = 300.0  # a run on a dedicated GPU or CPU saves (and mirrors) this often
    commit_budget: BudgetConfig = field(default_factory=BudgetConfig)  # per repo, under the Hub's limit
    sign_in_retry: SignInRetryConfig = field(default_factory=SignInRetryConfig)
    storage: str = ""  # "bucket" | "ephemeral" | "local" overrides voxspace.storage's guess
    limits: Limits = field(default_factory=Limits)
    jobs_image: str | None = None  # the Space image a Hugging Face Job runs (default: this Space's)

    @property
    def in_space(self) -> bool:
        return bool(self.space_id)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        kw: dict[str, object] = {}
        if v := env.get("VOXSPACE_BASE_MODEL"):
            kw["base_model"] = v
        if v := env.get("VOXSPACE_DATA_DIR"):
            kw["data_dir"] = Path(v).expanduser()
        if v := env.get("HF_ENDPOINT"):
            kw["hub_endpoint"] = v.rstrip("/")
        if v := env.get("VOXSPACE_DATASET_REPO_NAME"):
            kw["dataset_repo_name"] = v
        if v := env.get("SPACE_ID"):
            kw["space_id"] = v
        if v := env.get("VOXSPACE_SLICE_CAP_S"):
            kw["slice_cap_s"] = int(v)
        if v := env.get("VOXSPACE_SLICE_MAX_STEPS"):
            kw["slice_max_steps"] = int(v)
        if v := env.get("VOXSPACE_ZEROGPU_RUNS"):
            kw["zerogpu_runs"] = int(v)
        if v := env.get("VOXSPACE_CHECKPOINT_EVERY_S"):
            kw["checkpoint_every_s"] = float(v)
        if v := env.get("VOXSPACE_STORAGE"):
            kw["storage"] = v.strip().lower()
        if v := env.get("VOXSPACE_PUSH_RETRY_MAX_S"):
            kw["push_retry_max_s"] = float(v)
        if v := env.get("VOXSPACE_JOBS_IMAGE"):
            kw["jobs_image"] = v
        limits = {f.name: type(getattr(Limits(), f.name))(env[f"VOXSPACE_{f.name.upper()}"])
                  for f in fields(Limits) if f"VOXSPACE_{f.name.upper()}" in env}
        if limits:
            kw["limits"] = Limits(**limits)
        return cls(**kw)  # type: ignore[arg-type]
