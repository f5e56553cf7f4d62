"""Small files that a killed process never leaves half-written: written beside, then renamed over.

A run's records (run.json, job.json, summary.json, partial evaluation results, measured timings,
stored features, spilled encoder outputs)
are read back after a SIGKILL, a Space restart or a cancelled Job. A plain write_text truncates the
file first, so a kill in that instant leaves it empty and the resume stops on a parse error (seen:
tests/train/test_killed_run.py killed a sliced run while it rewrote run.json). os.replace is atomic
on POSIX: a reader sees the old file or the new one, never part of one. No fsync: this guards
against a killed process, not a power cut (takes, which must survive one, are fsynced by
voxspace.store).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` for the block to write (torch.save, write_text, ...): renamed
    over `path` when the block ends, removed if it fails, so the old file is left as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Replace `path` with `text` (UTF-8) in one step."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, obj: Any, *, indent: int | None = 1, ensure_ascii: bool = True) -> Path:
    """`obj` as JSON at `path`, written as write_text writes."""
    return write_text(path, json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii))
