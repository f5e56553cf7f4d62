"""A write cut off part-way leaves the old file whole (voxspace/atomic_file.py).

The cut is real: a child process writes under a file-size limit (RLIMIT_FSIZE) smaller than the
new content, so the kernel stops the write part-way, as a SIGKILL between truncate and write would.
A plain write_text, under the same limit, is shown to leave a damaged file, so the test can fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD = {"step": 2, "config": {"epochs": 3}}
NEW = {"step": 3, "padding": "x" * 20_000}  # larger than the limit below
CHILD = """
import json, resource, signal, sys
from pathlib import Path
from voxspace import atomic_file
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
path, how = Path(sys.argv[1]), sys.argv[2]
new = json.dumps({"step": 3, "padding": "x" * 20_000})
try:
    atomic_file.write_text(path, new) if how == "atomic" else path.write_text(new)
except OSError as e:
    print(e.errno)
"""


def _write_cut_short(path: Path, how: str) -> str:
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), how], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_write_cut_short_leaves_the_old_file_whole_and_no_leftovers(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(OLD))
    assert _write_cut_short(path, "atomic") == "27"  # EFBIG: the kernel did cut the write
    assert json.loads(path.read_text()) == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]  # the partial copy is removed


def test_a_plain_write_cut_short_damages_the_file(tmp_path):
    """What atomic_file prevents: the same cut, with write_text, leaves a file no reader can parse."""
    path = tmp_path / "run.json"
    path.write_text(json.dumps(OLD))
    _write_cut_short(path, "plain")
    text = path.read_text()
    assert text != json.dumps(OLD) and len(text) <= 4096


def test_a_whole_write_replaces_the_file(tmp_path):
    from voxspace import atomic_file

    path = atomic_file.write_json(tmp_path / "summary.json", {"wer": "é"}, ensure_ascii=False)
    assert json.loads(path.read_text(encoding="utf-8")) == {"wer": "é"}
    atomic_file.write_json(path, NEW, indent=None)
    assert json.loads(path.read_text()) == NEW
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
