"""What `python -m voxspace train` prints: one line per step, each once, no third-party banners; the
details (tracebacks included) in <out>/train.log (issue 16, "quiet, honest output")."""

from __future__ import annotations

import re

from voxspace.cli import main


def test_one_line_per_step_and_no_repeated_banners(takes_dir, tiny_voxtral_dir, tmp_path, monkeypatch,
                                                   capsys):
    monkeypatch.setenv("VOXSPACE_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "run"
    code = main(["train", "--data", str(takes_dir), "--base-model", str(tiny_voxtral_dir), "--out", str(out),
                 "--preset", "quick", "--precision", "fp32", "--epochs", "3", "--batch-size", "2",
                 "--grad-accum", "1", "--fixed-batch"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    steps = [int(m.group(1)) for line in lines if (m := re.match(r"step (\d+)/6  loss \d", line))]
    assert steps == [1, 2, 3, 4, 5, 6]  # every step once, in order; none "loss -"
    assert not any("loss -" in line for line in lines)
    said = [line for line in lines if line.strip()]
    assert len(said) == len(set(said)), "a line was printed twice"
    assert not any("Trackio" in line or "Run finished" in line for line in lines + captured.err.splitlines())
    assert "Traceback" not in captured.err and "FutureWarning" not in captured.err
    log = (out / "train.log").read_text()
    assert "step 6/6" in log
    # trackio's banner goes to the log, each line once per process (an earlier run may have said it)
    assert log.count("Trackio project initialized") <= 1 and log.count("Run finished. Uploading logs") <= 1
