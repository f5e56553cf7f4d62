"""`train --on-jobs FLAVOR` and `job status|cancel`: the CLI's way to the same Job as the Train tab's."""

from __future__ import annotations

import time

import pytest

from voxspace import jobs
from voxspace.cli import main


@pytest.fixture
def env(monkeypatch, hub_tokens, tmp_path, tiny_voxtral_dir):
    monkeypatch.setenv("HF_TOKEN", hub_tokens["alice"])
    monkeypatch.setenv("VOXSPACE_JOBS_IMAGE", "hf.co/spaces/spaceowner/voxspace")
    monkeypatch.setenv("VOXSPACE_DATA_DIR", str(tmp_path / "data"))
    return str(tiny_voxtral_dir)


def test_launch_without_following_then_status_and_cancel_find_the_job_again(
    env, recordings, hub, hub_tokens, tmp_path, capsys
):
    out = tmp_path / "run"
    args = [
        "train",
        "--on-jobs",
        "l4x1",
        "--data",
        recordings,
        "--base-model",
        env,
        "--out",
        str(out),
        "--preset",
        "quick",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--precision",
        "fp32",
        "--no-eval",
        "--timeout",
        "30",
        "--no-follow",
    ]
    assert main(args) == 0
    said = capsys.readouterr().out
    job_id = jobs.JobRecord.load(out).job_id
    assert "$0.80/h" in said and f"Job {job_id}" in said and "job status --follow" in said
    assert hub.job(job_id)["timeoutSeconds"] == 30 * 60 and hub.job(job_id)["flavor"] == "l4x1"

    assert main(["job", "cancel", "--out", str(out)]) == 0
    assert "cancelled" in capsys.readouterr().out
    while hub.job(job_id)["status"]["stage"] == "RUNNING":
        time.sleep(0.1)
    assert main(["job", "status", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "Cancelled" in said and "--resume" in said
    assert hub_tokens["alice"] not in said


def test_job_options_without_on_jobs_and_a_folder_without_a_job_are_refused(env, tmp_path, capsys):
    assert (
        main(["train", "--data", "x/y", "--base-model", env, "--out", str(tmp_path / "r"), "--timeout", "5"])
        == 2
    )
    assert "go with --on-jobs FLAVOR" in capsys.readouterr().err
    assert main(["job", "status", "--out", str(tmp_path / "nothing")]) == 2
    assert "holds no run on Hugging Face Jobs" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: an unknown flavor is a usage error
        main(["train", "--on-jobs", "a42", "--out", str(tmp_path / "r")])
