"""One place for Hub access: the client for an identity, repo names, retries, private repos.

Every module that talks to the Hub (store, train, publish) goes through here so that the endpoint,
the token and the error messages are decided once:
- `hub_api(identity, settings)` never falls back to an ambient token: an anonymous identity gets
  `token=False`, so a Space's own HF_TOKEN can't leak into a visitor's request.
- `user_cache_dir` gives each person their own download cache. A shared cache leaks private files:
  `hf_hub_download` serves the cached copy when its HEAD check fails, even with a 404.
- `commit_with_retry` exists because the client retries every upload request except the final
  /commit POST; re-running an upload whose commit landed is a no-op (unchanged files are skipped).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError

from voxspace.errors import AuthError, BadRepoName, HubError, RateLimited, VoxSpaceError
from voxspace.settings import Settings

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo, CommitOperation

    from voxspace.auth import Identity

log = logging.getLogger(__name__)

RETRYABLE_STATUS = (408, 429, 500, 502, 503, 504)
T = TypeVar("T")
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?$")


def hub_api(identity: Identity, settings: Settings) -> HfApi:
    """An HfApi acting as `identity` against settings.hub_endpoint (anonymous: no token at all)."""
    return HfApi(endpoint=settings.hub_endpoint, token=identity.token or False,
                 library_name="voxspace")


def user_cache_dir(settings: Settings, identity: Identity) -> Path:
    """This person's own Hub download cache under data_dir (anonymous visitors share one that can
    only ever hold public files)."""
    who = identity.username if identity.signed_in else "_anonymous"
    path = Path(settings.data_dir) / "cache" / who
    path.mkdir(parents=True, exist_ok=True)
    return path


def validate_repo_id(repo_id: str, *, default_namespace: str | None = None) -> str:
    """Return the full `namespace/name` for `repo_id`, or raise BadRepoName saying what is wrong.

    A bare name gets `default_namespace` (the user). Rules are the Hub's: letters, digits, '-', '_',
    '.'; at most 96 characters; no leading/trailing '-' or '.'; no '--' or '..'.
    """
    repo_id = (repo_id or "").strip()
    if "/" not in repo_id and default_namespace:
        repo_id = f"{default_namespace}/{repo_id}"
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise BadRepoName(f"'{repo_id}' is not a repository name: use 'username/name'.")
    for part in parts:
        if len(part) > 96:
            raise BadRepoName(f"'{part}' is too long: a Hub name has at most 96 characters.")
        if "--" in part or ".." in part:
            raise BadRepoName(f"'{part}' cannot contain '--' or '..'.")
        if not _NAME.match(part):
            raise BadRepoName(f"'{part}' is not a valid Hub name: use letters, digits, '-', '_' or '.', "
                              "and start and end with a letter or digit.")
    if parts[1].endswith(".git"):
        raise BadRepoName(f"'{parts[1]}' cannot end with '.git'.")
    return repo_id


def default_dataset_repo(username: str, settings: Settings) -> str:
    """Where a person's takes go unless they choose otherwise: `<user>/voxspace-recordings`."""
    return validate_repo_id(f"{username}/{settings.dataset_repo_name}")


def is_retryable(exc: BaseException) -> bool:
    """A server hiccup or a network failure: worth trying again later."""
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return exc.response.status_code in RETRYABLE_STATUS
    if isinstance(exc, OSError):
        return True
    return type(exc).__module__.split(".")[0] in ("httpx2", "httpx", "httpcore")


def is_conflict(exc: BaseException) -> bool:
    """The Hub's 412 to a commit whose `parent_commit` is no longer the head ("A commit has happened
    since. Please refresh and try again."): someone else committed in between."""
    response = exc.response if isinstance(exc, HfHubHTTPError) else None
    return response is not None and response.status_code == 412


def retry_after_s(exc: BaseException) -> float | None:
    """The seconds a 429 (or 503) asks the client to wait (its Retry-After header), if it says."""
    if isinstance(exc, RateLimited):
        return exc.retry_after_s
    response = exc.response if isinstance(exc, HfHubHTTPError) else None
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: rare from the Hub; treat as "a while"
        return None


def rate_limited(exc: BaseException, *, action: str) -> RateLimited | None:
    """A RateLimited error for a 429 (None for anything else): what was refused (`action`, e.g.
    "save to alice/x") and when it may be tried again."""
    response = exc.response if isinstance(exc, HfHubHTTPError) else None
    if response is None or response.status_code != 429:
        return None
    wait = retry_after_s(exc)
    when = f" in about {_duration(wait)}" if wait else " in a few minutes"
    return RateLimited(f"The Hub asked for fewer requests, so we could not {action} now. Try again{when}.",
                       retry_after_s=wait or 0.0, detail=f"HTTP 429, Retry-After {wait}")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def as_user_error(exc: BaseException, *, action: str, repo_id: str | None = None,
                  retrying: bool = False) -> VoxSpaceError:
    """Turn a client exception into a typed error whose message a person can act on. `retrying`:
    the caller really tries again by itself (only then does the sentence say so)."""
    if isinstance(exc, VoxSpaceError):
        return exc
    where = f" {repo_id}" if repo_id else ""
    response = exc.response if isinstance(exc, HfHubHTTPError) else None
    status = response.status_code if response is not None else None
    detail = f"{type(exc).__name__}: HTTP {status}" if status else type(exc).__name__
    if status == 401:
        return AuthError(f"Could not {action}{where}: Hugging Face refused your sign-in token. "
                         "Sign in again.", detail=detail)
    if status == 403:
        return AuthError(f"Could not {action}{where}: your token may not write there. Sign in with write "
                         "access, or choose a repository in your own namespace.", detail=detail)
    if status == 404:
        return HubError(f"Could not {action}{where}: the repository was not found (or is private to "
                        "someone else).", detail=detail)
    if is_retryable(exc):
        then = "It will be retried." if retrying else "Try again in a minute."
        return HubError(f"Could not {action}{where} yet: the Hub is not answering. {then}", detail=detail)
    return HubError(f"Could not {action}{where}: the Hub refused it.", detail=detail)


def commit_with_retry(
    api: HfApi,
    repo_id: str,
    operations: Sequence[CommitOperation],
    *,
    commit_message: str,
    repo_type: str = "dataset",
    attempts: int = 5,
    base_delay_s: float = 1.0,
    max_delay_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    **commit_kwargs,
) -> CommitInfo:
    """create_commit, retried (with_retry) on 5xx/429/408 and network errors with exponential backoff.

    A 429 is retried only when its Retry-After fits under `max_delay_s`; a longer one raises
    RateLimited at once (the caller decides when to come back: sleeping 40 minutes here would hold
    its thread, and retrying sooner only earns another 429).

    Safe to repeat: when an earlier try landed but its answer was lost, the retry's preupload sees
    identical files and the client makes no duplicate commit. That needs fresh operation objects
    per try: a used CommitOperationAdd keeps its stale "not on the Hub yet" answer and would be
    committed again. Additions must therefore hold bytes or a path, not an open file.
    `commit_kwargs` go to create_commit (e.g. parent_commit). Other errors raise at once.
    """
    return with_retry(
        lambda: api.create_commit(
            repo_id,
            [_fresh(op) for op in operations],
            commit_message=commit_message,
            repo_type=repo_type,
            **commit_kwargs,
        ),
        what=f"save to {repo_id}",
        attempts=attempts,
        base_delay_s=base_delay_s,
        max_delay_s=max_delay_s,
        max_wait_s=max_delay_s,
        sleep=sleep,
    )


def with_retry(
    call: Callable[[], T],
    *,
    what: str,
    attempts: int = 4,
    base_delay_s: float = 1.0,
    max_delay_s: float = 8.0,
    max_wait_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call()` (an idempotent Hub request: whoami, repo info, a listing, a commit), tried again on
    429/5xx and network errors with exponential backoff (capped at `max_delay_s`).

    A 429's Retry-After is honoured when it fits under `max_wait_s` (default `max_delay_s` × 4); a
    longer one, or a 429 on the last try, raises RateLimited (`what` names the refused action in its
    sentence). Other errors raise at once.
    """
    max_wait_s = 4 * max_delay_s if max_wait_s is None else max_wait_s
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as e:
            limited = rate_limited(e, action=what)
            if limited is not None and (attempt == attempts or limited.retry_after_s > max_wait_s):
                raise limited from e
            if attempt == attempts or not is_retryable(e):
                raise
            delay = min(max_delay_s, base_delay_s * 2 ** (attempt - 1))
            if limited is not None:
                delay = max(delay, limited.retry_after_s)
            log.warning(
                "could not %s (%s, try %d/%d); retrying in %.1f s",
                what,
                type(e).__name__,
                attempt,
                attempts,
                delay,
            )
            sleep(delay)
    raise AssertionError("unreachable")


def folder_operations(folder: str | Path, *, path_in_repo: str = "",
                      skip: Callable[[str], bool] | None = None) -> list[CommitOperationAdd]:
    """One addition per file under `folder` (relative posix paths under `path_in_repo`), for
    commit_with_retry; `skip(relative_path)` leaves files out (checkpoints, caches...)."""
    folder = Path(folder)
    prefix = path_in_repo.strip("/")
    ops = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if skip is None or not skip(rel):
            ops.append(CommitOperationAdd(f"{prefix}/{rel}" if prefix else rel, path))
    return ops


def _fresh(op: CommitOperation) -> CommitOperation:
    if isinstance(op, CommitOperationAdd):
        if not isinstance(op.path_or_fileobj, bytes | str | Path):
            raise TypeError("commit_with_retry needs additions made from bytes or a path")
        return CommitOperationAdd(path_in_repo=op.path_in_repo, path_or_fileobj=op.path_or_fileobj)
    return op


def ensure_private_repo(api: HfApi, repo_id: str, *, repo_type: str = "dataset",
                        space_sdk: str | None = None) -> bool:
    """Create `repo_id` as a private repo if it does not exist; True when it was created here.

    An existing repo is left as its owner set it (we never flip a public repo to private or back).
    """
    try:
        with_retry(lambda: api.repo_info(repo_id, repo_type=repo_type), what=f"read {repo_id}")
        return False
    except HfHubHTTPError as e:
        if e.response is None or e.response.status_code != 404:
            raise
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=True, space_sdk=space_sdk)
    except HfHubHTTPError as e:
        if e.response is not None and e.response.status_code == 409:  # created meanwhile elsewhere
            return False
        raise
    log.info("created private %s repo %s", repo_type, repo_id)
    return True
