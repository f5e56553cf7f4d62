"""kill -9 of the app after takes are acknowledged but before they reach the Hub loses nothing."""

from __future__ import annotations

import shutil
import time

import pytest
from playwright.sync_api import expect

from tests.browser import pages
from tests.browser.conftest import AppServer, local_env, space_env

pytestmark = pytest.mark.browser

# Its own user: another app process writing alice's repo would leave the shared app's view stale.
USER = "spaceowner"
REPO = f"{USER}/voxspace-recordings"


def _restart_wiped_and_reload(app, hub, ctx, page) -> None:
    """kill -9, the Space's own disk gone with the restart, then the same browser (the same
    IndexedDB) signing in to the restarted Space afresh: the page sends what it kept."""
    app.kill()
    shutil.rmtree(app.data_dir)
    hub.allow_writes()
    app.start()
    ctx.clear_cookies()
    ctx.add_cookies([{"name": "hub_user", "value": USER, "url": hub.url}])
    page.goto(app.url)
    expect(page.locator("#phrase .vx-phrase-text")).to_be_visible()
    page.get_by_role("button", name="Sign in with Hugging Face").click()
    expect(page.locator("#identity-status")).to_contain_text(f"Signed in as {USER}", timeout=60_000)
    expect(page.locator("#take-status")).to_contain_text("saved again", timeout=60_000)


def _wait_until_nothing_kept(page, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while page.evaluate("voxspace.keptCount()") and time.monotonic() < deadline:
        time.sleep(0.5)  # the 2 s progress tick carries the receipts
    assert page.evaluate("voxspace.keptCount()") == 0


@pytest.mark.parametrize("where", ["space", "local"])
def test_acknowledged_takes_survive_sigkill_before_the_push(mic_browser, hub, hub_tokens, tmp_path, where):
    env = space_env(hub, tmp_path) if where == "space" else local_env(hub, tmp_path, hub_tokens[USER])
    app = AppServer(env, tmp_path).start()
    try:
        ctx, page = pages.new_visitor(mic_browser, app.url, hub.url, USER)
        if where == "space":
            pages.sign_in(page, USER)
        else:  # locally the token in HF_TOKEN is who you are
            expect(page.locator("#identity-status")).to_contain_text(f"Signed in as {USER}")
        before = {t.take.take_id for t in pages.takes_in_repo(hub, REPO)}
        hub.refuse_writes()  # every push now fails: the takes can only be on this machine
        read = []
        for _ in range(2):
            read.append(pages.phrase(page))
            pages.record(page, 2.0)
            pages.save(page)  # acknowledged
            expect(page.locator("#phrase .vx-phrase-text")).not_to_have_text(read[-1])
        expect(page.locator("#progress")).to_contain_text("waiting to upload")
        ctx.close()
        app.kill()
        assert {t.take.take_id for t in pages.takes_in_repo(hub, REPO)} == before  # nothing pushed yet

        hub.allow_writes()
        app.start()
        if where == "space":
            # No visitor token is ever written to disk, so the takes wait for the owner's next visit:
            # signing in hands the restarted app their token, and it pushes what the killed run kept.
            ctx, page = pages.new_visitor(mic_browser, app.url, hub.url, USER)
            pages.sign_in(page, USER)
            ctx.close()
        # Locally, start-up itself pushes them (recover_pending in a background thread).
        takes = pages.wait_for_takes(hub, REPO, len(before) + 2)
        new = [t.take.text for t in takes if t.take.take_id not in before]
        assert sorted(new) == sorted(read), app.log()
        # No token ever reaches the app's log or anything it wrote to disk.
        written = [app.log().encode()] + [p.read_bytes() for p in app.data_dir.rglob("*") if p.is_file()]
        assert not any(hub_tokens[USER].encode() in blob for blob in written)
        assert not any(b"hf_oauth_" in blob for blob in written)
    finally:
        hub.allow_writes()
        app.stop()


def test_a_space_without_storage_loses_nothing_the_browser_sends_kept_takes_again(
    mic_browser, hub, hub_tokens, tmp_path
):
    """No mounted bucket: the app is killed AND its disk wiped while takes wait for the Hub; the
    same browser, reloaded, sends them again (IndexedDB), and forgets them once the Hub has them."""
    env = {**space_env(hub, tmp_path), "VOXSPACE_STORAGE": "ephemeral"}
    # The fake microphone replays its file identically in every new browser context, so the takes
    # of the tests above are the same audio as ours: start from an empty repo, or the re-send
    # would rightly be recognised as audio the repo already holds.
    hub.delete_repo(REPO, "dataset")
    app = AppServer(env, tmp_path).start()
    try:
        ctx, page = pages.new_visitor(mic_browser, app.url, hub.url, USER)
        pages.sign_in(page, USER)
        expect(page.locator("#identity-status")).to_contain_text("your browser keeps a copy")
        before = {t.take.take_id for t in pages.takes_in_repo(hub, REPO)}
        hub.refuse_writes()
        read = []
        for i in range(2):
            read.append(pages.phrase(page))
            pages.record(page, 2.0 + 0.4 * i)  # the fake microphone restarts its file: vary the length
            pages.save(page)
            expect(page.locator("#phrase .vx-phrase-text")).not_to_have_text(read[-1])
        expect(page.locator("#progress")).to_contain_text("your browser keeps a copy")
        assert page.evaluate("voxspace.keptCount()") == 2
        _restart_wiped_and_reload(app, hub, ctx, page)
        takes = pages.wait_for_takes(hub, REPO, len(before) + 2)
        new = [t.take.text for t in takes if t.take.take_id not in before]
        assert sorted(new) == sorted(read), app.log()
        _wait_until_nothing_kept(page)
        page.goto(app.url)  # nothing kept any more: nothing is sent again, nothing stored twice
        expect(page.locator("#identity-status")).to_contain_text(f"Signed in as {USER}")
        page.wait_for_timeout(3000)
        assert len(pages.takes_in_repo(hub, REPO)) == len(before) + 2
        ctx.close()
    finally:
        hub.allow_writes()
        app.stop()


def test_hands_free_takes_on_a_space_without_storage_are_kept_by_the_browser_too(
    launch_browser, speech_then_silence_wav, hub, tmp_path
):
    """Hands-free takes are cut from streamed chunks on the server, so the page has no file of its
    own: the server hands each saved take back to it (ui.unsent.hand_back). Killed and wiped while
    they wait for a commit, the app gets them again from the reloaded page, each once. An uploaded
    file is kept by name only: the reloaded page says it must be uploaded again."""
    from tests.signals import speech, wav_bytes

    env = {**space_env(hub, tmp_path), "VOXSPACE_STORAGE": "ephemeral"}
    hub.delete_repo(REPO, "dataset")  # the takes of the tests above are the same audio
    browser = launch_browser(f"{speech_then_silence_wav}%noloop")  # each take: speech, then silence
    app = AppServer(env, tmp_path).start()
    try:
        ctx, page = pages.new_visitor(browser, app.url, hub.url, USER)
        pages.sign_in(page, USER)
        hub.refuse_writes()
        (tmp_path / "mine.wav").write_bytes(wav_bytes(*speech("twenty one twenty two")))
        (tmp_path / "t.csv").write_text("file_name,text\nmine.wav,twenty one twenty two\n")
        page.get_by_role("button", name="Upload recordings you already have").click()
        page.locator("#upload-files input[type=file]").set_input_files(str(tmp_path / "mine.wav"))
        page.locator("#upload-transcripts input[type=file]").set_input_files(str(tmp_path / "t.csv"))
        expect(page.locator("#upload-transcripts")).to_contain_text("t.csv")
        page.locator("#upload-btn").click()
        expect(page.locator("#upload-status")).to_contain_text("1 of 1 added")
        status, read = page.locator("#take-status"), [pages.phrase(page)]
        page.keyboard.press("h")
        expect(status).to_contain_text("Take 2 saved", timeout=40_000)  # the upload was take 1
        read.append(pages.phrase(page))
        expect(status).to_contain_text("Take 3 saved", timeout=40_000)
        page.keyboard.press("h")  # off before a third take starts
        page.wait_for_function("async () => (await voxspace.keptCount()) === 3", timeout=10_000)
        _restart_wiped_and_reload(app, hub, ctx, page)
        expect(status).to_contain_text("not stored: mine.wav. Please upload it again.")
        takes = pages.wait_for_takes(hub, REPO, 2)
        assert sorted(t.take.text for t in takes) == sorted(read), app.log()
        _wait_until_nothing_kept(page)
        assert len(pages.takes_in_repo(hub, REPO)) == 2  # each once; the upload is not there
        ctx.close()
    finally:
        hub.allow_writes()
        app.stop()
