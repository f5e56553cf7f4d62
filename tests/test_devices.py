"""Two devices of one person (two data folders, two pushers) record into one dataset repo at once:
no two takes share a seq or a path, and the card lists every language of both.

The local Hub answers a commit whose parent is no longer the head with 412, as the Hub does
("A commit has happened since. Please refresh and try again."); holding both devices' commits until
both have arrived makes one of them meet it every run."""

from __future__ import annotations

import dataclasses
import time

import pytest
import yaml

from tests.signals import distinct_takes
from voxspace.auth import Identity
from voxspace.layout import read_folder
from voxspace.store import MAX_CONFLICTS, TakeStore

pytestmark = pytest.mark.usefixtures("close_stores")


@pytest.fixture(scope="module")
def clip():
    """`clip()` -> (wav bytes, seconds): new audio each call, as from a real microphone."""
    return distinct_takes("one two three four")


def _devices(hub_settings, hub_tokens, tmp_path) -> tuple[TakeStore, TakeStore]:
    alice = Identity("alice", hub_tokens["alice"], "local")
    laptop = TakeStore.for_identity(dataclasses.replace(hub_settings, data_dir=tmp_path / "laptop"), alice)
    phone = TakeStore.for_identity(dataclasses.replace(hub_settings, data_dir=tmp_path / "phone"), alice)
    assert laptop.repo_id == phone.repo_id and laptop.root != phone.root
    return laptop, phone


def _card_languages(hub, repo_id: str) -> list[str]:
    readme = hub.read_file(repo_id, "README.md", repo_type="dataset").decode()
    return yaml.safe_load(readme.split("---")[1])["language"]


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_two_devices_saving_at_once_never_share_a_seq_and_the_card_lists_both_languages(
    hub, hub_settings, hub_tokens, clip, tmp_path
):
    laptop, phone = _devices(hub_settings, hub_tokens, tmp_path)
    repo = laptop.repo_id
    hub.pause_writes(commits_only=True)
    try:
        saved = []
        for i in range(3):  # interleaved: each device numbers its takes 0, 1, 2 from what it knows
            saved.append(laptop.save(*clip(), text=f"laptop {i}", language="en", phrase_id=f"en-{i}"))
            saved.append(phone.save(*clip(), text=f"phone {i}", language="fr", phrase_id=f"fr-{i}"))
        assert [t.seq for t in saved] == [0, 0, 1, 1, 2, 2]  # the collision the Hub must not keep
        _wait_for(lambda: hub.waiting_writes() == 2)  # both first commits sent on the same head
    finally:
        hub.allow_writes()
    assert laptop.flush(60) and phone.flush(60), (laptop.stats(), phone.stats())

    conflicts = [r for r in hub.requests() if r["repo"] == repo and r["status"] == 412]
    assert conflicts and all(r["path"].endswith("/commit/main") for r in conflicts)
    on_hub = [lt.take for lt in read_folder(hub.checkout(repo, "dataset"))]
    assert sorted(t.text for t in on_hub) == sorted(t.text for t in saved)  # every take, once
    assert sorted(t.seq for t in on_hub) == list(range(6))
    assert len({t.folder for t in on_hub}) == 6
    for device in ("laptop", "phone"):  # each device's takes keep their recording order
        seqs = [t.seq for t in sorted(on_hub, key=lambda t: t.text) if t.text.startswith(device)]
        assert seqs == sorted(seqs)
    assert _card_languages(hub, repo) == ["en", "fr"]
    for device in (laptop, phone):
        assert device.stats().last_error is None and not read_folder(device.root)


def test_pending_takes_that_collide_with_the_other_devices_are_renumbered_at_sign_in(
    hub, hub_settings, hub_tokens, clip, tmp_path
):
    laptop, phone = _devices(hub_settings, hub_tokens, tmp_path)
    phone.close()  # the phone records offline: its takes wait in its spool
    for i in range(3):
        phone.save(*clip(), text=f"offline {i}", language="fr", phrase_id=f"fr-{i}")
    for i in range(2):
        laptop.save(*clip(), text=f"laptop {i}", language="en", phrase_id=f"en-{i}")
    assert laptop.flush(60)

    TakeStore.close_all()  # the phone is back online: a new process on its folder signs in
    phone = TakeStore.for_identity(phone.settings, Identity("alice", hub_tokens["alice"], "local"))
    assert sorted(t.seq for t in phone.takes()) == [0, 1, 2, 3, 4]
    assert phone.flush(60), phone.stats()
    on_hub = [lt.take for lt in read_folder(hub.checkout(phone.repo_id, "dataset"))]
    assert [(t.text, t.seq) for t in on_hub] == [
        ("laptop 0", 0),
        ("laptop 1", 1),
        ("offline 0", 2),
        ("offline 1", 3),
        ("offline 2", 4),
    ]
    # a split mark, once given, stays: split_for(2..4) would say train, train, test
    assert [t.split for t in on_hub[2:]] == ["train", "test", "train"]
    assert _card_languages(hub, phone.repo_id) == ["en", "fr"]


def test_a_repo_that_keeps_moving_is_said_and_retried_not_lost(hub, hub_settings, hub_tokens, clip, tmp_path):
    laptop, _ = _devices(hub_settings, hub_tokens, tmp_path)
    laptop.save(*clip(), text="first", language="en", phrase_id="en-0")
    assert laptop.flush(30)
    hub.fail_next("commit", MAX_CONFLICTS, status=412)  # another writer wins every race, for a while
    laptop.save(*clip(), text="second", language="en", phrase_id="en-1")
    _wait_for(lambda: laptop.stats().last_error is not None)
    assert "Another device is saving to" in laptop.stats().last_error
    assert "will be retried" in laptop.stats().last_error
    assert laptop.flush(30), laptop.stats()
    assert laptop.stats().last_error is None
    texts = [lt.take.text for lt in read_folder(hub.checkout(laptop.repo_id, "dataset"))]
    assert texts == ["first", "second"]
