"""A sign-in check the Hub could not answer at page load is checked again in the background, with
backoff; once it answers, the page's session becomes the person's own, the takes recorded meanwhile
go to their repo, and the status line says so. A refused token stops the checking."""

from __future__ import annotations

import dataclasses

import pytest

from tests.signals import distinct_takes
from voxspace.layout import read_folder
from voxspace.settings import SignInRetryConfig
from voxspace.sign_in_retry import WAITING, SignInRetry
from voxspace.store import local_folder
from voxspace.ui.session import recheck_sign_in, start_session, status_line

pytestmark = pytest.mark.usefixtures("close_stores", "fresh_whoami_cache")


@pytest.fixture
def alice_local(hub_tokens, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", hub_tokens["alice"])


def _settings(hub_settings, first_s: float, max_s: float):
    return dataclasses.replace(hub_settings, sign_in_retry=SignInRetryConfig(first_s=first_s, max_s=max_s))


def test_the_backoff_doubles_honours_retry_after_and_stays_under_its_cap():
    cfg = SignInRetryConfig(first_s=5, max_s=300)
    assert [cfg.delay_s(n) for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 300, 300]
    assert cfg.delay_s(1, retry_after_s=30) == 30 and cfg.delay_s(4, retry_after_s=30) == 40
    assert cfg.delay_s(1, retry_after_s=2580) == 300  # whoami is cheap: ask again within 5 min


def test_a_sign_in_the_hub_could_not_answer_comes_back_with_the_takes_recorded_meanwhile(
    hub, hub_settings, alice_local
):
    settings = _settings(hub_settings, first_s=3600, max_s=3600)  # it checks when told to, below
    before = hub.calls("/api/whoami-v2")
    hub.fail_next("whoami", 1, status=429, retry_after=2580)
    sess = start_session(settings, profile=None, token=None)
    assert sess.store.local_only and sess.problem == WAITING and WAITING in status_line(sess)
    sess.store.save(*distinct_takes()(), text="recorded while the Hub was away", language="en", phrase_id="a")
    assert not recheck_sign_in(sess)  # still waiting: nothing to show again

    sess.sign_in_retry.try_now()
    assert sess.sign_in_retry.wait(30)
    assert recheck_sign_in(sess)
    line = status_line(sess)
    assert (
        "Hugging Face answered again: you are signed in as **alice**, and the 1 take recorded "
        "meanwhile was moved to your repo." in line
    )
    assert "Signed in as **alice**" in line and WAITING not in line
    assert sess.identity.username == "alice" and not sess.store.local_only
    assert sess.store.flush(30), sess.store.stats()
    on_hub = read_folder(hub.checkout(sess.store.repo_id, "dataset"))
    assert [lt.take.text for lt in on_hub] == ["recorded while the Hub was away"]
    assert not read_folder(local_folder(settings))
    assert hub.calls("/api/whoami-v2") == before + 2  # the failed check at load, the one that answered
    assert not recheck_sign_in(sess)  # said once


def test_the_background_check_backs_off_until_the_hub_answers(hub, hub_settings, alice_local):
    settings = _settings(hub_settings, first_s=0.01, max_s=0.05)
    before = hub.calls("/api/whoami-v2")
    hub.fail_next("whoami", 4, status=429, retry_after=2580)  # the load's check, then three more
    sess = start_session(settings, profile=None, token=None)
    retry = sess.sign_in_retry
    assert retry.wait(30)
    assert retry.identity.username == "alice" and retry.attempts == 4
    assert retry.delays == [0.01, 0.05, 0.05, 0.05]  # Retry-After honoured up to the cap
    assert hub.calls("/api/whoami-v2") == before + 5
    assert SignInRetry.start(settings, retry.identity.token) is not retry  # a later failure starts anew


def test_a_refused_token_is_not_checked_again(hub, hub_settings, alice_local):
    settings = _settings(hub_settings, first_s=0.01, max_s=0.05)
    hub.fail_next("whoami", 1, status=401)
    sess = start_session(settings, profile=None, token=None)
    assert sess.sign_in_retry is None and "refused your sign-in token" in sess.problem

    hub.fail_next("whoami", 1, status=429, retry_after=2580)  # passing, at load
    hub.fail_next("whoami", 1, status=401)  # then the token is refused
    sess = start_session(settings, profile=None, token=None)
    assert sess.sign_in_retry is not None and sess.sign_in_retry.wait(30)
    assert recheck_sign_in(sess)
    assert sess.sign_in_retry is None and sess.store.local_only
    assert "refused your sign-in token" in status_line(sess)
