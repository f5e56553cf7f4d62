"""The Hub entry points publish/demo need, with the shapes voxspace.hub / voxspace.auth give them.

Temporary on purpose: once voxspace.auth and voxspace.hub are on main, import `hub_api`,
`validate_repo_id` and `commit_with_retry` from voxspace.hub and `Identity` / `resolve_identity`
from voxspace.auth instead; the signatures here match theirs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from voxspace.errors import AuthError, BadRepoName
from voxspace.settings import Settings

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo, CommitOperation, HfApi

log = logging.getLogger(__name__)

RETRYABLE_STATUS = (408, 429, 500, 502, 503, 504)


class Credentials(Protocol):
    """What voxspace.auth.Identity offers: who acts, and with which token."""

    username: str | None
    token: str | None


@dataclass(frozen=True)
class LocalIdentity:
    """Stand-in for voxspace.auth.Identity on the command line: the local token and its owner."""

    username: str
    token: str = field(repr=False)
    source: str = "local"


def hub_api(identity: Credentials, settings: Settings) -> HfApi:
    from huggingface_hub import HfApi

    return HfApi(endpoint=settings.hub_endpoint, token=identity.token or False, library_name="voxspace")


def local_identity(settings: Settings) -> LocalIdentity:
    """HF_TOKEN or the cached `hf auth login` token, and the user it belongs to."""
    from huggingface_hub import HfApi, get_token

    token = get_token()
    if not token:
        raise AuthError("No Hugging Face token found: set HF_TOKEN or run `hf auth login`.")
    try:
        name = HfApi(endpoint=settings.hub_endpoint, token=token).whoami()["name"]
    except Exception as e:
        raise AuthError("The Hub refused your token: check HF_TOKEN or log in again.",
                        detail=type(e).__name__) from None
    return LocalIdentity(username=name, token=token)


def validate_repo_id(repo_id: str, *, default_namespace: str | None = None) -> str:
    """`name` -> `default_namespace/name`; refuse ids the Hub would refuse, with a sentence saying why."""
    from huggingface_hub.utils import HFValidationError
    from huggingface_hub.utils import validate_repo_id as hf_validate

    repo_id = (repo_id or "").strip()
    if repo_id and "/" not in repo_id and default_namespace:
        repo_id = f"{default_namespace}/{repo_id}"
    if repo_id.count("/") != 1:
        raise BadRepoName(f"'{repo_id}' is not a valid repository name: use owner/name.")
    try:
        hf_validate(repo_id)
    except HFValidationError as e:
        raise BadRepoName(f"'{repo_id}' is not a valid repository name: use owner/name with letters, "
                          "digits, '-', '_' or '.'.", detail=str(e)) from None
    return repo_id


def _fresh(op: CommitOperation) -> CommitOperation:
    # create_commit caches each operation's preupload answer on the object; a retry with the same
    # objects skips preupload, never learns a lost commit already landed, and commits twice.
    from huggingface_hub import CommitOperationAdd

    if isinstance(op, CommitOperationAdd):
        return CommitOperationAdd(path_in_repo=op.path_in_repo, path_or_fileobj=op.path_or_fileobj)
    return op


def commit_with_retry(api: HfApi, repo_id: str, operations: Sequence[CommitOperation], *,
                      commit_message: str, repo_type: str = "model", attempts: int = 4,
                      sleep: Callable[[float], None] = time.sleep) -> CommitInfo:
    """create_commit, retried on 5xx/429/408: the client never retries the commit POST itself.

    Re-sending a commit whose response was lost makes no second commit: fresh operations go
    through preupload again, which reports the files as already there, and nothing is left to send.
    """
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(1, attempts + 1):
        try:
            return api.create_commit(repo_id, [_fresh(op) for op in operations], repo_type=repo_type,
                                     commit_message=commit_message)
        except HfHubHTTPError as e:
            status = e.response.status_code if e.response is not None else None
            if attempt == attempts or status not in RETRYABLE_STATUS:
                raise
            log.warning("commit to %s failed (HTTP %s, try %d/%d); retrying", repo_id, status, attempt,
                        attempts)
            sleep(min(2.0 ** attempt, 8.0))
    raise AssertionError("unreachable")
