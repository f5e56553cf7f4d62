"""Whose token acts here: one answer for every Hub call.

In a Space (SPACE_ID set) only the signed-in visitor's OAuth token is ever used. The Space's own
HF_TOKEN secret is never read, so a public duplicate of the Space cannot be used to write into its
owner's account, and an anonymous visitor acts as nobody.

Run locally, gradio mocks the sign-in and hands handlers the literal token
"mock-oauth-token-for-local-dev"; that is ignored and the local token (HF_TOKEN, or the cached
`hf auth login`) is used instead, after a whoami against settings.hub_endpoint (cached in memory
per token hash). With no token at all the identity is "none" and the app records to a local folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass, field

from voxspace.hub import as_user_error, hub_api, with_retry
from voxspace.settings import Settings

log = logging.getLogger(__name__)

MOCK_OAUTH_TOKEN = "mock-oauth-token-for-local-dev"  # what gradio's local OAuth mock hands out


@dataclass(frozen=True)
class Identity:
    """A person acting on the Hub. `source`: "oauth" (a Space visitor), "local" (this machine's
    token) or "none" (nobody signed in: local-folder mode)."""

    username: str | None
    token: str | None = field(default=None, repr=False)
    source: str = "none"

    @property
    def signed_in(self) -> bool:
        return bool(self.username and self.token)

    @property
    def owner(self) -> str:
        """Whose runs and pages these are: the username, "local" when nobody is signed in."""
        return self.username or "local"

    @property
    def token_fingerprint(self) -> str | None:
        """A short, non-reversible tag for the token (cache keys, never logs of the token itself)."""
        return _fingerprint(self.token) if self.token else None


ANONYMOUS = Identity(None, None, "none")


def sign_in_hint(settings: Settings | None, purpose: str) -> str:
    """How to sign in, where the person is: the page's button in a Space, the token on one's own
    machine (where there is no sign-in button). `purpose`: "To publish", "To record"..."""
    if settings is None or settings.in_space:
        return f"{purpose}, sign in with Hugging Face (the button at the top of the page)."
    return (f"{purpose}, VoxSpace needs your Hugging Face token: set HF_TOKEN or run `hf auth login`, "
            "then start VoxSpace again.")

_whoami_cache: dict[tuple[str, str], str] = {}
_whoami_lock = threading.Lock()


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def local_token() -> str | None:
    """This machine's token: HF_TOKEN, else the cached login (never used inside a Space)."""
    from huggingface_hub import get_token

    return os.environ.get("HF_TOKEN") or get_token() or None


def whoami_username(token: str, settings: Settings) -> str:
    """The username a token belongs to, asked once per (endpoint, token) and cached in memory.

    Raises AuthError when the Hub refuses the token, HubError when it still cannot be reached after
    a few tries (hub.with_retry).
    """
    key = (settings.hub_endpoint, _fingerprint(token))
    with _whoami_lock:
        if key in _whoami_cache:
            return _whoami_cache[key]
    try:
        api = hub_api(Identity(None, token, "local"), settings)
        # One 429 or 503 must not end the sign-in check: a few tries with backoff first.
        info = with_retry(api.whoami, what="check who you are on Hugging Face")
    except Exception as e:
        raise as_user_error(e, action="check who you are on Hugging Face") from e
    username = info["name"]
    with _whoami_lock:
        _whoami_cache[key] = username
    return username


def resolve_identity(settings: Settings, *, oauth_username: str | None = None,
                     oauth_token: str | None = None) -> Identity:
    """Who acts for this request. `oauth_*` come from gradio's gr.OAuthProfile / gr.OAuthToken."""
    real_oauth = bool(oauth_token) and oauth_token != MOCK_OAUTH_TOKEN
    if settings.in_space:
        if real_oauth and oauth_username:
            return Identity(oauth_username, oauth_token, "oauth")
        return ANONYMOUS
    if real_oauth and oauth_username:  # a real OAuth flow outside a Space (e.g. a custom provider)
        return Identity(oauth_username, oauth_token, "oauth")
    token = local_token()
    if not token:
        return ANONYMOUS
    return Identity(whoami_username(token, settings), token, "local")


def clear_whoami_cache() -> None:
    with _whoami_lock:
        _whoami_cache.clear()
