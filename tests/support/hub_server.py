"""A local Hugging Face Hub-API server for tests: real storage, real users, real refusals.

    hub = HubServer(tmp / "hub", users={"tok-alice": "alice", "tok-bob": "bob"}).start()
    os.environ["HF_ENDPOINT"] = hub.url   # before huggingface_hub is imported
    ...
    hub.read_file("alice/voxspace-recordings", "README.md", repo_type="dataset")
    hub.stop()

The real `huggingface_hub`, `datasets.load_dataset` and `from_pretrained(repo_id)` talk to it over
HTTP (with HF_HUB_DISABLE_XET=1, LFS goes through the basic batch API). It is deliberately as strict
as the Hub where that catches bugs (see /work/shared/FACTS.md): private repos answer 401 to
anonymous callers and 404 to other users, a bad token is 401 even on public files, a stale
parentCommit is 412, README YAML is validated, *.wav/*.safetensors/... must go through LFS and a
binary regular file over 1 MiB is refused, and a repo takes at most 128 commits per hour (then 429
with Retry-After, the Hub's own text; `commit_clock` compresses time). Every request is logged to
`requests.jsonl` with the acting user and never the token. Tests can make commits (or any route)
fail, refuse or pause all writes, and read repos, Space variables/secrets/hardware directly.

Also an OpenID provider (/.well-known/openid-configuration, /oauth/authorize|token|userinfo) so
gradio's real OAuth flow can sign a browser in as any configured user (query `?user=` on
/oauth/authorize, or cookie `hub_user`, or `HubServer.oauth_default_user`).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlencode, urlparse

import yaml

from tests.support.jobs_server import JOB_ROUTES, JobsMixin

# The Hub's default .gitattributes (models and datasets merged): these always travel through LFS.
LFS_PATTERNS = (  # noqa: SIM905 - one line per group reads better than a 50-item list
    "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy "
    "*.npz *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* "
    "*.tar.* *.tar *.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents* *.lz4 *.mds *.mp3 *.ogg *.wav "
    "*.flac *.opus *.m4a *.webm *.jpg *.jpeg *.png *.webp *.gif *.mp4"
).split()
DEFAULT_GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS)
MAX_REGULAR_BINARY = 1024 * 1024  # the Hub refuses binary files over 1 MiB sent as regular files
MAX_REGULAR = 10 * 1024 * 1024  # and any regular file over 10 MB
KNOWN_LICENSES = {
    "apache-2.0",
    "mit",
    "openrail++",
    "bigscience-openrail-m",
    "creativeml-openrail-m",
    "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m",
    "afl-3.0",
    "artistic-2.0",
    "bsl-1.0",
    "bsd",
    "bsd-2-clause",
    "bsd-3-clause",
    "bsd-3-clause-clear",
    "c-uda",
    "cc",
    "cc0-1.0",
    "cc-by-2.0",
    "cc-by-2.5",
    "cc-by-3.0",
    "cc-by-4.0",
    "cc-by-sa-3.0",
    "cc-by-sa-4.0",
    "cc-by-nc-2.0",
    "cc-by-nc-3.0",
    "cc-by-nc-4.0",
    "cc-by-nd-4.0",
    "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0",
    "cc-by-nc-sa-2.0",
    "cc-by-nc-sa-3.0",
    "cc-by-nc-sa-4.0",
    "cdla-sharing-1.0",
    "cdla-permissive-1.0",
    "cdla-permissive-2.0",
    "wtfpl",
    "ecl-2.0",
    "epl-1.0",
    "epl-2.0",
    "etalab-2.0",
    "eupl-1.1",
    "eupl-1.2",
    "agpl-3.0",
    "gfdl",
    "gpl",
    "gpl-2.0",
    "gpl-3.0",
    "lgpl",
    "lgpl-2.1",
    "lgpl-3.0",
    "isc",
    "h-research",
    "intel-research",
    "lppl-1.3c",
    "ms-pl",
    "apple-ascl",
    "apple-amlr",
    "mpl-2.0",
    "odc-by",
    "odbl",
    "openmdw-1.0",
    "openrail",
    "osl-3.0",
    "postgresql",
    "ofl-1.1",
    "ncsa",
    "unlicense",
    "zlib",
    "pddl",
    "lgpl-lr",
    "deepfloyd-if-license",
    "fair-noncommercial-research-license",
    "llama2",
    "llama3",
    "llama3.1",
    "llama3.2",
    "llama3.3",
    "llama4",
    "gemma",
    "unknown",
    "other",
}
COMMITS_PER_HOUR = 128  # the Hub's limit per repo ("... repository commits (128 per hour)")
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_-])?$")
SHA_RE = re.compile(r"^[0-9a-f]{40}$")


def git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


@dataclass
class Principal:
    """Who a token acts as. `kind` is access_token (a user token) or oauth (issued by /oauth/token)."""

    username: str
    role: str = "write"  # read | write
    kind: str = "access_token"
    scopes: tuple[str, ...] = ()


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    principal: Principal | None
    cookies: dict[str, str] = field(default_factory=dict)
    repo: str | None = None  # set by handlers whose repo is in the body, for the log

    def json(self) -> dict:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as e:
            raise HttpError(400, f"Invalid JSON body: {e}") from e

    def arg(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, [default])[0]


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, obj, status: int = 200, headers: dict | None = None) -> Response:
        return cls(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})


class _Repos:
    """Repositories on disk: objects/<sha256> (content-addressed blobs), repos/<type>/<id>.json
    (visibility, commit history with a full file manifest per commit, Space state) and
    checkouts/<type>/<id>/ (the files at main, for tests to read as a folder)."""

    def __init__(self, root: Path):
        self.root = root
        self.objects = root / "objects"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.repos: dict[tuple[str, str], dict] = {}
        for meta in (root / "repos").glob("*/*/*.json"):
            state = json.loads(meta.read_text())
            self.repos[(state["type"], state["id"])] = state

    def _meta_path(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / repo_type / f"{repo_id}.json"

    def checkout_dir(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "checkouts" / repo_type / repo_id

    def save(self, state: dict) -> None:
        _atomic_write(self._meta_path(state["type"], state["id"]), json.dumps(state).encode())

    def put_object(self, content: bytes) -> str:
        sha = hashlib.sha256(content).hexdigest()
        path = self.objects / sha
        if not path.exists():
            _atomic_write(path, content)
        return sha

    def get_object(self, sha256: str) -> bytes:
        return (self.objects / sha256).read_bytes()

    def has_object(self, sha256: str, size: int | None = None) -> bool:
        path = self.objects / sha256
        return path.exists() and (size is None or path.stat().st_size == size)

    @staticmethod
    def head(state: dict) -> dict:
        return state["commits"][-1]

    def commit_at(self, state: dict, revision: str) -> dict:
        revision = unquote(revision)
        if revision in ("main", "refs/heads/main", "HEAD"):
            return self.head(state)
        if SHA_RE.match(revision):
            for c in state["commits"]:
                if c["id"] == revision:
                    return c
        raise HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def delete(self, state: dict) -> None:
        import shutil

        self.repos.pop((state["type"], state["id"]), None)
        self._meta_path(state["type"], state["id"]).unlink(missing_ok=True)
        shutil.rmtree(self.checkout_dir(state["type"], state["id"]), ignore_errors=True)

    def sync_checkout(self, state: dict, before: dict, after: dict) -> None:
        folder = self.checkout_dir(state["type"], state["id"])
        for path in set(before) - set(after):
            (folder / path).unlink(missing_ok=True)
        for path, entry in after.items():
            if before.get(path) != entry:
                _atomic_write(folder / path, self.get_object(entry["sha256"]))


class HubServer(JobsMixin):
    """The server and the handles tests use to inspect and perturb it. Thread-safe."""

    def __init__(
        self,
        root_dir: str | os.PathLike,
        users: dict[str, str] | None = None,
        *,
        read_only_tokens: set[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        space_build_polls: int = 2,
        commits_per_hour: int | None = COMMITS_PER_HOUR,
        commit_clock: Callable[[], float] = time.monotonic,
    ):
        self.root = Path(root_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.host, self.port = host, port
        self.log_path = self.root / "requests.jsonl"
        self._lock = threading.RLock()
        self._tokens: dict[str, Principal] = {}
        for token, name in (users or {}).items():
            self.add_user(token, name, role="read" if token in (read_only_tokens or set()) else "write")
        self._repos = _Repos(self.root)
        # upload ticket -> (sha256, size, who asked, repo): a PUT carries no token, only its ticket
        self._lfs_tickets: dict[str, tuple[str, int, Principal, str]] = {}
        self._fail_commits: list[tuple[int, bool]] = []  # (status, after_apply) per next commit POST
        self._fail_routes: dict[str, list[tuple[int, dict]]] = {}  # route name -> (status, headers)
        # The Hub's per-repo commit rate limit: times (commit_clock) of each repo's recent commits.
        self.commits_per_hour = commits_per_hour
        self.commit_clock = commit_clock
        self._commit_times: dict[tuple[str, str], list[float]] = {}
        self._write_mode = "open"  # open | refuse | pause
        self._pause_only: str | None = None  # a route name: pause only that one
        self._waiting = 0
        self._writes_open = threading.Event()
        self._writes_open.set()
        self._hardware_refusals: list[tuple[str, set[str] | None, int, str]] = []
        self.space_build_polls = space_build_polls
        self.oauth_client_id, self.oauth_client_secret = "voxspace-test-client", "voxspace-test-secret"
        self.oauth_default_user: str | None = None
        self._oauth_codes: dict[str, dict] = {}
        self._jwk = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._init_jobs(self.root)  # Hugging Face Jobs as local processes (tests/support/jobs_server.py)

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> str:
        server = self

        class Handler(_Handler):
            hub = server

        self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        # The OpenID signing key takes seconds to make on a loaded machine: make it now, not inside
        # the first sign-in's token request (whose client gives up after 5 s).
        threading.Thread(target=self._signing_key, name="hub-signing-key", daemon=True).start()
        return self.url

    def stop(self) -> None:
        self.stop_jobs()
        self._writes_open.set()
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- users ----------------------------------------------------------------------------------
    def add_user(
        self,
        token: str,
        username: str,
        *,
        role: str = "write",
        kind: str = "access_token",
        scopes: tuple[str, ...] = (),
    ) -> None:
        with self._lock:
            self._tokens[token] = Principal(username, role, kind, scopes)

    def principal(self, token: str) -> Principal | None:
        return self._tokens.get(token)

    # --- perturbations --------------------------------------------------------------------------
    def fail_next_commits(self, n: int, *, status: int = 500, after_apply: bool = False) -> None:
        """The next `n` commit POSTs answer `status`; with after_apply the commit lands first
        (a response lost on the way back)."""
        with self._lock:
            self._fail_commits.extend([(status, after_apply)] * n)

    def fail_next(
        self, route: str, n: int = 1, *, status: int = 503, retry_after: float | None = None
    ) -> None:
        """The next `n` requests to `route` (a handler name: "whoami", "repo_info", "preupload"...)
        answer `status`, with a Retry-After header when given."""
        headers = {"Retry-After": str(round(retry_after))} if retry_after is not None else {}
        with self._lock:
            self._fail_routes.setdefault(route, []).extend([(status, headers)] * n)

    def clear_failures(self) -> None:
        """Forget the failures fail_next and fail_next_commits queued that no request has taken."""
        with self._lock:
            self._fail_routes.clear()
            self._fail_commits.clear()

    def commits_in_last_hour(self, repo_id: str, repo_type: str = "model") -> int:
        """Commits the rate limit counts for this repo right now (commit_clock's hour)."""
        with self._lock:
            now = self.commit_clock()
            return sum(t > now - 3600 for t in self._commit_times.get((repo_type, repo_id), []))

    def refuse_writes(self) -> None:
        """Every write answers 503 until allow_writes()."""
        self._write_mode = "refuse"
        self._writes_open.set()

    def pause_writes(self, *, commits_only: bool = False) -> None:
        """Every write (or only every commit POST) blocks until allow_writes(): the client sees a
        hanging Hub. A paused commit has been received whole and lands when released, even if
        its client is gone by then (a commit whose answer never arrived)."""
        self._pause_only = "commit" if commits_only else None
        self._write_mode = "pause"
        self._writes_open.clear()

    def waiting_writes(self) -> int:
        """How many write requests are blocked by pause_writes() right now."""
        return self._waiting

    def allow_writes(self) -> None:
        self._write_mode = "open"
        self._writes_open.set()

    def refuse_hardware(
        self, flavor: str, *, users: set[str] | None = None, status: int = 403, message: str | None = None
    ) -> None:
        """Make POST /api/spaces/{id}/hardware with `flavor` fail for `users` (None: everyone)."""
        message = message or (
            f"You can't request '{flavor}' hardware for this Space: your account has "
            "reached its limit of ZeroGPU Spaces. Upgrade to PRO to host more."
        )
        self._hardware_refusals.append((flavor, users, status, message))

    def set_space_outcome(
        self, space_id: str, stage: str = "RUNNING", *, polls: int | None = None, message: str | None = None
    ) -> None:
        """After the next build (`polls` runtime polls), the Space reaches `stage`
        (RUNNING, RUNTIME_ERROR, BUILD_ERROR...)."""
        with self._lock:
            state = self._repo("space", space_id)
            sp = state["space"]
            sp.update(outcome=stage, outcome_message=message)
            if polls is not None:
                sp.update(stage="BUILDING", polls_left=polls)
            self._repos.save(state)

    def delete_repo(self, repo_id: str, repo_type: str = "model") -> bool:
        """Remove a repo outright (test set-up: a test that must use a fixed name starts clean)."""
        with self._lock:
            state = self._repos.repos.get((repo_type, repo_id))
            if state is not None:
                self._repos.delete(state)
            return state is not None

    def gate(self, repo_id: str, repo_type: str = "model") -> None:
        """Make a repo gated, as Mistral's are: its metadata stays public, its files answer 403
        GatedRepo to everyone but its owner (nobody here has accepted its terms)."""
        with self._lock:
            state = self._repo(repo_type, repo_id)
            state["gated"] = "manual"
            self._repos.save(state)

    # --- inspection -----------------------------------------------------------------------------
    def _repo(self, repo_type: str, repo_id: str) -> dict:
        state = self._repos.repos.get((repo_type, repo_id))
        if state is None:
            raise KeyError(f"no {repo_type} repo {repo_id}")
        return state

    def repo_exists(self, repo_id: str, repo_type: str = "model") -> bool:
        return (repo_type, repo_id) in self._repos.repos

    def is_private(self, repo_id: str, repo_type: str = "model") -> bool:
        return self._repo(repo_type, repo_id)["private"]

    def list_files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> list[str]:
        with self._lock:
            return sorted(self._repos.commit_at(self._repo(repo_type, repo_id), revision)["files"])

    def read_file(
        self, repo_id: str, path: str, *, repo_type: str = "model", revision: str = "main"
    ) -> bytes:
        with self._lock:
            entry = self._repos.commit_at(self._repo(repo_type, repo_id), revision)["files"][path]
        return self._repos.get_object(entry["sha256"])

    def file_entry(self, repo_id: str, path: str, *, repo_type: str = "model") -> dict:
        """{'sha256', 'size', 'lfs': bool, 'oid'} of a file at main."""
        with self._lock:
            return dict(self._repos.head(self._repo(repo_type, repo_id))["files"][path])

    def checkout(self, repo_id: str, repo_type: str = "model") -> Path:
        """A folder holding the repo's files at main (kept in sync on every commit)."""
        self._repo(repo_type, repo_id)
        return self._repos.checkout_dir(repo_type, repo_id)

    def commits(self, repo_id: str, repo_type: str = "model") -> list[dict]:
        """Oldest first: {'id', 'parent', 'title', 'author', 'date', 'files'}."""
        with self._lock:
            return json.loads(json.dumps(self._repo(repo_type, repo_id)["commits"]))

    def space_variables(self, space_id: str) -> dict[str, str]:
        return {k: v["value"] for k, v in self._repo("space", space_id)["space"]["variables"].items()}

    def space_secrets(self, space_id: str) -> dict[str, str]:
        return {k: v["value"] for k, v in self._repo("space", space_id)["space"]["secrets"].items()}

    def space_hardware_requests(self, space_id: str) -> list[str]:
        return list(self._repo("space", space_id)["space"]["hardware_requests"])

    def space_state(self, space_id: str) -> dict:
        return json.loads(json.dumps(self._repo("space", space_id)["space"]))

    def requests(self) -> list[dict]:
        """The request log: [{'t', 'method', 'path', 'status', 'user', 'repo'}] (never a token)."""
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]

    def calls(self, path: str) -> int:
        """How many requests (any status) went to `path`, e.g. "/api/whoami-v2"."""
        return sum(r["path"] == path for r in self.requests())

    def writes_by(self, repo_id: str) -> set[str | None]:
        """Users who made successful write requests touching `repo_id`."""
        return {
            r["user"]
            for r in self.requests()
            if r.get("repo") == repo_id and r.get("write") and r["status"] < 400
        }

    # --- request handling -----------------------------------------------------------------------
    def _log(self, req: Request, status: int, repo: str | None, write: bool) -> None:
        rec = {
            "t": round(time.time(), 3),
            "method": req.method,
            "path": req.path,
            "status": status,
            "user": req.principal.username if req.principal else None,
            "repo": repo,
            "write": write,
        }
        line = json.dumps(rec) + "\n"
        with self._lock, open(self.log_path, "a", encoding="utf-8") as f:
            f.write(line)

    def handle(self, req: Request) -> tuple[Response, str | None, bool]:
        for method, pattern, name, write in _ROUTES:
            if method != req.method and not (method == "GET" and req.method == "HEAD"):
                continue
            m = pattern.fullmatch(req.path)
            if not m:
                continue
            groups = {k: unquote(v) if v is not None else None for k, v in m.groupdict().items()}
            try:
                with self._lock:
                    failure = self._fail_routes.get(name, []) and self._fail_routes[name].pop(0)
                if failure:
                    raise HttpError(failure[0], f"Injected by the test server ({name})", extra=failure[1])
                if write:
                    self._gate_write(name)
                resp = getattr(self, name)(req, **groups)
                return resp, groups.get("repo") or req.repo, write
            except HttpError as e:
                return _error(e), groups.get("repo") or req.repo, write
        return _error(HttpError(404, f"Not found: {req.method} {req.path}")), None, False

    def _gate_write(self, route: str) -> None:
        if self._write_mode == "pause" and self._pause_only in (None, route):
            with self._lock:
                self._waiting += 1
            try:
                self._writes_open.wait(timeout=600)
            finally:
                with self._lock:
                    self._waiting -= 1
        if self._write_mode == "refuse":
            raise HttpError(503, "Service Unavailable (writes refused by the test server)")

    # --- permission checks ----------------------------------------------------------------------
    def _can_read(self, req: Request, repo_type: str, repo_id: str) -> dict:
        state = self._repos.repos.get((repo_type, repo_id))
        visible = state is not None and (
            not state["private"]
            or (req.principal is not None and req.principal.username == repo_id.split("/")[0])
        )
        if not visible:
            if req.principal is None:
                raise HttpError(401, "Repository not found", "RepoNotFound")
            raise HttpError(404, "Repository not found", "RepoNotFound")
        return state

    def _can_write(self, req: Request, repo_type: str, repo_id: str) -> dict:
        if req.principal is None:
            raise HttpError(401, "You must be authenticated to access this resource.")
        state = self._can_read(req, repo_type, repo_id)
        if req.principal.username != repo_id.split("/")[0]:
            raise HttpError(403, f"You don't have the rights to write to {repo_type} {repo_id}")
        if req.principal.role != "write":
            raise HttpError(403, "This token is read-only: you don't have write permission on this repo.")
        return state

    # --- account --------------------------------------------------------------------------------
    def whoami(self, req: Request) -> Response:
        p = req.principal
        if p is None:
            raise HttpError(401, "Invalid username or password.")
        auth = (
            {"type": "oauth", "expiresAt": _iso(time.time() + 3600), "scopes": list(p.scopes)}
            if p.kind == "oauth"
            else {"type": "access_token", "accessToken": {"displayName": "test", "role": p.role}}
        )
        return Response.json(
            {
                "type": "user",
                "id": hashlib.sha1(p.username.encode()).hexdigest()[:24],
                "name": p.username,
                "fullname": p.username.title(),
                "email": f"{p.username}@example.com",
                "emailVerified": True,
                "avatarUrl": f"/avatars/{p.username}.svg",
                "isPro": False,
                "orgs": [],
                "auth": auth,
            }
        )

    def agent_harnesses(self, req: Request) -> Response:
        return Response.json({"standardEnvVars": [], "harnesses": {}})

    def validate_yaml(self, req: Request) -> Response:
        errors = _yaml_errors(req.json().get("content", ""))
        if errors:
            return Response.json({"errors": [{"message": e} for e in errors], "warnings": []}, 400)
        return Response.json({"errors": [], "warnings": []})

    # --- repos ----------------------------------------------------------------------------------
    def create_repo(self, req: Request) -> Response:
        if req.principal is None:
            raise HttpError(401, "You must be authenticated to access this resource.")
        j = req.json()
        repo_type = j.get("type") or "model"
        if repo_type not in URL_PREFIX:
            raise HttpError(400, f"Invalid repo type: {repo_type}")
        name, ns = j.get("name") or "", j.get("organization") or req.principal.username
        req.repo = f"{ns}/{name}"
        if not NAME_RE.match(name) or "--" in name or ".." in name or name.endswith(".git"):
            raise HttpError(
                400,
                "Invalid repo name: use letters, digits, '-', '_' or '.', up to 96 characters, "
                "not starting or ending with '-' or '.', without '--' or '..'.",
            )
        if ns != req.principal.username:
            raise HttpError(
                403, f'You don\'t have the rights to create a {repo_type} under the namespace "{ns}"'
            )
        if req.principal.role != "write":
            raise HttpError(403, "This token is read-only: you can't create repositories.")
        if repo_type == "space" and j.get("sdk") not in ("gradio", "docker", "static", "streamlit"):
            raise HttpError(400, "Invalid Space SDK")
        repo_id = f"{ns}/{name}"
        url = f"{self.url}/{URL_PREFIX[repo_type]}{repo_id}"
        private = j["visibility"] != "public" if "visibility" in j else bool(j.get("private", False))
        with self._lock:
            if (repo_type, repo_id) in self._repos.repos:
                raise HttpError(409, f"You already created this {repo_type} repo", extra={"url": url})
            now = time.time()
            files = {".gitattributes": self._file_entry(DEFAULT_GITATTRIBUTES.encode(), lfs=False)}
            state = {
                "type": repo_type,
                "id": repo_id,
                "private": private,
                "created_at": now,
                "sdk": j.get("sdk"),
                "commits": [
                    {
                        "id": secrets.token_hex(20),
                        "parent": None,
                        "title": "initial commit",
                        "message": "",
                        "author": req.principal.username,
                        "date": now,
                        "files": files,
                    }
                ],
            }
            if repo_type == "space":
                state["space"] = {
                    "variables": {},
                    "secrets": {},
                    "hardware_requests": [],
                    "hardware": "cpu-basic",
                    "requested": None,
                    "stage": "BUILDING",
                    "polls_left": self.space_build_polls,
                    "outcome": "RUNNING",
                    "outcome_message": None,
                    "sleep_time": None,
                }
                if j.get("hardware"):
                    self._request_hardware(state, req.principal.username, j["hardware"])
                for kind in ("variables", "secrets"):
                    for item in j.get(kind) or []:
                        state["space"][kind][item["key"]] = {
                            "value": item["value"],
                            "updatedAt": _iso(now),
                            "description": item.get("description"),
                        }
            self._repos.repos[(repo_type, repo_id)] = state
            self._repos.save(state)
            self._repos.sync_checkout(state, {}, files)
        return Response.json({"url": url, "name": repo_id, "id": secrets.token_hex(12)})

    def delete_repo_route(self, req: Request) -> Response:
        j = req.json()
        repo_type = j.get("type") or "model"
        repo_id = (
            f"{j.get('organization') or (req.principal.username if req.principal else '')}/{j.get('name')}"
        )
        req.repo = repo_id
        with self._lock:
            state = self._can_write(req, repo_type, repo_id)
            self._repos.delete(state)
        return Response.json({})

    def update_settings(self, req: Request, kind: str, repo: str) -> Response:
        j = req.json()
        with self._lock:
            state = self._can_write(req, REPO_TYPES[kind], repo)
            if "visibility" in j:
                state["private"] = j["visibility"] != "public"
            elif "private" in j:
                state["private"] = bool(j["private"])
            self._repos.save(state)
        return Response.json({})

    def duplicate_repo(self, req: Request, kind: str, repo: str) -> Response:
        j = req.json()
        repo_type = REPO_TYPES[kind]
        with self._lock:
            src = self._can_read(req, repo_type, repo)
            target = j.get("repository") or ""
            ns, _, name = target.partition("/")
            body = {
                "name": name,
                "organization": ns,
                "type": repo_type,
                "sdk": src.get("sdk"),
                "private": j.get("private", src["private"]),
                "hardware": j.get("hardware"),
            }
            if "visibility" in j:
                body["visibility"] = j["visibility"]
            self.create_repo(
                Request("POST", req.path, {}, req.headers, json.dumps(body).encode(), req.principal)
            )
            dst = self._repos.repos[(repo_type, target)]
            before = dict(self._repos.head(dst)["files"])
            files = dict(self._repos.head(src)["files"])
            dst["commits"].append(
                {
                    "id": secrets.token_hex(20),
                    "parent": dst["commits"][-1]["id"],
                    "title": f"Duplicated from {repo}",
                    "message": "",
                    "author": req.principal.username,
                    "date": time.time(),
                    "files": files,
                }
            )
            self._repos.save(dst)
            self._repos.sync_checkout(dst, before, files)
        return Response.json({"url": f"{self.url}/{URL_PREFIX[repo_type]}{target}"})

    def _info(self, req: Request, kind: str, repo: str, rev: str = "main") -> Response:
        repo_type = REPO_TYPES[kind]
        with self._lock:
            state = self._can_read(req, repo_type, repo)
            commit = self._repos.commit_at(state, rev)
            info = {
                "_id": hashlib.sha1(repo.encode()).hexdigest()[:24],
                "id": repo,
                "author": repo.split("/")[0],
                "sha": commit["id"],
                "lastModified": _iso(commit["date"]),
                "createdAt": _iso(state["created_at"]),
                "private": state["private"],
                "disabled": False,
                "gated": state.get("gated", False),
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": [{"rfilename": p} for p in sorted(commit["files"])],
                "usedStorage": sum(f["size"] for f in commit["files"].values()),
            }
            if repo_type == "model":
                info["modelId"] = repo
            if repo_type == "space":
                info["sdk"] = state.get("sdk")
                info["runtime"] = self._runtime(state, poll=False)
        return Response.json(info)

    def repo_info(self, req: Request, kind: str, repo: str) -> Response:
        return self._info(req, kind, repo)

    def revision_info(self, req: Request, kind: str, repo: str, rev: str) -> Response:
        return self._info(req, kind, repo, rev)

    @staticmethod
    def _tree_entry(path: str, f: dict) -> dict:
        entry = {"type": "file", "oid": f["oid"], "size": f["size"], "path": path}
        if f["lfs"]:
            entry["lfs"] = {
                "oid": f["sha256"],
                "size": f["size"],
                "pointerSize": len(lfs_pointer(f["sha256"], f["size"])),
            }
        return entry

    def _listing(self, files: dict, prefix: str, recursive: bool) -> list[dict]:
        base = f"{prefix}/" if prefix else ""
        folders: dict[str, list[str]] = {}
        out = []
        for path in sorted(files):
            if not path.startswith(base):
                continue
            rest = path[len(base) :]
            parts = rest.split("/")
            for i in range(1, len(parts) if recursive else min(2, len(parts))):
                folders.setdefault(base + "/".join(parts[:i]), []).append(files[path]["oid"])
            if recursive or len(parts) == 1:
                out.append(self._tree_entry(path, files[path]))
        dirs = [
            {"type": "directory", "path": d, "oid": hashlib.sha1("".join(oids).encode()).hexdigest()}
            for d, oids in sorted(folders.items())
        ]
        return dirs + out

    def tree(self, req: Request, kind: str, repo: str, rev: str, path: str | None = None) -> Response:
        with self._lock:
            state = self._can_read(req, REPO_TYPES[kind], repo)
            files = self._repos.commit_at(state, rev)["files"]
        path = (path or "").strip("/")
        if path and path not in files and not any(p.startswith(path + "/") for p in files):
            raise HttpError(404, f"Entry not found: {path}", "EntryNotFound")
        return Response.json(self._listing(files, path, req.arg("recursive") in ("true", "True", "1")))

    def paths_info(self, req: Request, kind: str, repo: str, rev: str) -> Response:
        form = parse_qs(req.body.decode())
        paths = form.get("paths", [])
        if req.headers.get("content-type", "").startswith("application/json"):
            paths = req.json().get("paths", [])
        with self._lock:
            state = self._can_read(req, REPO_TYPES[kind], repo)
            files = self._repos.commit_at(state, rev)["files"]
        out = []
        for p in paths:
            p = p.strip("/")
            if p in files:
                out.append(self._tree_entry(p, files[p]))
            elif any(f.startswith(p + "/") for f in files):
                oids = "".join(f["oid"] for k, f in sorted(files.items()) if k.startswith(p + "/"))
                out.append({"type": "directory", "path": p, "oid": hashlib.sha1(oids.encode()).hexdigest()})
        return Response.json(out)

    def list_commits(self, req: Request, kind: str, repo: str, rev: str) -> Response:
        with self._lock:
            state = self._can_read(req, REPO_TYPES[kind], repo)
            head = self._repos.commit_at(state, rev)
            upto = [c for c in state["commits"] if c["date"] <= head["date"]]
        return Response.json(
            [
                {
                    "id": c["id"],
                    "title": c["title"],
                    "message": c["message"],
                    "authors": [{"user": c["author"], "avatar": None}],
                    "date": _iso(c["date"]),
                }
                for c in reversed(upto)
            ]
        )

    def refs(self, req: Request, kind: str, repo: str) -> Response:
        with self._lock:
            state = self._can_read(req, REPO_TYPES[kind], repo)
            head = self._repos.head(state)["id"]
        return Response.json(
            {
                "branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": head}],
                "converts": [],
                "tags": [],
            }
        )

    # --- uploads --------------------------------------------------------------------------------
    def _lfs_patterns(self, files: dict) -> list[str]:
        attrs = (
            self._repos.get_object(files[".gitattributes"]["sha256"]).decode()
            if ".gitattributes" in files
            else ""
        )
        return [line.split()[0] for line in attrs.splitlines() if "filter=lfs" in line]

    @staticmethod
    def _is_lfs_path(path: str, patterns: list[str]) -> bool:
        name = path.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatch(path if "/" in p else name, p) for p in patterns)

    def _file_entry(self, content: bytes, *, lfs: bool) -> dict:
        sha = self._repos.put_object(content)
        oid = git_blob_oid(lfs_pointer(sha, len(content))) if lfs else git_blob_oid(content)
        return {"sha256": sha, "size": len(content), "lfs": lfs, "oid": oid}

    def preupload(self, req: Request, kind: str, repo: str, rev: str) -> Response:
        if req.arg("create_pr"):
            raise HttpError(400, "Pull requests are not supported by this test server")
        with self._lock:
            state = self._can_write(req, REPO_TYPES[kind], repo)
            head = self._repos.commit_at(state, rev)
            patterns = self._lfs_patterns(head["files"])
        out = []
        for f in req.json().get("files", []):
            lfs = self._is_lfs_path(f["path"], patterns) or f["size"] > MAX_REGULAR
            existing = head["files"].get(f["path"])
            oid = None
            if existing:
                oid = existing["sha256"] if existing["lfs"] else existing["oid"]
            out.append(
                {
                    "path": f["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": oid,
                }
            )
        return Response.json({"files": out, "commitOid": head["id"]})

    def lfs_batch(self, req: Request, prefix: str | None, repo: str) -> Response:
        repo_type = {"datasets": "dataset", "spaces": "space", None: "model"}[prefix]
        j = req.json()
        with self._lock:
            self._can_write(req, repo_type, repo)
        if j.get("operation") != "upload":
            raise HttpError(400, "Only uploads are supported by this test server")
        objects = []
        for o in j.get("objects", []):
            oid, size = o["oid"], int(o["size"])
            if self._repos.has_object(oid, size):
                objects.append({"oid": oid, "size": size})
                continue
            ticket = secrets.token_urlsafe(16)
            with self._lock:
                self._lfs_tickets[ticket] = (oid, size, req.principal, repo)
            base = f"{self.url}/{URL_PREFIX[repo_type]}{repo}.git/info/lfs/objects"
            objects.append(
                {
                    "oid": oid,
                    "size": size,
                    "authenticated": True,
                    "actions": {
                        "upload": {
                            "href": f"{self.url}/_lfs_upload/{oid}?{urlencode({'ticket': ticket})}",
                            "header": {},
                        },
                        "verify": {"href": f"{base}/verify", "header": {}},
                    },
                }
            )
        return Response.json(
            {"transfer": "basic", "objects": objects},
            headers={"Content-Type": "application/vnd.git-lfs+json"},
        )

    def lfs_upload(self, req: Request, oid: str) -> Response:
        # Like a presigned S3 URL: the ticket in the query authorises the PUT, no token is sent.
        with self._lock:
            ticket = self._lfs_tickets.pop(req.arg("ticket") or "", None)
        if ticket is None or ticket[0] != oid:
            raise HttpError(403, "Invalid or expired upload ticket")
        req.principal, req.repo = ticket[2], ticket[3]  # logged as the user the ticket was issued to
        if len(req.body) != ticket[1] or hashlib.sha256(req.body).hexdigest() != oid:
            raise HttpError(400, "Uploaded content does not match the announced oid/size")
        self._repos.put_object(req.body)
        return Response(200)

    def lfs_verify(self, req: Request, prefix: str | None, repo: str) -> Response:
        repo_type = {"datasets": "dataset", "spaces": "space", None: "model"}[prefix]
        j = req.json()
        with self._lock:
            self._can_write(req, repo_type, repo)
        if not self._repos.has_object(j.get("oid", ""), j.get("size")):
            raise HttpError(404, "LFS object not found")
        return Response.json({"success": True})

    def commit(self, req: Request, kind: str, repo: str, rev: str) -> Response:
        repo_type = REPO_TYPES[kind]
        if req.arg("create_pr"):
            raise HttpError(400, "Pull requests are not supported by this test server")
        lines = [json.loads(line) for line in req.body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HttpError(400, "The first line of a commit must be its header")
        header = lines[0]["value"]
        with self._lock:
            failure = self._fail_commits.pop(0) if self._fail_commits else None
            if failure and not failure[1]:
                raise HttpError(failure[0], "Internal Error (injected by the test server)")
            state = self._can_write(req, repo_type, repo)
            self._rate_limit(repo_type, repo)
            head = self._repos.commit_at(state, rev)
            if head is not self._repos.head(state):
                raise HttpError(400, "Commits are only accepted on the main branch")
            parent = header.get("parentCommit")
            if parent and parent != head["id"]:
                raise HttpError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head["files"])
            for op in lines[1:]:
                self._apply(op["key"], op["value"], files)
            if "README.md" in files and files["README.md"] != head["files"].get("README.md"):
                errors = _yaml_errors(
                    self._repos.get_object(files["README.md"]["sha256"]).decode("utf-8", "replace")
                )
                if errors:
                    raise HttpError(400, "Invalid metadata in README.md: " + "; ".join(errors))
            oid = secrets.token_hex(20)
            state["commits"].append(
                {
                    "id": oid,
                    "parent": head["id"],
                    "title": header.get("summary") or "",
                    "message": header.get("description") or "",
                    "author": req.principal.username,
                    "date": time.time(),
                    "files": files,
                }
            )
            if repo_type == "space":
                state["space"].update(stage="BUILDING", polls_left=self.space_build_polls)
            self._repos.save(state)
            self._repos.sync_checkout(state, head["files"], files)
            if failure:
                raise HttpError(
                    failure[0], "Internal Error (injected by the test server, after the commit landed)"
                )
        return Response.json(
            {
                "success": True,
                "commitOid": oid,
                "hookOutput": "",
                "pullRequestUrl": None,
                "commitUrl": f"{self.url}/{URL_PREFIX[repo_type]}{repo}/commit/{oid}",
            }
        )

    def _rate_limit(self, repo_type: str, repo: str) -> None:
        """Count this commit against the repo's hour, or refuse it the way the Hub does."""
        if self.commits_per_hour is None:
            return
        now = self.commit_clock()
        times = [t for t in self._commit_times.get((repo_type, repo), []) if t > now - 3600]
        if len(times) >= self.commits_per_hour:
            self._commit_times[(repo_type, repo)] = times
            wait = max(1, int(times[0] + 3600 - now) + 1)
            raise HttpError(
                429,
                "You have exceeded the rate limit for repository commits "
                f"({self.commits_per_hour} per hour).",
                extra={"Retry-After": str(wait)},
            )
        self._commit_times[(repo_type, repo)] = [*times, now]

    def _apply(self, key: str, value: dict, files: dict) -> None:
        path = value.get("path", "").strip("/")
        if not path or ".." in path.split("/") or path.startswith(".git/"):
            raise HttpError(400, f"Invalid path in repo: {path!r}")
        if key == "file":
            content = (
                base64.b64decode(value["content"])
                if value.get("encoding") == "base64"
                else value["content"].encode()
            )
            if len(content) > MAX_REGULAR or (b"\0" in content[:8000] and len(content) > MAX_REGULAR_BINARY):
                raise HttpError(
                    400,
                    "Your push was rejected because it contains binary files over 1 MiB sent "
                    f"as regular files ({path}). Please use LFS to store binary files.",
                )
            files[path] = self._file_entry(content, lfs=False)
        elif key == "lfsFile":
            sha, size = value["oid"], value.get("size")
            if not self._repos.has_object(sha, size):
                raise HttpError(
                    422,
                    f"Your push was rejected because an LFS pointer pointed to a file that does "
                    f"not exist ({path})",
                )
            size = (self._repos.objects / sha).stat().st_size
            files[path] = {
                "sha256": sha,
                "size": size,
                "lfs": True,
                "oid": git_blob_oid(lfs_pointer(sha, size)),
            }
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise HttpError(404, f"Entry not found: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            gone = [p for p in files if p.startswith(path + "/")]
            if not gone:
                raise HttpError(404, f"Entry not found: {path}", "EntryNotFound")
            for p in gone:
                del files[p]
        else:
            raise HttpError(400, f"Unsupported commit operation: {key}")

    # --- downloads ------------------------------------------------------------------------------
    def resolve(self, req: Request, prefix: str | None, repo: str, rev: str, path: str) -> Response:
        repo_type = {"datasets": "dataset", "spaces": "space", None: "model"}[prefix]
        with self._lock:
            state = self._can_read(req, repo_type, repo)
            owner = req.principal is not None and req.principal.username == repo.split("/")[0]
            if state.get("gated") and not owner:
                raise HttpError(403, f"Access to model {repo} is restricted. You must have access to it "
                                "and be authenticated to access it. Please log in.", "GatedRepo")
            commit = self._repos.commit_at(state, rev)
            entry = commit["files"].get(path)
        if entry is None:
            raise HttpError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit["id"]})
        etag = entry["sha256"] if entry["lfs"] else entry["oid"]
        headers = {
            "X-Repo-Commit": commit["id"],
            "ETag": f'"{etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if entry["lfs"]:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(entry["size"])})
        content = b"" if req.method == "HEAD" else self._repos.get_object(entry["sha256"])
        rng = req.headers.get("range")
        if rng and req.method == "GET" and (m := re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())):
            size = len(content)
            start = int(m.group(1)) if m.group(1) else max(0, size - int(m.group(2) or 0))
            end = min(size - 1, int(m.group(2))) if m.group(1) and m.group(2) else size - 1
            if start >= size and size:
                raise HttpError(416, "Range Not Satisfiable")
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return Response(206, content[start : end + 1], headers)
        if req.method == "HEAD":
            headers["Content-Length"] = str(entry["size"])
        return Response(200, content, headers)

    # --- Spaces ---------------------------------------------------------------------------------
    def _space_kv(self, req: Request, repo: str, kind: str) -> Response:
        with self._lock:
            state = self._can_write(req, "space", repo)
            store = state["space"][kind]
            if req.method == "POST":
                j = req.json()
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", j.get("key") or ""):
                    raise HttpError(400, f"Invalid {kind[:-1]} key: {j.get('key')!r}")
                store[j["key"]] = {
                    "value": str(j.get("value", "")),
                    "updatedAt": _iso(time.time()),
                    "description": j.get("description"),
                }
            elif req.method == "DELETE":
                store.pop(req.json().get("key"), None)
            self._repos.save(state)
            if kind == "secrets":  # the Hub never returns secret values
                return Response.json(
                    {
                        k: {"key": k, "description": v["description"], "updatedAt": v["updatedAt"]}
                        for k, v in store.items()
                    }
                    if req.method == "GET"
                    else {}
                )
            return Response.json(
                {
                    k: {"value": v["value"], "updatedAt": v["updatedAt"], "description": v["description"]}
                    for k, v in store.items()
                }
            )

    def space_variables_route(self, req: Request, repo: str) -> Response:
        return self._space_kv(req, repo, "variables")

    def space_secrets_route(self, req: Request, repo: str) -> Response:
        return self._space_kv(req, repo, "secrets")

    def _request_hardware(self, state: dict, username: str, flavor: str) -> None:
        for refused, users, status, message in self._hardware_refusals:
            if refused == flavor and (users is None or username in users):
                raise HttpError(status, message)
        state["space"]["hardware_requests"].append(flavor)
        state["space"].update(requested=flavor, stage="BUILDING", polls_left=self.space_build_polls)

    def space_hardware(self, req: Request, repo: str) -> Response:
        j = req.json()
        with self._lock:
            state = self._can_write(req, "space", repo)
            self._request_hardware(state, req.principal.username, j.get("flavor") or "")
            if j.get("sleepTimeSeconds") is not None:
                state["space"]["sleep_time"] = j["sleepTimeSeconds"]
            self._repos.save(state)
            return Response.json(self._runtime(state, poll=False))

    def _runtime(self, state: dict, *, poll: bool) -> dict:
        sp = state["space"]
        if poll and sp["stage"] == "BUILDING":
            sp["polls_left"] -= 1
            if sp["polls_left"] <= 0:
                sp["stage"] = sp["outcome"]
                if sp["stage"] == "RUNNING" and sp["requested"]:
                    sp["hardware"] = sp["requested"]
            self._repos.save(state)
        rt = {
            "stage": sp["stage"],
            "hardware": {
                "current": sp["hardware"] if sp["stage"] == "RUNNING" else None,
                "requested": sp["requested"] or sp["hardware"],
            },
            "gcTimeout": sp["sleep_time"],
            "storage": None,
            "replicas": {"current": 1, "requested": 1},
            "devMode": False,
        }
        if sp["stage"] in ("RUNTIME_ERROR", "BUILD_ERROR", "CONFIG_ERROR"):
            rt["errorMessage"] = sp["outcome_message"] or "Exit code: 1. Reason: the app crashed at start-up."
        return rt

    def space_runtime(self, req: Request, repo: str) -> Response:
        with self._lock:
            return Response.json(self._runtime(self._can_read(req, "space", repo), poll=True))

    def space_restart(self, req: Request, repo: str) -> Response:
        with self._lock:
            state = self._can_write(req, "space", repo)
            state["space"].update(stage="BUILDING", polls_left=self.space_build_polls)
            self._repos.save(state)
            return Response.json(self._runtime(state, poll=False))

    def space_pause(self, req: Request, repo: str) -> Response:
        with self._lock:
            state = self._can_write(req, "space", repo)
            state["space"]["stage"] = "PAUSED"
            self._repos.save(state)
            return Response.json(self._runtime(state, poll=False))

    # --- OpenID provider ------------------------------------------------------------------------
    def _signing_key(self):
        from joserfc.jwk import RSAKey

        with self._lock:
            if self._jwk is None:
                self._jwk = RSAKey.generate_key(
                    2048, parameters={"kid": "hub-test", "use": "sig", "alg": "RS256"}
                )
            return self._jwk

    def openid_configuration(self, req: Request) -> Response:
        u = self.url
        return Response.json(
            {
                "issuer": u,
                "authorization_endpoint": f"{u}/oauth/authorize",
                "token_endpoint": f"{u}/oauth/token",
                "userinfo_endpoint": f"{u}/oauth/userinfo",
                "jwks_uri": f"{u}/oauth/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": [
                    "openid",
                    "profile",
                    "email",
                    "read-repos",
                    "write-repos",
                    "manage-repos",
                    "contribute-repos",
                    "inference-api",
                    "jobs",
                ],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "grant_types_supported": ["authorization_code"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    def jwks(self, req: Request) -> Response:
        return Response.json({"keys": [self._signing_key().as_dict(private=False)]})

    def oauth_authorize(self, req: Request) -> Response:
        """Auto-approves as ?user=NAME, else the `hub_user` cookie, else oauth_default_user."""
        if req.arg("client_id") != self.oauth_client_id:
            raise HttpError(400, "Unknown OAuth client_id")
        user = req.arg("user") or req.cookies.get("hub_user") or self.oauth_default_user
        if user not in {p.username for p in self._tokens.values()}:
            raise HttpError(400, "No such user to sign in as (pass ?user= or set the hub_user cookie)")
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._oauth_codes[code] = {
                "user": user,
                "nonce": req.arg("nonce"),
                "scope": req.arg("scope") or "",
                "redirect_uri": req.arg("redirect_uri"),
            }
        query = {"code": code}
        if req.arg("state"):
            query["state"] = req.arg("state")
        redirect = req.arg("redirect_uri") or ""
        sep = "&" if "?" in redirect else "?"
        return Response(302, b"", {"Location": f"{redirect}{sep}{urlencode(query)}"})

    def oauth_token(self, req: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if (basic := req.headers.get("authorization", "")).lower().startswith("basic "):
            client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
            client_id, client_secret = unquote(client_id), unquote(client_secret)
        if (client_id, client_secret) != (self.oauth_client_id, self.oauth_client_secret):
            return Response.json({"error": "invalid_client"}, 401)
        with self._lock:
            grant = self._oauth_codes.pop(form.get("code", ""), None)
        if grant is None or form.get("grant_type") != "authorization_code":
            return Response.json({"error": "invalid_grant"}, 400)
        from joserfc import jwt

        access = "hf_oauth_" + secrets.token_urlsafe(24)
        scopes = tuple(grant["scope"].split())
        self.add_user(
            access,
            grant["user"],
            kind="oauth",
            scopes=scopes,
            role="write" if {"write-repos", "manage-repos", "contribute-repos"} & set(scopes) else "read",
        )
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": hashlib.sha1(grant["user"].encode()).hexdigest()[:24],
            "aud": client_id,
            "iat": now,
            "exp": now + 3600,
            "auth_time": now,
            **self._profile(grant["user"]),
        }
        if grant["nonce"]:
            claims["nonce"] = grant["nonce"]
        id_token = jwt.encode({"alg": "RS256", "kid": "hub-test"}, claims, self._signing_key())
        return Response.json(
            {
                "access_token": access,
                "token_type": "bearer",
                "expires_in": 3600,
                "scope": grant["scope"],
                "id_token": id_token,
            }
        )

    def _profile(self, user: str) -> dict:
        return {
            "name": user.title(),
            "preferred_username": user,
            "profile": f"{self.url}/{user}",
            "picture": f"{self.url}/avatars/{user}.svg",
            "website": "",
        }

    def oauth_userinfo(self, req: Request) -> Response:
        if req.principal is None:
            raise HttpError(401, "Invalid credentials in Authorization header")
        return Response.json(
            {
                "sub": hashlib.sha1(req.principal.username.encode()).hexdigest()[:24],
                **self._profile(req.principal.username),
            }
        )


def _yaml_errors(content: str) -> list[str]:
    """What the Hub's /api/validate-yaml would refuse in a README: bad YAML, duplicate keys,
    metadata that is not a mapping, unknown licenses, malformed configs."""
    if not content.startswith("---"):
        return []
    m = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
    if not m:
        return ["The YAML metadata block is not closed by a '---' line"]

    class Loader(yaml.SafeLoader):
        pass

    def no_duplicates(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicated mapping key '{key}'", key_node.start_mark
                )
            seen.add(key)
        return loader.construct_mapping(node, deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, no_duplicates)
    try:
        meta = yaml.load(m.group(1), Loader=Loader)  # a SafeLoader subclass
    except yaml.YAMLError as e:
        return [f"Invalid YAML in README metadata: {e}"]
    if meta is None:
        return []
    if not isinstance(meta, dict):
        return ["README metadata must be a YAML mapping"]
    errors = []
    licenses = meta.get("license")
    for lic in licenses if isinstance(licenses, list) else [licenses] if licenses is not None else []:
        if lic not in KNOWN_LICENSES:
            errors.append(f'"license" must be one of the Hub license identifiers, got "{lic}"')
    languages = meta.get("language")
    if languages is not None and not all(
        isinstance(x, str) for x in (languages if isinstance(languages, list) else [languages])
    ):
        errors.append('"language" must be a string or a list of strings')
    configs = meta.get("configs")
    if configs is not None and not (
        isinstance(configs, list) and all(isinstance(c, dict) and "config_name" in c for c in configs)
    ):
        errors.append('"configs" must be a list of mappings, each with a "config_name"')
    return errors


def _error(e: HttpError) -> Response:
    headers = {"X-Error-Message": e.message.encode("ascii", "replace").decode()}
    if e.code:
        headers["X-Error-Code"] = e.code
    headers.update({k: v for k, v in e.extra.items() if k.startswith("X-") or k == "Retry-After"})
    body = {
        "error": e.message,
        **{k: v for k, v in e.extra.items() if not k.startswith("X-") and k != "Retry-After"},
    }
    return Response.json(body, e.status, headers)


_KIND = r"(?P<kind>models|datasets|spaces)"
_REPO = r"(?P<repo>[^/]+/[^/]+)"
_REPO_GIT = r"(?:(?P<prefix>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+?)"
_ROUTES = [
    (m, re.compile(p), name, write)
    for m, p, name, write in [
        ("GET", r"/api/whoami-v2", "whoami", False),
        ("GET", r"/api/agent-harnesses", "agent_harnesses", False),
        ("POST", r"/api/validate-yaml", "validate_yaml", False),
        ("POST", r"/api/repos/create", "create_repo", True),
        ("DELETE", r"/api/repos/delete", "delete_repo_route", True),
        ("PUT", rf"/api/{_KIND}/{_REPO}/settings", "update_settings", True),
        ("POST", rf"/api/{_KIND}/{_REPO}/duplicate", "duplicate_repo", True),
        ("POST", rf"/api/{_KIND}/{_REPO}/preupload/(?P<rev>[^/]+)", "preupload", True),
        ("POST", rf"/api/{_KIND}/{_REPO}/commit/(?P<rev>[^/]+)", "commit", True),
        ("GET", rf"/api/{_KIND}/{_REPO}/revision/(?P<rev>[^/]+)", "revision_info", False),
        ("GET", rf"/api/{_KIND}/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree", False),
        ("POST", rf"/api/{_KIND}/{_REPO}/paths-info/(?P<rev>[^/]+)", "paths_info", False),
        ("GET", rf"/api/{_KIND}/{_REPO}/commits/(?P<rev>[^/]+)", "list_commits", False),
        ("GET", rf"/api/{_KIND}/{_REPO}/refs", "refs", False),
        ("GET", rf"/api/spaces/{_REPO}/variables", "space_variables_route", False),
        ("POST", rf"/api/spaces/{_REPO}/variables", "space_variables_route", True),
        ("DELETE", rf"/api/spaces/{_REPO}/variables", "space_variables_route", True),
        ("GET", rf"/api/spaces/{_REPO}/secrets", "space_secrets_route", False),
        ("POST", rf"/api/spaces/{_REPO}/secrets", "space_secrets_route", True),
        ("DELETE", rf"/api/spaces/{_REPO}/secrets", "space_secrets_route", True),
        ("POST", rf"/api/spaces/{_REPO}/hardware", "space_hardware", True),
        ("GET", rf"/api/spaces/{_REPO}/runtime", "space_runtime", False),
        ("POST", rf"/api/spaces/{_REPO}/restart", "space_restart", True),
        ("POST", rf"/api/spaces/{_REPO}/pause", "space_pause", True),
        ("GET", rf"/api/{_KIND}/{_REPO}", "repo_info", False),
        ("POST", rf"/{_REPO_GIT}\.git/info/lfs/objects/batch", "lfs_batch", True),
        ("POST", rf"/{_REPO_GIT}\.git/info/lfs/objects/verify", "lfs_verify", True),
        ("PUT", r"/_lfs_upload/(?P<oid>[0-9a-f]{64})", "lfs_upload", True),
        ("GET", rf"/{_REPO_GIT}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve", False),
        ("GET", r"/\.well-known/openid-configuration", "openid_configuration", False),
        ("GET", r"/oauth/jwks", "jwks", False),
        ("GET", r"/oauth/authorize", "oauth_authorize", False),
        ("POST", r"/oauth/token", "oauth_token", False),
        ("GET", r"/oauth/userinfo", "oauth_userinfo", False),
    ]
] + JOB_ROUTES


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: HubServer

    def log_message(self, *args) -> None:  # the jsonl log replaces stderr noise
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _dispatch(self) -> None:
        url = urlparse(self.path)
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        cookies = dict(c.strip().split("=", 1) for c in headers.get("cookie", "").split(";") if "=" in c)
        auth = headers.get("authorization", "")
        principal, bad_token = None, False
        if auth.lower().startswith("bearer "):
            principal = self.hub.principal(auth[7:].strip())
            bad_token = principal is None
        req = Request(self.command, url.path, parse_qs(url.query), headers, body, principal, cookies)
        if bad_token and not url.path.startswith(("/oauth/token", "/_lfs_upload/")):
            resp, repo, write = (
                _error(HttpError(401, "Invalid credentials in Authorization header")),
                None,
                False,
            )
        else:
            try:
                resp, repo, write = self.hub.handle(req)
            except Exception as e:  # a server bug must surface as a 500, not a hung client
                resp, repo, write = (
                    _error(HttpError(500, f"test server error: {type(e).__name__}: {e}")),
                    None,
                    False,
                )
        self.hub._log(req, resp.status, repo, write)
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if "Content-Length" not in resp.headers:
            self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch


__all__ = ["DEFAULT_GITATTRIBUTES", "HubServer", "Principal", "git_blob_oid", "lfs_pointer"]
