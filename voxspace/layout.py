"""The shape of a recordings dataset, on the Hub and on local disk (they are the same shape).

    README.md                                   dataset card (YAML: license, language, configs)
    data/<split>/<take_id>/metadata.jsonl       one row: file_name, text, language, duration, ...
    data/<split>/<take_id>/<take_id>.wav        16 kHz mono 16-bit PCM

One folder per take means appending a take only ever adds files: no commit rewrites or conflicts
with an earlier one, and `datasets.load_dataset(repo_id)` reads it as an audiofolder with an Audio
column and the train/test splits. Every metadata row has the same typed columns (the folder
builder refuses metadata files whose inferred schemas differ), so an unknown language is "".
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SPLITS = ("train", "test")
METADATA = "metadata.jsonl"


def split_for(seq: int) -> str:
    """Deterministic held-out mark for the user's `seq`-th take (0-based).

    Among the first 12 takes every third is test (4 of 12, so a before/after WER exists early);
    after that one in eight. A take's mark never changes once given.
    """
    if seq < 12:
        return "test" if seq % 3 == 1 else "train"
    return "test" if seq % 8 == 1 else "train"


_FINGERPRINTED = re.compile(r"^\d{8}T\d{6}-([0-9a-f]{12})$")


def audio_fingerprint(wav_bytes: bytes) -> str:
    """12 hex digits of the SHA-256 of the decoded 16-bit samples: the same audio gives the same
    fingerprint whichever way it arrived (microphone, CLI, upload, a re-sent browser take), since
    each goes through audio.prepare_take first; header differences do not count."""
    import soundfile as sf

    samples, _ = sf.read(io.BytesIO(bytes(wav_bytes)), dtype="int16", always_2d=False)
    return hashlib.sha256(samples.tobytes()).hexdigest()[:12]


def new_take_id(fingerprint: str | None = None) -> str:
    """Sortable by time, unique across devices: 20261126T090742-3f9a1c2b7d0e.

    With the audio's fingerprint as its suffix the id also says what audio it holds, so a duplicate
    is found from the metadata alone (no schema change, no audio download). Older ids carry
    8 random hex digits instead and match nothing."""
    suffix = fingerprint if fingerprint else secrets.token_hex(4)
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + suffix


def fingerprint_of(take_id: str) -> str | None:
    """The audio fingerprint a take id carries, or None (ids from before fingerprints)."""
    m = _FINGERPRINTED.match(take_id)
    return m.group(1) if m else None


@dataclass(frozen=True)
class Take:
    take_id: str
    text: str
    language: str  # "en", "fr", ... or "" when not given (Voxtral then auto-detects)
    duration: float  # seconds of audio as stored (after trimming)
    phrase_id: str  # "en-0042", "custom-...", "" for uploads without one
    split: str  # "train" | "test"
    seq: int  # order among this user's takes; decides the split
    created_at: float  # unix time
    source: str = "mic"  # mic | upload | import

    @property
    def folder(self) -> str:
        return f"data/{self.split}/{self.take_id}"

    @property
    def wav_name(self) -> str:
        return f"{self.take_id}.wav"

    @property
    def wav_path_in_repo(self) -> str:
        return f"{self.folder}/{self.wav_name}"

    @property
    def metadata_path_in_repo(self) -> str:
        return f"{self.folder}/{METADATA}"

    def metadata_line(self) -> str:
        row = {"file_name": self.wav_name, **asdict(self)}
        row["duration"] = float(row["duration"])
        row["created_at"] = float(row["created_at"])
        return json.dumps(row, ensure_ascii=False) + "\n"

    @classmethod
    def from_row(cls, row: dict) -> Take:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in row.items() if k in names})


@dataclass(frozen=True)
class LocalTake:
    """A take found in a local folder of the dataset layout: its metadata and where its audio is."""

    take: Take
    wav: Path


def read_folder(root: Path) -> list[LocalTake]:
    """All takes under `root` (a snapshot of the repo, or the local no-token folder), by seq."""
    found: list[LocalTake] = []
    for meta in sorted(Path(root).glob(f"data/*/*/{METADATA}")):
        for line in meta.read_text(encoding="utf-8").splitlines():
            if line.strip():
                take = Take.from_row(json.loads(line))
                found.append(LocalTake(take, meta.parent / take.wav_name))
    return sorted(found, key=lambda t: (t.take.seq, t.take.take_id))


def write_take(root: Path, take: Take, wav_bytes: bytes) -> Path:
    """Write one take into `root` in the layout above (not atomic: the spool handles durability)."""
    folder = Path(root) / take.folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / take.wav_name).write_bytes(wav_bytes)
    (folder / METADATA).write_text(take.metadata_line(), encoding="utf-8")
    return folder
