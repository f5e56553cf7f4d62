"""kill -9 of the app after takes are acknowledged but before they reach the Hub loses nothing."""

from __future__ import annotations

import re
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
    launch_browser, speech_then_silence_wav, hub, tmp_path
):
    """No mounted bucket: the app is killed AND its disk wiped while takes wait for a commit; the
    same browser, reloaded, sends them again (IndexedDB), each once, and forgets them once the Hub
    has them. A saved take is kept from the page's own recording; a hands-free take, cut from
    streamed chunks on the server, is handed back to the page (ui.unsent.hand_back); an uploaded
    file is kept by name only, and the reloaded page says to upload it again."""
    from tests.signals import speech, wav_bytes

    env = {**space_env(hub, tmp_path), "VOXSPACE_STORAGE": "ephemeral"}
    # The fake microphone replays its file identically in every new browser context, so the takes
    # of the tests above are the same audio as ours: start from an empty repo, or the re-send
    # would rightly be recognised as audio the repo already holds.
    hub.delete_repo(REPO, "dataset")
    browser = launch_browser(f"{speech_then_silence_wav}%noloop")  # each recording: speech, then silence
    app = AppServer(env, tmp_path).start()
    try:
        ctx, page = pages.new_visitor(browser, app.url, hub.url, USER)
        pages.sign_in(page, USER)
        expect(page.locator("#identity-status")).to_contain_text("your browser keeps a copy")
        hub.refuse_writes()
        (tmp_path / "mine.wav").write_bytes(wav_bytes(*speech("twenty one twenty two")))
        (tmp_path / "t.csv").write_text("file_name,text\nmine.wav,twenty one twenty two\n")
        page.get_by_role("button", name="Upload recordings you already have").click()
        page.locator("#upload-files input[type=file]").set_input_files(str(tmp_path / "mine.wav"))
        page.locator("#upload-transcripts input[type=file]").set_input_files(str(tmp_path / "t.csv"))
        expect(page.locator("#upload-transcripts")).to_contain_text(re.compile(r"t\s*\.csv"))  # uploaded
        page.locator("#upload-btn").click()
        expect(page.locator("#upload-status")).to_contain_text("1 of 1 added")  # take 1
        status, read = page.locator("#take-status"), [pages.phrase(page)]
        pages.record(page, 2.0)
        pages.save(page)  # take 2
        expect(page.locator("#phrase .vx-phrase-text")).not_to_have_text(read[-1])
        read.append(pages.phrase(page))
        page.keyboard.press("h")
        expect(status).to_contain_text("Take 3 saved", timeout=40_000)  # hands-free
        page.keyboard.press("h")  # off before another take starts
        expect(page.locator("#progress")).to_contain_text("your browser keeps a copy")
        page.wait_for_function("async () => (await voxspace.keptCount()) === 3", timeout=10_000)

        app.kill()
        shutil.rmtree(app.data_dir)  # the Space's own disk is gone with the restart
        hub.allow_writes()
        app.start()
        # The same browser (the same IndexedDB), signing in to the restarted Space afresh.
        ctx.clear_cookies()
        ctx.add_cookies([{"name": "hub_user", "value": USER, "url": hub.url}])
        page.goto(app.url, timeout=60_000)  # a freshly started app's first page, on a busy machine
        expect(page.locator("#phrase .vx-phrase-text")).to_be_visible(timeout=60_000)
        page.get_by_role("button", name="Sign in with Hugging Face").click()
        expect(page.locator("#identity-status")).to_contain_text(f"Signed in as {USER}", timeout=60_000)
        expect(status).to_contain_text("2 takes your browser kept", timeout=60_000)
        expect(status).to_contain_text("not stored: mine.wav. Please upload it again.")
        takes = pages.wait_for_takes(hub, REPO, 2)
        assert sorted(t.take.text for t in takes) == sorted(read), app.log()
        deadline = time.monotonic() + 30
        while page.evaluate("voxspace.keptCount()") and time.monotonic() < deadline:
            time.sleep(0.5)  # the 2 s progress tick carries the receipts
        assert page.evaluate("voxspace.keptCount()") == 0
        page.goto(app.url)  # nothing kept any more: nothing is sent again, nothing stored twice
        expect(page.locator("#identity-status")).to_contain_text(f"Signed in as {USER}")
        page.wait_for_timeout(3000)
        assert len(pages.takes_in_repo(hub, REPO)) == 2
        ctx.close()
    finally:
        hub.allow_writes()
        app.stop()
