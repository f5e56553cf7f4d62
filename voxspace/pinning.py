"""A run's own takes: which ones it trains on and holds out, fixed when the run starts.

    pins = TakePins.pin(train, test, revision=dataset_revision(folder))   # at the start, in run.json
    train, test, n_new = pins.select(read_folder(folder))                  # every later slice, resume, eval

Without this, every new Trainer re-read the recordings: a run resumed after a restart trained on
takes recorded while it was paused (its step count changing mid-run), and the "after" WER was
measured on other held-out takes than the "before" one. The pins (take ids with a hash of each
take's text and audio, and the dataset commit when the takes came from the Hub) travel in run.json
and in the checkpoint's state.json, so a run pulled back from the Hub keeps them too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxspace.errors import TakesChanged
from voxspace.layout import LocalTake


def take_hash(take: LocalTake) -> str:
    """What the run learnt from a take: its transcript, language and audio bytes (sha256, 16 hex)."""
    h = hashlib.sha256()
    h.update(f"{take.take.text}\0{take.take.language}\0".encode())
    h.update(take.wav.read_bytes() if take.wav.is_file() else b"")
    return h.hexdigest()[:16]


def sample_held_out(held_out: list[LocalTake], cap: int) -> list[LocalTake]:
    """At most `cap` held-out takes (0: all), stratified: each language gets a share in proportion
    to its takes (at least one while the cap allows), spread evenly over recording order, so the
    sample speaks for early and late takes, every language, and is the same on every machine."""
    if not cap or len(held_out) <= cap:
        return list(held_out)
    by_lang: dict[str, list[LocalTake]] = {}
    for t in sorted(held_out, key=lambda t: (t.take.seq, t.take.take_id)):  # recording order
        by_lang.setdefault(t.take.language or "", []).append(t)
    langs = sorted(by_lang, key=lambda k: (-len(by_lang[k]), k))
    share = {k: (1 if i < cap else 0) for i, k in enumerate(langs)}
    left = cap - sum(share.values())
    wants = {k: len(by_lang[k]) * cap / len(held_out) - share[k] for k in langs}
    for k in langs:  # floors first, then the largest remainders
        add = min(max(0, int(wants[k])), len(by_lang[k]) - share[k], left)
        share[k] += add
        left -= add
    for k in sorted(langs, key=lambda k: -(wants[k] - int(wants[k]))):
        if left and share[k] < len(by_lang[k]):
            share[k] += 1
            left -= 1
    picked: set[str] = set()
    for k in langs:
        group, n = by_lang[k], share[k]
        picked.update(group[int((i + 0.5) * len(group) / n)].take.take_id for i in range(n))
    return [t for t in held_out if t.take.take_id in picked]


def dataset_revision(folder: Path) -> str | None:
    """The commit a Hub snapshot folder was downloaded at (huggingface_hub names it after the commit);
    None for a local folder of takes."""
    folder = Path(folder)
    return folder.name if folder.parent.name == "snapshots" else None


@dataclass
class TakePins:
    """Take ids (with content hashes) for each split, and the dataset commit they were read at."""

    revision: str | None = None
    train: list[tuple[str, str]] = field(default_factory=list)
    test: list[tuple[str, str]] = field(default_factory=list)
    # held-out takes outside the measured sample: not trained on, not measured, not "new"
    held_back: list[str] = field(default_factory=list)

    @classmethod
    def pin(cls, train: list[LocalTake], test: list[LocalTake], revision: str | None = None,
            held_back: list[LocalTake] = ()) -> TakePins:
        return cls(
            revision=revision,
            train=[(t.take.take_id, take_hash(t)) for t in train],
            test=[(t.take.take_id, take_hash(t)) for t in test],
            held_back=[t.take.take_id for t in held_back],
        )

    def to_dict(self) -> dict[str, Any]:
        return {"revision": self.revision, "train": [list(p) for p in self.train],
                "test": [list(p) for p in self.test], "held_back": list(self.held_back)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> TakePins | None:
        if not raw:
            return None
        return cls(revision=raw.get("revision"), train=[tuple(p) for p in raw.get("train", [])],
                   test=[tuple(p) for p in raw.get("test", [])], held_back=list(raw.get("held_back", [])))

    @property
    def ids(self) -> set[str]:
        return {i for i, _ in self.train} | {i for i, _ in self.test}

    def select(self, takes: list[LocalTake]) -> tuple[list[LocalTake], list[LocalTake], int]:
        """(train, test, how many takes are not this run's) from `takes`, in the pinned order.

        Raises TakesChanged when a pinned take is gone or its text or audio differs: the numbers
        would no longer describe what was trained. Takes read at the pinned commit cannot differ,
        so their audio is not hashed again (every ZeroGPU slice selects them inside its GPU time).
        """
        by_id = {t.take.take_id: t for t in takes}
        missing = [i for i in sorted(self.ids) if i not in by_id]
        verify = self.revision is None
        changed = [i for i, h in self.train + self.test if verify and i in by_id and take_hash(by_id[i]) != h]
        if missing or changed:
            parts = []
            if missing:
                parts.append(f"{len(missing)} of its takes are no longer in the recordings")
            if changed:
                parts.append(f"{len(changed)} of its takes were changed")
            raise TakesChanged(
                f"This run was started on {len(self.train) + len(self.test)} takes, but "
                f"{' and '.join(parts)} since. Its results could not be trusted: start a new run.",
                detail=f"missing={missing[:5]} changed={changed[:5]}",
            )
        known = self.ids | set(self.held_back)
        new = sum(1 for i in by_id if i not in known)
        return [by_id[i] for i, _ in self.train], [by_id[i] for i, _ in self.test], new
