"""From the Train tab, with the keyboard-reachable controls only: a quick run on the tiny Voxtral
shows its progress live and ends with the WER table (issue 3, "Train tab")."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import pages
from tests.browser.conftest import AppServer, space_env
from tests.train.conftest import TEXTS, make_take

pytestmark = pytest.mark.browser
RUN_TIMEOUT_MS = 240_000  # a whole tiny run on a loaded 2-core machine; a bound, not a measurement


def test_a_quick_tiny_run_from_the_train_tab_shows_progress_and_the_wer_table(
    mic_browser, hub, tiny_voxtral_dir, tmp_path
):
    env = space_env(hub, tmp_path)
    for var in ("SYSTEM", "SPACE_ID", "OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES",
                "OPENID_PROVIDER_URL"):
        env.pop(var)  # someone's own machine, no token: takes in the local folder
    env["VOXSPACE_BASE_MODEL"] = str(tiny_voxtral_dir)
    app = AppServer(env, tmp_path)
    for seq, text in enumerate(TEXTS):  # six takes already recorded: four to train on, two held out
        make_take(app.data_dir / "local", seq, text)
    app.start()
    try:
        ctx, page = pages.new_visitor(mic_browser, app.url, hub.url, None)
        # Start pressed while the tab's opening is still being answered (issue 16: a missed event
        # once left the page on "Starting…" for good); the page must follow the run anyway.
        pages.start_tiny_run(page, takes=6, at_once=True)

        status = page.locator("#train-status")
        expect(status).to_contain_text(re.compile("Measuring|Training"))  # live, while it runs
        expect(page.get_by_role("button", name="Cancel")).to_be_enabled()
        # A second tab of the same person, opened mid-run, shows the same run without a click.
        second = ctx.new_page()
        second.goto(app.url)
        second.get_by_role("tab", name="Train").click()
        expect(second.locator("#train-status")).to_contain_text(re.compile("Measuring|Training|Done"))
        expect(page.locator("#train-estimate")).to_contain_text("CPU only")
        # the status kind, not the sentence (a model no better than the base says so in it)
        finished = status.locator(".vx-status[data-state=done], .vx-status[data-state=error]")
        expect(finished).to_be_attached(timeout=RUN_TIMEOUT_MS)
        expect(status).to_contain_text("Done:")
        expect(page.locator("#train-progress")).to_contain_text("step 2 of 2")
        expect(page.locator("#train-log textarea")).to_have_value(re.compile("step 2/2"))
        scores = page.locator("#train-scores")
        expect(scores).to_contain_text("Word error rate (WER)")
        expect(scores).to_contain_text("%")
        expect(page.locator("#train-per-take")).to_contain_text(TEXTS[1])  # a held-out reference
        # The table fits the window (issue 16: the Fine-tuned column sat off-screen): long
        # transcripts wrap instead of pushing columns sideways.
        header = page.locator("#train-per-take").get_by_text("Fine-tuned").first
        expect(header).to_be_visible()
        rect = header.bounding_box()
        assert rect is not None and rect["x"] + rect["width"] <= page.viewport_size["width"]
        expect(page.get_by_role("button", name="Start training")).to_be_enabled()
        # the estimate beside Start is redrawn from the speed this run measured, not left at the guess
        expect(page.locator("#train-estimate")).to_contain_text("from the speed your last run here measured")
        for p in (second, page):  # the other tab, and a reload, show the same finished run
            if p is page:
                p.reload()
                p.get_by_role("tab", name="Train").click()
            expect(p.locator("#train-status")).to_contain_text("Done:")
            expect(p.locator("#train-progress")).to_contain_text("step 2 of 2")
            expect(p.get_by_role("button", name="Start training")).to_be_enabled()
        ctx.close()
    finally:
        app.stop()
