"""The two Hub entry points publish/demo need, until voxspace.hub provides them.

Temporary on purpose: once voxspace.auth / voxspace.hub are on main, `hub_api` becomes
`voxspace.hub.hub_api` and `commit` becomes `voxspace.hub.commit_with_retry` (same shapes).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from voxspace.errors import AuthError, BadRepoName
from voxspace.settings import Settings

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo, HfApi

log = logging.getLogger(__name__)


class Credentials(Protocol):
    """What voxspace.auth.Identity offers: who acts, and with which token."""

    username: str
    token: str


def hub_api(identity: Credentials, settings: Settings) -> HfApi:
    from huggingface_hub import HfApi

    return HfApi(endpoint=settings.hub_endpoint, token=identity.token, library_name="voxspace")


def validate_repo_id(repo_id: str, username: str) -> str:
    """`name` -> `username/name`; refuse ids the Hub would refuse, with a sentence saying why."""
    from huggingface_hub.utils import HFValidationError
    from huggingface_hub.utils import validate_repo_id as hf_validate

    repo_id = (repo_id or "").strip()
    if repo_id and "/" not in repo_id:
        repo_id = f"{username}/{repo_id}"
    try:
        hf_validate(repo_id)
    except HFValidationError as e:
        raise BadRepoName(f"'{repo_id}' is not a valid repository name: use owner/name with letters, "
                          "digits, '-', '_' or '.'.", detail=str(e)) from None
    if repo_id.count("/") != 1:
        raise BadRepoName(f"'{repo_id}' is not a valid repository name: use owner/name.")
    return repo_id


def commit(api: HfApi, *, tries: int = 4, **kwargs) -> CommitInfo:
    """create_commit, retried: the client never retries the commit POST itself (FACTS.md).

    Re-sending a commit whose response was lost is harmless: unchanged files are skipped.
    """
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(1, tries + 1):
        try:
            return api.create_commit(**kwargs)
        except HfHubHTTPError as e:
            status = e.response.status_code if e.response is not None else None
            if attempt == tries or (status is not None and status < 500 and status not in (408, 429)):
                raise
            log.warning("commit to %s failed (%s); retry %d/%d", kwargs.get("repo_id"), status, attempt,
                        tries - 1)
            time.sleep(min(2 ** attempt, 8))
    raise AssertionError("unreachable")


@dataclass
class LocalIdentity:
    """Stand-in for voxspace.auth.Identity on the command line: the local token and its owner."""

    username: str
    token: str = field(repr=False)
    source: str = "env"


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
