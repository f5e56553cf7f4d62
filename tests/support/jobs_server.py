"""Hugging Face Jobs for the local Hub-API server: each Job's command runs as a real local process.

The routes are the ones huggingface_hub 2.4.0's job calls use (hf_api.py):
    POST /api/jobs/{namespace}                 run_job / run_uv_job (body: command, environment,
                                               secrets, flavor, timeoutSeconds, labels, dockerImage|spaceId)
    GET  /api/jobs/{namespace}/{id}            inspect_job, wait_for_job, and the log stream's stage check
    GET  /api/jobs/{namespace}/{id}/logs       fetch_job_logs (server-sent events `data: {timestamp, data}`)
    POST /api/jobs/{namespace}/{id}/cancel     cancel_job
    GET  /api/jobs/{namespace}                 list_jobs
    GET  /api/jobs/hardware                    list_jobs_hardware

The image is not pulled: the command runs in `job_cwd` (the checkout, standing in for the Space's
image) with `python` meaning this interpreter, and an environment made of `job_env` (what the image
and the platform provide: HF_ENDPOINT is this server), the Job's env and its secrets, nothing else.
Refusals as the Hub gives them: an OAuth token without the `jobs` scope (403), an account without
credits (402, `set_credits(user, 0)`), another namespace (403), an unknown flavor (400). Secrets
are stored apart and answered only as names; the request log never holds a body.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

JOB_FLAVORS = {  # name -> (pretty name, GPU memory GB, USD per hour)
    "cpu-basic": ("CPU Basic", 0, 0.01),
    "t4-small": ("Nvidia T4 - small", 16, 0.40),
    "l4x1": ("1x Nvidia L4", 24, 0.80),
    "a10g-large": ("Nvidia A10G - large", 24, 1.50),
    "l40sx1": ("1x Nvidia L40S", 48, 1.80),
    "a100-large": ("Nvidia A100 - large", 80, 2.50),
    "h200": ("Nvidia H200", 141, 5.00),
    "a10g-largex2": ("2x Nvidia A10G - large", 24, 3.00),
    "l4x4": ("4x Nvidia L4", 24, 3.80),
    "a10g-largex4": ("4x Nvidia A10G - large", 24, 5.00),
    "l40sx4": ("4x Nvidia L40S", 48, 8.30),
}
NO_CREDITS = (
    "You need a positive credit balance to run Jobs. Add credits to your account at "
    "https://huggingface.co/settings/billing"
)
NO_SCOPE = "This OAuth token does not have the 'jobs' scope required to start Jobs"


class JobsMixin:
    """Mixed into HubServer: the Jobs state, the routes' handlers and the test handles."""

    def _init_jobs(self, root: Path) -> None:
        self.jobs_root = root / "jobs"
        self.jobs_root.mkdir(parents=True, exist_ok=True)
        self.job_cwd = Path(__file__).resolve().parents[2]
        self.job_env: dict[str, str] = {}
        self._jobs: dict[str, dict] = {}
        self._job_procs: dict[str, subprocess.Popen] = {}
        self._credits: dict[str, float] = {}

    # --- test handles ---------------------------------------------------------------------------
    def set_credits(self, username: str, usd: float) -> None:
        """An account's balance: 0 or less and run_job answers 402."""
        self._credits[username] = usd

    def job(self, job_id: str) -> dict:
        """The Job as the Hub shows it: spec as received (secrets only as names), stage."""
        return json.loads(json.dumps(self._public(self._jobs[job_id])))

    def job_secrets(self, job_id: str) -> dict[str, str]:
        return dict(self._jobs[job_id]["_secrets"])

    def job_log(self, job_id: str) -> str:
        path = self.jobs_root / f"{job_id}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill_job(self, job_id: str) -> None:
        """The machine dies under the Job (no cancel): it ends as ERROR."""
        proc = self._job_procs.get(job_id)
        if proc is not None and proc.poll() is None:
            self._jobs[job_id]["_killed"] = True
            os.killpg(proc.pid, signal.SIGKILL)

    def stop_jobs(self) -> None:
        for job_id in list(self._job_procs):
            proc = self._job_procs[job_id]
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)

    # --- routes ---------------------------------------------------------------------------------
    def _job_principal(self, req, namespace: str):
        from tests.support.hub_server import HttpError

        p = req.principal
        if p is None:
            raise HttpError(401, "You must be authenticated to access this resource.")
        if p.username != namespace:
            raise HttpError(403, f"You don't have the rights to run Jobs in {namespace}")
        return p

    def _stored_job(self, req, namespace: str, job_id: str) -> dict:
        from tests.support.hub_server import HttpError

        self._job_principal(req, namespace)
        job = self._jobs.get(job_id)
        if job is None or job["owner"]["name"] != namespace:
            raise HttpError(404, "Job not found")
        return job

    @staticmethod
    def _public(job: dict) -> dict:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def jobs_hardware(self, req) -> dict:
        from tests.support.hub_server import Response

        return Response.json(
            [
                {
                    "name": n,
                    "prettyName": pretty,
                    "cpu": "8 vCPU",
                    "ram": "32 GB",
                    "ephemeralStorage": "100 GB",
                    "accelerator": {
                        "type": "gpu",
                        "model": pretty,
                        "quantity": pretty.split("x ", 1)[0] if pretty[0].isdigit() else "1",
                        "vram": f"{gb} GB",
                        "manufacturer": "Nvidia",
                    }
                    if gb
                    else None,
                    "unitCostMicroUSD": round(usd / 60 * 1e6),
                    "unitCostUSD": usd / 60,
                    "unitLabel": "minute",
                }
                for n, (pretty, gb, usd) in JOB_FLAVORS.items()
            ]
        )

    def jobs_create(self, req, namespace: str):
        from tests.support.hub_server import HttpError, Response

        p = self._job_principal(req, namespace)
        if p.kind == "oauth" and "jobs" not in p.scopes:
            raise HttpError(403, NO_SCOPE)
        if p.role != "write":
            raise HttpError(403, "This token is read-only: it cannot start Jobs.")
        if self._credits.get(p.username, 1.0) <= 0:
            raise HttpError(402, NO_CREDITS)
        spec = req.json()
        flavor = spec.get("flavor", "cpu-basic")
        if flavor not in JOB_FLAVORS:
            raise HttpError(400, f"Invalid flavor: {flavor}")
        command = spec.get("command") or []
        if not command:
            raise HttpError(400, "A Job needs a command")
        job_id = secrets.token_hex(12)
        now = time.time()
        from tests.support.hub_server import _iso

        job = {
            "id": job_id,
            "createdAt": _iso(now),
            "dockerImage": spec.get("dockerImage"),
            "spaceId": spec.get("spaceId"),
            "command": command,
            "arguments": spec.get("arguments", []),
            "environment": dict(spec.get("environment") or {}),
            "secrets": {k: "(encrypted)" for k in spec.get("secrets") or {}},
            "flavor": flavor,
            "labels": spec.get("labels"),
            "status": {"stage": "RUNNING", "message": None},
            "owner": {"id": p.username, "name": p.username, "type": "user"},
            "timeoutSeconds": spec.get("timeoutSeconds"),
            "_secrets": dict(spec.get("secrets") or {}),
        }
        with self._lock:
            self._jobs[job_id] = job
        self._start_job(job)
        return Response.json(self._public(job))

    def jobs_inspect(self, req, namespace: str, job_id: str):
        from tests.support.hub_server import Response

        return Response.json(self._public(self._stored_job(req, namespace, job_id)))

    def jobs_list(self, req, namespace: str):
        from tests.support.hub_server import Response

        self._job_principal(req, namespace)
        return Response.json(
            [self._public(j) for j in self._jobs.values() if j["owner"]["name"] == namespace]
        )

    def jobs_cancel(self, req, namespace: str, job_id: str):
        from tests.support.hub_server import Response

        job = self._stored_job(req, namespace, job_id)
        proc = self._job_procs.get(job_id)
        if job["status"]["stage"] == "RUNNING":
            job["_cancelled"] = True
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        return Response(200, b"", {})

    def jobs_logs(self, req, namespace: str, job_id: str):
        from tests.support.hub_server import Response, _iso

        self._stored_job(req, namespace, job_id)
        lines = self.job_log(job_id).splitlines()
        tail = req.arg("tail")
        if tail:
            lines = lines[-int(tail) :]
        t = _iso(time.time() - 1)
        events = [{"timestamp": t, "data": "===== Job started ====="}] + [
            {"timestamp": t, "data": x} for x in lines
        ]
        body = "".join(f"data: {json.dumps(e)}\n\n" for e in events).encode()
        return Response(200, body, {"Content-Type": "text/event-stream"})

    # --- the process ----------------------------------------------------------------------------
    def _start_job(self, job: dict) -> None:
        command = [sys.executable if i == 0 and c == "python" else c for i, c in enumerate(job["command"])]
        home = self.jobs_root / job["id"]  # a fresh machine: nothing cached, nothing inherited
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "HF_ENDPOINT": self.url,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HOME": str(home / "hf-home"),
            "VOXSPACE_DATA_DIR": str(home / "data"),
            "TRACKIO_DIR": str(home / "trackio"),
            "NO_PROXY": "127.0.0.1,localhost",
        }
        home.mkdir(parents=True, exist_ok=True)
        env = {**base, **self.job_env, **job["environment"], **job["_secrets"]}
        log_file = open(self.jobs_root / f"{job['id']}.log", "wb")  # noqa: SIM115 - closed by the waiter
        proc = subprocess.Popen(
            command,
            cwd=self.job_cwd,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._job_procs[job["id"]] = proc

        def wait() -> None:
            timeout = job.get("timeoutSeconds")
            try:
                code = proc.wait(timeout=timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                code, timed_out = proc.wait(), True
            log_file.close()
            if job.get("_cancelled"):
                job["status"] = {"stage": "CANCELED", "message": None}
            elif timed_out:
                job["status"] = {
                    "stage": "ERROR",
                    "message": f"Job timeout: it ran for more than {timeout} s",
                }
            elif code == 0:
                job["status"] = {"stage": "COMPLETED", "message": None}
            else:
                job["status"] = {"stage": "ERROR", "message": f"Job failed with exit code: {code}"}
            job["_exit_code"] = code

        threading.Thread(target=wait, name=f"job-{job['id']}", daemon=True).start()


_NS = r"(?P<namespace>[^/]+)"
_ID = r"(?P<job_id>[0-9a-f]+)"
JOB_ROUTES = [
    ("GET", r"/api/jobs/hardware", "jobs_hardware", False),
    ("POST", rf"/api/jobs/{_NS}", "jobs_create", True),
    ("GET", rf"/api/jobs/{_NS}", "jobs_list", False),
    ("GET", rf"/api/jobs/{_NS}/{_ID}", "jobs_inspect", False),
    ("GET", rf"/api/jobs/{_NS}/{_ID}/logs", "jobs_logs", False),
    ("POST", rf"/api/jobs/{_NS}/{_ID}/cancel", "jobs_cancel", True),
]
JOB_ROUTES = [(m, re.compile(p), name, write) for m, p, name, write in JOB_ROUTES]
