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
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.zerogpu_api import DeviceAPI, visitor_token, zerogpu_env
from voxspace.encoder_cache import run_cache_dir

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


def _zerogpu_env(api: DeviceAPI, work: Path, model_dir: Path) -> dict[str, str]:
    """A ZeroGPU Space's environment, its device API the local one, its worker seam installed."""
    return {
        **os.environ,
        **zerogpu_env(api, work / "offload"),
        "VOXSPACE_BASE_MODEL": str(model_dir),
        "VOXSPACE_DATA_DIR": str(work / "data"),
        "VOXSPACE_SLICE_CAP_S": str(CAP_S),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(_free_port()),
        "PYTHONUNBUFFERED": "1",
    }


def _spawn(argv: list[str], env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, str]:
    """Start a Space process and wait until its page answers; (process, url)."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, *argv],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: spaces' forked workers are stopped with it
        )
    url = f"http://127.0.0.1:{env['GRADIO_SERVER_PORT']}/"
    while proc.poll() is None:  # pytest-timeout bounds the start
        try:
            with urllib.request.urlopen(url, timeout=2):
                break
        except OSError:
            time.sleep(0.5)
    assert proc.poll() is None, log_path.read_text()
    return proc, url


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # the Space a test started and the GPU workers it forked
    proc.wait(timeout=30)


BASE_LOADED = r"base model .* loaded in [\d.]+ s \(process (\d+), thread (\w+)\)"


@pytest.fixture(scope="module")
def space(tmp_path_factory, tiny_voxtral_dir, takes_dir):
    work = tmp_path_factory.mktemp("zerogpu-space")
    api = DeviceAPI(max_duration_s=CAP_S).start()
    proc, url = _spawn(
        ["-m", "tests.support.zerogpu_space"], _zerogpu_env(api, work, tiny_voxtral_dir), work / "space.log"
    )
    yield Space(api, proc, url, work / "space.log", takes_dir)
    _stop(proc)
    api.stop()


def test_app_py_on_zerogpu_loads_the_base_model_once_at_start_up_in_the_main_thread(
    tmp_path, tiny_voxtral_dir
):
    api = DeviceAPI().start()
    env = {k: v for k, v in _zerogpu_env(api, tmp_path, tiny_voxtral_dir).items() if k != "HF_TOKEN"}
    proc, _ = _spawn([str(ROOT / "app.py")], env, tmp_path / "app.log")
    try:
        log = (tmp_path / "app.log").read_text()
        assert re.findall(BASE_LOADED, log) == [(str(proc.pid), "MainThread")]
        assert "(bf16)" in log and api.startup_reports == 1  # spaces' start-up ran at launch(): packed
    finally:
        _stop(proc)
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
    loads = re.findall(BASE_LOADED, log)
    assert loads == [(str(space.proc.pid), "MainThread")]  # once, at start-up, never in a GPU call
    assert space.api.startup_reports == 1  # spaces' start-up at launch(): the base was packed then
    assert f"features of 4 takes ready before the first GPU call (process {space.proc.pid})" in log
    # peft imported by the Space process before any fork, so no GPU call imports it on the visitor's clock
    imported = log.index("peft imported for the GPU calls in")
    assert f"(process {space.proc.pid})" in log[imported:].splitlines()[0]
    assert imported < log.index("features of 4 takes ready before the first GPU call")
    # the audio encoder ran once per take over the whole run, across fresh workers: later slices read
    # its outputs from disk. Training runs in bf16 on ZeroGPU, the precision the evaluations use, so
    # the 2 held-out takes (their loss after each epoch) come from the "before" evaluation's outputs
    # and the slices encode only the 4 takes they train on
    runs = [int(n) for n in re.findall(r"audio encoder run for (\d+) takes", "\n".join(result["log"]))]
    assert len(runs) == 4 and sum(runs) == 4 and runs[-1] == 0
    assert len(list(run_cache_dir(run_dir, "bf16").glob("*.pt"))) == 6  # kept on disk between calls


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


def test_two_visitors_train_at_the_same_time_each_billed_to_themselves(space):
    first = len(space.api.calls)
    for visitor in ("dave", "erin"):
        assert "started" in space.start(visitor, "together", max_steps=1)
    results = {visitor: space.wait(visitor) for visitor in ("dave", "erin")}
    assert all(r["phase"] == "done" and r["step"] == 4 for r in results.values()), results
    calls = [c for c in space.api.calls[first:] if c.answer == "approved"]
    for visitor in ("dave", "erin"):
        assert sum(c.visitor == visitor for c in calls) == 6  # evaluations and slices, billed to them
    dave = [c for c in calls if c.visitor == "dave"]
    erin = [c for c in calls if c.visitor == "erin"]
    # side by side, not one after the other: some call of one ran while a call of the other held a GPU
    assert any(a.allowed_at < b.released_at and b.allowed_at < a.released_at for a in dave for b in erin)
