"""From the user's takes to training batches.

    takes = load_takes("alice/voxspace-recordings", token=..., cache_dir=per_user_dir)
    train, test = split_takes(takes)
    collate = TranscriptionCollator(processor)
    batch = collate([collate.encode(t) for t in train[:2]])

Audio is read from the WAV files with the processor's own loader (soundfile + soxr), never through
`datasets`: its Audio column needs torchcodec, which does not load beside every torch build.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voxspace.errors import BadInput, NotEnoughTakes
from voxspace.layout import LocalTake, read_folder

if TYPE_CHECKING:
    import torch

MIN_TRAIN_TAKES = 2
MIN_TEST_TAKES = 1
IGNORE = -100  # label value the loss skips (prompt and padding)


def fetch_takes(
    source: str | Path,
    *,
    token: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | Path | None = None,
    revision: str | None = None,
) -> Path:
    """A local folder holding the takes of `source` (a folder in the dataset layout, or a dataset repo).

    A repo is downloaded with `snapshot_download` into `cache_dir`, which must belong to this
    visitor alone (FACTS: a cache shared between visitors leaks private files), at `revision` (a
    commit: a resumed run reads the recordings as they were when it started) or the newest.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if str(source).count("/") != 1 or str(source).startswith((".", "/", "~")):
        raise BadInput(f"No folder named {source} here, and it is not a Hub repo id (user/name).")
    from huggingface_hub import snapshot_download

    from voxspace.hub import as_user_error

    try:
        local = snapshot_download(
            str(source),
            repo_type="dataset",
            token=token,
            endpoint=endpoint,
            cache_dir=str(cache_dir) if cache_dir else None,
            allow_patterns=["data/**"],
            revision=revision,
        )
    except Exception as e:  # not found, private to someone else, refused token, offline...
        raise as_user_error(e, action="read the recordings in", repo_id=str(source)) from e
    return Path(local)


def load_takes(
    source: str | Path,
    *,
    token: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | Path | None = None,
) -> list[LocalTake]:
    """Every take of `source` (see fetch_takes), in recording order."""
    return read_folder(fetch_takes(source, token=token, endpoint=endpoint, cache_dir=cache_dir))


def split_takes(takes: list[LocalTake]) -> tuple[list[LocalTake], list[LocalTake]]:
    """(train, test) by the split mark each take got when it was recorded."""
    train = [t for t in takes if t.take.split == "train"]
    test = [t for t in takes if t.take.split == "test"]
    if not takes:
        raise NotEnoughTakes(
            f"There are no takes to train on yet. Record at least {_takes_needed(0)} phrases first."
        )
    if len(train) < MIN_TRAIN_TAKES or len(test) < MIN_TEST_TAKES:
        more = _takes_needed(len(takes))
        raise NotEnoughTakes(
            f"Training needs at least {MIN_TRAIN_TAKES} training takes and {MIN_TEST_TAKES} held-out "
            f"take (found {len(train)} and {len(test)}). Record {more} more "
            f"take{'s' if more != 1 else ''}."
        )
    return train, test


def _takes_needed(have: int) -> int:
    """How many more takes (marked by layout.split_for) give enough of both splits."""
    from voxspace.layout import split_for

    n = have
    while True:
        marks = [split_for(i) for i in range(n)]
        if marks.count("train") >= MIN_TRAIN_TAKES and marks.count("test") >= MIN_TEST_TAKES:
            return max(1, n - have)
        n += 1


@dataclass
class Example:
    """One take, tokenised: prompt + transcript + EOS, and its mel features (one row per 30 s chunk)."""

    take_id: str
    input_ids: torch.Tensor  # (T,) long
    labels: torch.Tensor  # (T,) long, IGNORE on the prompt
    input_features: torch.Tensor  # (n_chunks, n_mels, 3000)
    prompt_len: int
    text: str
    language: str | None
    duration: float | None = None  # seconds of audio: evaluation's token limit follows it

    @property
    def n_labels(self) -> int:
        return int((self.labels != IGNORE).sum())

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


class TranscriptionCollator:
    """Builds examples the way Voxtral is prompted for transcription, and batches them.

    Each take keeps its own language ("" becomes None: Voxtral auto-detects). The transcript ends
    with EOS, or the model never learns to stop. Training batches are right-padded; generation
    prompts (`prompt_batch`) are left-padded, as the processor itself does.
    """

    def __init__(self, processor: Any, model_id: str = "voxspace") -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.model_id = model_id
        self.eos_id = self.tokenizer.eos_token_id
        self.pad_id = self.tokenizer.pad_token_id

    def prompt(self, take: LocalTake) -> dict[str, torch.Tensor]:
        """input_ids (1, P), attention_mask, input_features (n_chunks, n_mels, 3000) for one take."""
        if not take.wav.is_file():
            raise BadInput(f"The audio of take {take.take.take_id} is missing.", detail=str(take.wav))
        return self.processor.apply_transcription_request(
            language=take.take.language or None, audio=str(take.wav), model_id=self.model_id
        )

    def encode(self, take: LocalTake) -> Example:
        import torch

        enc = self.prompt(take)
        prompt = enc["input_ids"][0]
        target = torch.tensor([*self.tokenizer.encode(take.take.text, add_special_tokens=False), self.eos_id])
        return Example(
            take_id=take.take.take_id,
            input_ids=torch.cat([prompt, target]),
            labels=torch.cat([torch.full_like(prompt, IGNORE), target]),
            input_features=enc["input_features"],
            prompt_len=int(prompt.shape[0]),
            text=take.take.text,
            language=take.take.language or None,
            duration=float(take.take.duration),
        )

    def __call__(self, examples: list[Example]) -> dict[str, Any]:
        import torch

        width = max(len(e) for e in examples)
        ids = torch.full((len(examples), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
        attention = torch.zeros((len(examples), width), dtype=torch.long)
        for i, e in enumerate(examples):  # right padding for training
            ids[i, : len(e)] = e.input_ids
            labels[i, : len(e)] = e.labels
            attention[i, : len(e)] = 1
        return {
            "input_ids": ids,
            "attention_mask": attention,
            "labels": labels,
            "input_features": torch.cat([e.input_features for e in examples]),
            "take_ids": [e.take_id for e in examples],
            "chunks": [int(e.input_features.shape[0]) for e in examples],
        }

    def prompt_batch(self, examples: list[Example]) -> dict[str, Any]:
        """Left-padded prompts (no transcript) for batched generation."""
        import torch

        width = max(e.prompt_len for e in examples)
        ids = torch.full((len(examples), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(examples), width), dtype=torch.long)
        for i, e in enumerate(examples):
            ids[i, width - e.prompt_len :] = e.input_ids[: e.prompt_len]
            attention[i, width - e.prompt_len :] = 1
        return {
            "input_ids": ids,
            "attention_mask": attention,
            "input_features": torch.cat([e.input_features for e in examples]),
            "take_ids": [e.take_id for e in examples],
            "chunks": [int(e.input_features.shape[0]) for e in examples],
        }
