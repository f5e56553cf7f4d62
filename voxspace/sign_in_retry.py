"""Checking again, in the background, a sign-in that the Hub could not answer when the page loaded.

A 429 or an outage during the page's whoami used to leave the person local-only for the whole
session (only a reload checked again). Now the failed check starts one SignInRetry per token and
data folder (shared by every page of this process): it asks whoami again with backoff
(settings.sign_in_retry: 5 s doubling up to 5 min, a 429's Retry-After honoured up to that), and
once the Hub answers it opens the person's store and moves the takes recorded meanwhile (the local
folder) into its spool, so they go to the repo. Pages pick the result up on their next tick
(ui.session.recheck_sign_in) and say so. A refused token (401) is not a passing failure: the retry
stops and the page says why.
"""

from __future__ import annotations

import logging
import threading
from typing import ClassVar

from voxspace.auth import Identity, whoami_username
from voxspace.errors import AuthError, RateLimited, VoxSpaceError
from voxspace.settings import Settings
from voxspace.store import TakeStore

log = logging.getLogger(__name__)

WAITING = (
    "Hugging Face did not answer when VoxSpace checked who you are, so for now your takes are kept "
    "in a local folder. VoxSpace checks again in the background and moves them to your repo once "
    "it answers."
)


class SignInRetry:
    """One token's sign-in, checked again until the Hub answers (identity) or refuses it (refused)."""

    _registry: ClassVar[dict[tuple[str, str, str], SignInRetry]] = {}
    _registry_lock = threading.Lock()

    def __init__(self, settings: Settings, identity: Identity) -> None:
        self.settings = settings
        self._token = identity.token or ""
        self.attempts = 0
        self.delays: list[float] = []  # the waits chosen so far (the backoff, for the curious)
        self.identity: Identity | None = None  # set once the Hub answered
        self.moved = 0  # local takes moved into the person's spool at that moment
        self.refused: VoxSpaceError | None = None  # set when the Hub refused the token
        self._wake = threading.Event()
        self._done = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="sign-in-retry", daemon=True)

    @classmethod
    def start(cls, settings: Settings, token: str) -> SignInRetry:
        """The running retry for this token and data folder, or a new one."""
        probe = Identity(None, token, "local")
        key = (str(settings.data_dir), settings.hub_endpoint, probe.token_fingerprint or "")
        with cls._registry_lock:
            retry = cls._registry.get(key)
            if retry is None or retry.finished:
                retry = cls._registry[key] = cls(settings, probe)
                retry._thread.start()
        return retry

    @classmethod
    def close_all(cls) -> None:
        """Stop every retry (tests, shutdown)."""
        with cls._registry_lock:
            retries, cls._registry = list(cls._registry.values()), {}
        for retry in retries:
            retry._closed = True
            retry._wake.set()
            retry._thread.join(5)

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def try_now(self) -> None:
        """Check at once instead of at the end of the current wait."""
        self._wake.set()

    def wait(self, timeout: float) -> bool:
        """True once the Hub answered or refused (False: still retrying after `timeout` s)."""
        return self._done.wait(timeout)

    def recovered_sentence(self) -> str:
        assert self.identity is not None
        moved = (
            ""
            if not self.moved
            else (
                f", and the {self.moved} take{'s' if self.moved != 1 else ''} recorded meanwhile "
                f"{'were' if self.moved != 1 else 'was'} moved to your repo"
            )
        )
        return f"Hugging Face answered again: you are signed in as **{self.identity.username}**{moved}."

    def _run(self) -> None:
        retry_after: float | None = None
        while not self._closed:
            self.attempts += 1
            delay = self.settings.sign_in_retry.delay_s(self.attempts, retry_after)
            self.delays.append(delay)
            self._wake.wait(delay)
            self._wake.clear()
            if self._closed:
                return
            try:
                username = whoami_username(self._token, self.settings)
            except AuthError as e:
                log.warning("sign-in check refused: %s", e)
                self.refused = e
                self._done.set()
                return
            except VoxSpaceError as e:
                retry_after = e.retry_after_s if isinstance(e, RateLimited) else None
                log.warning("sign-in check %d failed again: %s", self.attempts, e)
                continue
            self._signed_in(Identity(username, self._token, "local"))
            return

    def _signed_in(self, identity: Identity) -> None:
        """Open the person's store and hand it the takes recorded while nobody was signed in."""
        store = TakeStore.for_identity(self.settings, identity)
        try:
            self.moved = store.push_local_folder()
        except VoxSpaceError as e:  # they stay in the local folder; `data push` sends them later
            log.warning("takes recorded meanwhile not moved: %s", e)
        log.info(
            "sign-in checked after %d tries (%.0f s): %s; %d local takes moved",
            self.attempts,
            sum(self.delays),
            identity.username,
            self.moved,
        )
        self.identity = identity
        self._done.set()


__all__ = ["WAITING", "SignInRetry"]
