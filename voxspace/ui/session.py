"""One visitor's state, held in a gr.State: whose takes these are, where they go, where they are.

Nothing here is module-level: two visitors (or two tabs) each get their own Session, so they
never see or write each other's takes. Progress itself lives in the store (the repo), so it
survives the visitor leaving; only view preferences live in the browser.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field

import gradio as gr
import numpy as np

from voxspace import phrases
from voxspace.auth import ANONYMOUS, Identity, local_token, resolve_identity
from voxspace.errors import AuthError, VoxSpaceError
from voxspace.layout import Take
from voxspace.settings import Settings
from voxspace.sign_in_retry import WAITING, SignInRetry
from voxspace.store import TakeStore

log = logging.getLogger(__name__)


@dataclass
class Session:
    settings: Settings
    identity: Identity
    store: TakeStore | None  # None in a Space until the visitor signs in: no shared anonymous folder
    language: str = "en"
    custom: list[phrases.Phrase] = field(default_factory=list)  # the visitor's own phrases, if any
    suggested: list[phrases.Phrase] = field(default_factory=list)  # "Record more like these", first in line
    skipped: set[str] = field(default_factory=set)
    current: phrases.Phrase | None = None
    spoken_s_since_rest: float = 0.0  # drives the rest reminder
    chunks: list[np.ndarray] = field(default_factory=list)  # hands-free capture, float32 mono
    chunk_sr: int = 0
    problem: str | None = None  # why sign-in could not be checked, said on the status line
    sign_in_retry: SignInRetry | None = None  # checking that sign-in again in the background
    notice: str | None = None  # the sign-in came back mid-session: said on the status line
    page_id: str = field(default_factory=lambda: secrets.token_hex(8))  # this page, for PhraseClaims
    claims: phrases.PhraseClaims = field(default=phrases.CLAIMS, repr=False)
    last_take_id: str | None = None  # the take the last Save stored (or found already stored)
    last_saved: tuple[Take, bytes] | None = None  # that take and its WAV, until ui.unsent.hand_back
    browser_takes: dict[str, str] = field(default_factory=dict)  # browser key -> take id (ui.unsent)
    settled_keys: list[str] = field(default_factory=list)  # keys the browser may forget
    train_shown: object = None  # what the Train tab's last tick sent (ui.train.poll); None: send all

    @property
    def can_record(self) -> bool:
        return self.store is not None

    def phrase_list(self) -> list[phrases.Phrase]:
        base = self.custom if self.custom else phrases.reading_order(self.language)
        if not self.suggested:
            return base
        first = {p.phrase_id for p in self.suggested}
        return [*self.suggested, *(p for p in base if p.phrase_id not in first)]

    def advance(self, done_ids: set[str]) -> phrases.Phrase | None:
        """The next phrase to read: not done, not shown on another page of this person."""
        owner = self._claim_owner()
        taken = self.claims.taken_by_others(owner, self.page_id) if owner else set()
        self.current = phrases.next_phrase(self.phrase_list(), done_ids, self.skipped, taken)
        self.keep_claim()
        return self.current

    def _claim_owner(self) -> str | None:
        """Whose pages share phrases: the signed-in person; locally the one person at this machine;
        an anonymous visitor of a Space records nothing, so claims nothing."""
        if self.identity.username:
            return self.identity.username
        return None if self.settings.in_space else "local"

    def keep_claim(self) -> None:
        """Renew this page's claim on its phrase (the Record tab's timer calls it while it is open)."""
        if owner := self._claim_owner():
            self.claims.claim(owner, self.page_id, self.current.phrase_id if self.current else None)

    def release(self) -> None:
        """The page closed: its phrase is free for the person's other pages."""
        if owner := self._claim_owner():
            self.claims.claim(owner, self.page_id, None)


def start_session(settings: Settings, *, profile: gr.OAuthProfile | None,
                  token: gr.OAuthToken | None) -> Session:
    """Whose takes these are (voxspace.auth) and where they go (voxspace.store). A Hub that cannot
    be reached must not break the page: the visitor is then told why, in `problem`."""
    problem, retry = None, None
    try:
        identity = resolve_identity(settings, oauth_username=profile.username if profile else None,
                                    oauth_token=token.token if token else None)
    except VoxSpaceError as e:
        log.warning("sign-in check failed: %s", e)
        identity, problem = ANONYMOUS, e.user_message
        mine = None if settings.in_space else local_token()  # in a Space no whoami is ever asked
        if mine and not isinstance(e, AuthError):  # the Hub did not answer: ask again, in the background
            retry, problem = SignInRetry.start(settings, mine), WAITING
    store = None
    if identity.signed_in or not settings.in_space:
        store = TakeStore.for_identity(settings, identity)
    log.info("session started (%s, %s)", identity.source, "store" if store else "no store")
    return Session(settings=settings, identity=identity, store=store, problem=problem, sign_in_retry=retry)


def recheck_sign_in(sess: Session) -> bool:
    """Take up a background sign-in check that has ended (voxspace.sign_in_retry): the person's own
    store once the Hub answered, or why it refused. True when the status line must be shown again."""
    retry = sess.sign_in_retry
    if retry is None or not retry.finished:
        return False
    sess.sign_in_retry = None
    if retry.identity is None:
        sess.problem = retry.refused.user_message if retry.refused else None
        return True
    sess.identity = retry.identity
    sess.store = TakeStore.for_identity(sess.settings, retry.identity)
    sess.problem, sess.notice = None, retry.recovered_sentence()
    return True


def status_line(sess: Session) -> str:
    """Who is signed in and where their takes go, in one plain sentence."""
    prefix = "".join(f"{line} " for line in (sess.notice, sess.problem) if line)
    return prefix + _where(sess)


def _where(sess: Session) -> str:
    if sess.identity.signed_in and sess.store is not None:
        kept = f" {sess.store.storage.sentence()}" if sess.settings.in_space else ""
        return (f"Signed in as **{sess.identity.username}**. Your takes go to your private dataset "
                f"repo **{sess.store.repo_id}**.{kept}")
    if sess.store is not None:
        return (f"Not signed in. Your takes are kept in a local folder, `{sess.store.stats().location}`, "
                "and can be pushed to a Hugging Face repo later (log in, then run "
                "`python -m voxspace data push`).")
    return ("Not signed in. Sign in with Hugging Face to start recording: your takes go to a private "
            "dataset repo that only you can see.")

