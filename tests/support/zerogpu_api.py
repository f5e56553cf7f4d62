"""A local ZeroGPU device API: the server the real `spaces` package talks to in ZeroGPU mode.

    api = DeviceAPI(quota_s={"alice": 300}).start()
    env["SPACES_ZERO_GPU"], env["SPACES_ZERO_DEVICE_API_URL"] = "true", api.url
    ...
    [c.visitor for c in api.calls]           # whose quota each schedule request was charged to
    api.refuse_next("no-gpu")                # the next /schedule answers "No GPU was available"

It speaks the endpoints of spaces 0.51.3 (spaces/zero/api.py): POST /startup-report, POST /schedule
(query: cgroupPath, taskId, token, durationSeconds, gpuSize), POST /allow, POST /release,
GET /queue-size. Only the scheduler and the hardware are fake: the `spaces` client, its pack at
launch and its forked worker per call all run for real against it. Refusals are the real wire
answers, so the real client raises its real gr.Error titles and texts:
- visitor quota: 429 + {"left", "wait"} (wait > 0) when the duration asked exceeds what is left;
- no visitor token: 429 (the Space's shared IP quota, "Space app has reached its GPU limit");
- illegal duration: 429 with wait < 0 when the duration exceeds `max_duration_s`;
- runs limit: 429 with wait == 0; no GPU: 503; queue timeout: an SSE stream that ends "failed".
A visitor is named by the X-IP-Token the Space forwards (`visitor_token(name)` makes one, a JWT
shape whose payload says the name); GPU seconds are charged between /allow and /release.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

REFUSALS = ("quota", "space-limit", "illegal-duration", "runs-limit", "no-gpu", "queue-timeout")


def zerogpu_env(api: DeviceAPI, offload_dir: Path) -> dict[str, str]:
    """What makes a Space process run in ZeroGPU mode against `api`, with the CPU worker seam of
    tests/support/zerogpu_seam.py installed before app.py runs (zerogpu_site/sitecustomize.py)."""
    root = Path(__file__).resolve().parents[2]
    return {
        "SPACES_ZERO_GPU": "true",
        "SPACES_ZERO_DEVICE_API_URL": api.url,
        "ZEROGPU_OFFLOAD_DIR": str(offload_dir),
        "PYTHONPATH": os.pathsep.join([str(root / "tests/support/zerogpu_site"), str(root)]),
    }


def visitor_token(name: str, *, auth: str = "regular") -> str:
    """An X-IP-Token as the Hub's proxy sends it (header.payload.signature); spaces reads the payload."""

    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    return f"{b64({'alg': 'none'})}.{b64({'user': name, 'auth': auth})}.sig"


def visitor_of(token: str | None) -> str | None:
    if not token:
        return None
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=="))["user"]


@dataclass
class Call:
    """One /schedule request and what became of it."""

    task_id: str
    token: str | None
    visitor: str | None
    duration_s: int | None
    gpu_size: str | None
    answer: str  # "approved" or one of REFUSALS
    allow_token: str | None = None
    allowed_at: float | None = None
    released_at: float | None = None
    failed: bool = False
    pid: int | None = None  # the worker process /allow named

    @property
    def seconds(self) -> float:
        if self.allowed_at is None or self.released_at is None:
            return 0.0
        return self.released_at - self.allowed_at


@dataclass
class DeviceAPI:
    quota_s: dict[str, float] = field(default_factory=dict)  # per visitor; others get default_quota_s
    default_quota_s: float = 3600.0
    max_duration_s: int = 300  # the per-call maximum ("illegal duration" above it)
    reset_wait_s: int = 5 * 3600 + 32 * 60 + 10  # "Try again in 5:32:10"
    gpus: int = 4  # calls that may hold a GPU at the same time
    reuse_workers: bool = False  # "idle": spaces may reuse a worker; False forks a fresh one per call
    calls: list[Call] = field(default_factory=list)
    startup_reports: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._forced: dict[int, str] = {}  # index of a future call -> its refusal
        self._used: dict[str | None, float] = {}
        self._busy: set[int] = set()
        self._server: ThreadingHTTPServer | None = None

    # --- what tests call -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> DeviceAPI:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                api._handle(self, "POST")

            def do_GET(self) -> None:
                api._handle(self, "GET")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="zerogpu-api", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def refuse_next(self, kind: str, n: int = 1) -> None:
        self.refuse_call(1, kind, n)

    def refuse_call(self, nth: int, kind: str, n: int = 1) -> None:
        """Refuse `n` schedule requests with `kind`, starting at the nth from now (1: the next)."""
        assert kind in REFUSALS, kind
        with self._lock:
            first = len(self.calls) + nth - 1
            for i in range(first, first + n):
                self._forced[i] = kind

    def set_quota(self, visitor: str, seconds: float) -> None:
        """Quota left today for `visitor` from now on (what a reset or a PRO upgrade does)."""
        with self._lock:
            self.quota_s[visitor] = seconds
            self._used[visitor] = 0.0

    def seconds_used(self, visitor: str | None) -> float:
        with self._lock:
            return self._used.get(visitor, 0.0)

    def approved(self) -> list[Call]:
        return [c for c in self.calls if c.answer == "approved"]

    # --- the wire ----------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(h.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if method == "POST" and url.path == "/startup-report":
            with self._lock:
                self.startup_reports += 1
            return self._send(h, 200, {})
        if method == "GET" and url.path == "/queue-size":
            return self._send(h, 200, 0)
        if method == "POST" and url.path == "/schedule":
            return self._schedule(h, q)
        if method == "POST" and url.path == "/allow":
            call = self._by_allow(q.get("allowToken"))
            if call is None:
                return self._send(h, 404, {"detail": "unknown allowToken"})
            call.allowed_at, call.pid = time.monotonic(), int(q["pid"])
            return self._send(h, 200, {})
        if method == "POST" and url.path == "/release":
            call = self._by_allow(q.get("allowToken"))
            if call is None or call.released_at is not None:
                return self._send(h, 404, {"detail": "unknown allowToken"})
            with self._lock:
                call.released_at = time.monotonic()
                call.failed = q.get("fail", "false").lower() == "true"
                self._used[call.visitor] = self._used.get(call.visitor, 0.0) + call.seconds
                self._busy.discard(self._index(call))
            return self._send(h, 200, {})
        return self._send(h, 404, {"detail": "not found"})

    def _schedule(self, h: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
        token = q.get("token")
        visitor = visitor_of(token)
        duration = int(q["durationSeconds"]) if "durationSeconds" in q else None
        with self._lock:
            answer = self._forced.pop(len(self.calls), None) or self._decide(token, visitor, duration)
            call = Call(q.get("taskId", ""), token, visitor, duration, q.get("gpuSize"), answer)
            self.calls.append(call)
            if answer == "approved":
                index = min(set(range(self.gpus)) - self._busy, default=None)
                if index is None:
                    call.answer = answer = "no-gpu"
                else:
                    self._busy.add(index)
                    call.allow_token = f"{index}-{uuid.uuid4().hex}"
        auth = {"X-Authenticated": "regular"} if token else {}
        if answer == "approved":
            index = self._index(call)
            body = {
                "idle": self.reuse_workers,
                "nvidiaIndex": index,
                "nvidiaUUID": f"GPU-fake-{index}",
                "allowToken": call.allow_token,
            }
            return self._send(h, 200, body, auth)
        if answer == "no-gpu":
            return self._send(h, 503, {"detail": "No GPU available"}, auth)
        if answer == "queue-timeout":
            return self._send_raw(h, 200, b"event: failed\n\n", "text/event-stream", auth)
        left = round(self._left(visitor))
        wait = {
            "quota": self.reset_wait_s,
            "space-limit": self.reset_wait_s,
            "illegal-duration": -1,
            "runs-limit": 0,
        }[answer]
        approve = {"illegal-duration": "illegal-duration", "runs-limit": "runs-exceeded"}.get(
            answer, "quota-exceeded"
        )
        if answer == "space-limit":
            left = 0
        return self._send(h, 429, {"left": left, "wait": wait}, {**auth, "X-Approve-Result": approve})

    def _decide(self, token: str | None, visitor: str | None, duration: int | None) -> str:
        asked = duration or 60
        if asked > self.max_duration_s:
            return "illegal-duration"
        if token is None:
            return "space-limit"  # no visitor: the Space's shared quota, used up on a busy Space
        if asked > self._left(visitor):
            return "quota"
        return "approved"

    def _left(self, visitor: str | None) -> float:
        return self.quota_s.get(visitor or "", self.default_quota_s) - self._used.get(visitor, 0.0)

    def _by_allow(self, allow_token: str | None) -> Call | None:
        with self._lock:
            return next((c for c in self.calls if c.allow_token and c.allow_token == allow_token), None)

    @staticmethod
    def _index(call: Call) -> int:
        return int(str(call.allow_token).split("-")[0])

    def _send(
        self, h: BaseHTTPRequestHandler, status: int, body: object, headers: dict | None = None
    ) -> None:
        self._send_raw(h, status, json.dumps(body).encode(), "application/json", headers)

    @staticmethod
    def _send_raw(
        h: BaseHTTPRequestHandler, status: int, data: bytes, ctype: str, headers: dict | None
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
