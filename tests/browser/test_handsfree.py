"""Hands-free: countdown, record, stop by itself after silence, save, next phrase (issue 6)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import pages

pytestmark = pytest.mark.browser

REPO = "alice/voxspace-recordings"


def test_one_take_hands_free_stops_on_silence_and_is_saved(launch_browser, speech_then_silence_wav,
                                                            space_app, hub):
    browser = launch_browser(f"{speech_then_silence_wav}%noloop")  # speech once, then silence
    ctx, page = pages.new_visitor(browser, space_app.url, hub.url, "alice")
    try:
        pages.sign_in(page, "alice")
        before = len(pages.takes_in_repo(hub, REPO))
        text = pages.phrase(page)
        page.keyboard.press("h")  # hands-free on, from the keyboard
        expect(page.locator("#vx-countdown")).to_contain_text("Recording in")
        expect(page.locator("#vx-rec-state")).to_contain_text("Recording", timeout=15_000)
        # Nobody presses Stop: the silence after the sentence ends the take.
        expect(page.locator("#take-status")).to_contain_text("saved (", timeout=30_000)
        expect(page.locator("#phrase .vx-phrase-text")).not_to_have_text(text)
        expect(page.locator("#vx-countdown")).to_contain_text("Recording in")  # on to the next phrase
        # The badge agrees with the recorder (issue 16: "● Recording" over an idle recorder).
        expect(page.locator("#handsfree-audio button.stop-button:visible")).to_have_count(0)
        expect(page.locator("#vx-rec-state")).not_to_have_attribute("data-state", "recording")
        page.keyboard.press("h")  # off again before the next take starts
        takes = pages.wait_for_takes(hub, REPO, before + 1)
        assert takes[-1].take.text == text
        assert 1.0 <= takes[-1].take.duration <= 8.0
    finally:
        ctx.close()
