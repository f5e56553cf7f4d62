"""The run's encoded takes (tokens + log-mel features), computed on the CPU before the first GPU slice
and stored compactly, so no slice spends GPU time on feature extraction.

Features are stored as float16: half of float32 (0.73 MiB per 30 s chunk instead of 1.46 MiB, so
~3.6 GiB instead of ~7.2 GiB for 5000 takes). Whisper-normalised log-mels lie within about [-1, 2],
where float16 keeps an error below 1e-3: finer than the bfloat16 the audio encoder computes in with
the 8-bit and bf16 bases. A small index (take ids, dtype) says whether the file is current without
reading the features.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from voxspace import atomic_file
from voxspace.data import Example

FEATURE_DTYPE = "float16"
FILES = {"train": "examples.pt", "test": "heldout_examples.pt"}  # held-out: loss per epoch, both evaluations


def _paths(run_dir: Path, split: str) -> tuple[Path, Path]:
    data = Path(run_dir) / FILES[split]
    return data, data.with_suffix(".json")


def compact(example: Example) -> Example:
    """The example with its features in FEATURE_DTYPE."""
    import torch

    return replace(example, input_features=example.input_features.to(getattr(torch, FEATURE_DTYPE)))


def is_current(run_dir: Path, split: str, take_ids: Sequence[str]) -> bool:
    """True when the stored examples are exactly these takes, in this order, in FEATURE_DTYPE."""
    data, index = _paths(run_dir, split)
    if not (data.is_file() and index.is_file()):
        return False
    try:
        meta = json.loads(index.read_text())
    except (OSError, ValueError):
        return False
    return meta.get("take_ids") == list(take_ids) and meta.get("dtype") == FEATURE_DTYPE


def save(run_dir: Path, split: str, examples: list[Example]) -> None:
    """Write the examples, then the index (so a crash in between leaves the file marked stale)."""
    import torch

    data, index = _paths(run_dir, split)
    data.parent.mkdir(parents=True, exist_ok=True)
    index.unlink(missing_ok=True)
    with atomic_file.replacing(data) as tmp:
        torch.save([compact(e) for e in examples], tmp)
    ids = [e.take_id for e in examples]
    atomic_file.write_json(index, {"take_ids": ids, "dtype": FEATURE_DTYPE}, indent=None)


def load(run_dir: Path, split: str, take_ids: Sequence[str]) -> list[Example] | None:
    """The stored examples of these takes, or None when they are missing or stale."""
    import torch

    if not is_current(run_dir, split, take_ids):
        return None
    return torch.load(_paths(run_dir, split)[0], weights_only=False)  # our own file, written by save()


def encode(
    run_dir: Path,
    split: str,
    takes: Sequence[Any],
    collator: Callable[[], Any],
    on_progress: Callable[[int, int], None] | None = None,
) -> bool:
    """Encode and store `takes` (LocalTake) unless already current; True when work was done.

    `collator` is called only when encoding is needed (loading a processor costs time).
    `on_progress(done, total)` is called about every tenth of the takes (at least 50) and at the end.
    """
    ids = [t.take.take_id for t in takes]
    if is_current(run_dir, split, ids):
        return False
    encoder = collator()
    examples, every = [], max(50, len(takes) // 10)
    for i, take in enumerate(takes, 1):
        examples.append(encoder.encode(take))
        if on_progress is not None and (i % every == 0 or i == len(takes)):
            on_progress(i, len(takes))
    save(run_dir, split, examples)
    return True
