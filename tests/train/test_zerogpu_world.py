"""Training and evaluation through the real ZeroGPU machinery, billed to the visitor.

A Space process (tests/support/zerogpu_space.py) runs in ZeroGPU mode (SPACES_ZERO_GPU=true,
`spaces` imported first) against the local device API of tests/support/zerogpu_api.py: the real
`spaces` package patches torch at start-up, packs the base model at launch(), forks a worker per
GPU call and asks the device API for every call with the visitor's X-IP-Token, which the tests
send as a real HTTP header to a real Gradio endpoint. The one seam is the worker's move of the
weights to CUDA on a machine without a GPU (tests/support/zerogpu_seam.py, installed by
tests/support/zerogpu_site/sitecustomize.py; it installs nothing where a GPU exists).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.zerogpu_api import DeviceAPI, visitor_token

ROOT = Path(__file__).resolve().parents[2]
CAP_S = 60  # VOXSPACE_SLICE_CAP_S: the longest call the Space asks for
CONFIG = json.dumps({"precision": "bf16", "batch_size": 2, "epochs": 2})  # 4 training takes: 4 steps
pytestmark = pytest.mark.slow


@dataclass
class Space:
    api: DeviceAPI
    proc: subprocess.Popen
    url: str
    log_path: Path
    data: Path

    def log(self) -> str:
        return self.log_path.read_text()

    def client(self, visitor: str):
        from gradio_client import Client

        return Client(self.url, headers={"X-IP-Token": visitor_token(visitor)}, verbose=False)

    def start(self, visitor: str, run: str, *, resume: bool = False, max_steps: int = 1) -> dict:
        data = "" if resume else str(self.data)
        out = self.client(visitor).predict(
            visitor, run, data, "" if resume else CONFIG, resume, max_steps, api_name="/start"
        )
        return json.loads(out)

    def wait(self, visitor: str) -> dict:
        return json.loads(self.client(visitor).predict(visitor, api_name="/wait"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def space(tmp_path_factory, tiny_voxtral_dir, takes_dir):
    work = tmp_path_factory.mktemp("zerogpu-space")
    api = DeviceAPI(max_duration_s=CAP_S).start()
    port = _free_port()
    env = {
        **os.environ,
        "SPACES_ZERO_GPU": "true",
        "SPACES_ZERO_DEVICE_API_URL": api.url,
        "ZEROGPU_OFFLOAD_DIR": str(work / "offload"),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests/support/zerogpu_site"), str(ROOT)]),
        "VOXSPACE_BASE_MODEL": str(tiny_voxtral_dir),
        "VOXSPACE_DATA_DIR": str(work / "data"),
        "VOXSPACE_SLICE_CAP_S": str(CAP_S),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }
    log_path = work / "space.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.zerogpu_space"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    while proc.poll() is None:  # pytest-timeout bounds the start
        try:
            with urllib.request.urlopen(url, timeout=2):
                break
        except OSError:
            time.sleep(0.5)
    assert proc.poll() is None, log_path.read_text()
    yield Space(api, proc, url, log_path, takes_dir)
    proc.terminate()  # the Space this fixture started, by its PID
    proc.wait(timeout=30)
    api.stop()


def test_a_visitors_run_is_billed_to_them_in_every_gpu_call(space):
    first = len(space.api.calls)
    run_dir = Path(space.start("alice", "billed")["started"])
    result = space.wait("alice")

    assert result["phase"] == "done", result
    assert result["step"] == result["total"] == 4 and result["wer_after"] is not None
    assert all(finetuned is not None for _, _, finetuned in result["per_take"])
    calls = space.api.calls[first:]
    # evaluation before, four one-step slices, evaluation after: each one GPU call, all approved
    assert len(calls) == 6 and all(c.answer == "approved" and not c.failed for c in calls)
    assert {c.visitor for c in calls} == {"alice"}  # every call carried the visitor's token
    assert all(0 < c.duration_s <= CAP_S for c in calls)
    assert space.api.seconds_used("alice") > 0 and space.api.seconds_used(None) == 0
    # each call ran in its own forked worker, never in the Space's process
    assert len({c.pid for c in calls}) == 6 and space.proc.pid not in {c.pid for c in calls}

    log = space.log()
    loads = re.findall(r"base model .* loaded in [\d.]+ s \(process (\d+), thread (\w+)\)", log)
    assert loads == [(str(space.proc.pid), "MainThread")]  # once, at start-up, never in a GPU call
    assert space.api.startup_reports == 1  # spaces' start-up at launch(): the base was packed then
    assert f"features of 4 takes ready before the first GPU call (process {space.proc.pid})" in log
    # the audio encoder ran once per training take over the whole run, across fresh workers
    runs = [int(n) for n in re.findall(r"audio encoder run for (\d+) takes", "\n".join(result["log"]))]
    assert len(runs) == 4 and sum(runs) == 4 and runs[-1] == 0
    assert len(list((run_dir / "encoder_cache").glob("*.pt"))) == 4  # kept on disk between calls


def test_a_quota_refusal_mid_run_says_so_and_resume_finishes_the_run(space):
    space.api.refuse_call(3, "quota")  # evaluation before, slice 1, then the visitor's quota is gone
    space.start("bob", "quota")
    stopped = space.wait("bob")
    assert stopped["phase"] == "failed" and stopped["step"] == 1
    assert "Your ZeroGPU quota for today is used up" in stopped["message"]
    assert "press Resume" in stopped["message"] and "Traceback" not in stopped["message"]

    assert "started" in space.start("bob", "quota", resume=True)  # the quota is back
    resumed = space.wait("bob")
    assert resumed["phase"] == "done" and resumed["step"] == 4 and resumed["wer_after"] is not None
    assert {c.visitor for c in space.api.calls if c.answer == "approved"} >= {"bob"}


def test_a_nan_loss_inside_a_gpu_call_shows_the_nan_sentence(space):
    import torch
    from safetensors.torch import load_file, save_file

    space.api.refuse_call(3, "no-gpu")  # stop after one slice, with a checkpoint
    run_dir = Path(space.start("carol", "nan")["started"])
    stopped = space.wait("carol")
    assert stopped["phase"] == "failed" and "No GPU is free" in stopped["message"]

    # the checkpoint diverged (as a too-high learning rate leaves it): its LoRA weights are NaN
    weights = run_dir / "checkpoint" / "adapter_model.safetensors"
    tensors = {k: torch.full_like(v, float("nan")) for k, v in load_file(str(weights)).items()}
    save_file(tensors, str(weights))
    space.start("carol", "nan", resume=True)
    failed = space.wait("carol")
    assert failed["phase"] == "failed"
    assert "the loss became NaN" in failed["message"] and "lower learning rate" in failed["message"]
    assert "ZeroGPU worker error" not in failed["message"] and "unexpected" not in failed["message"]
