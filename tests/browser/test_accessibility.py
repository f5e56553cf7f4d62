"""axe-core on every tab, signed in and not: zero serious or critical violations (issue 6)."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.browser import pages

pytestmark = pytest.mark.browser

TABS = ("Record", "Train", "Publish")


def _serious(page) -> list[str]:
    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {v['help']} -> {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("signed_in", [False, True], ids=["visitor", "signed-in"])
def test_every_tab_has_no_serious_or_critical_axe_violation(mic_browser, space_app, hub, signed_in):
    ctx, page = pages.new_visitor(mic_browser, space_app.url, hub.url, "alice")
    try:
        if signed_in:
            pages.sign_in(page, "alice")
        found = {}
        for tab in TABS:
            page.get_by_role("tab", name=tab).click()
            page.wait_for_timeout(300)
            found[tab] = _serious(page)
        # The sections folded away on the Record tab are checked open too.
        page.get_by_role("tab", name="Record").click()
        for section in ("Hands-free settings", "Your own phrases", "Upload recordings you already have",
                        "Import a Hub dataset"):
            page.get_by_role("button", name=section).click()
        page.wait_for_timeout(300)
        found["Record, all open"] = _serious(page)
        if signed_in:  # and while recording, when the page looks most different
            page.evaluate("document.activeElement.blur()")
            page.keyboard.press("r")
            expect(page.locator("#vx-rec-state")).to_contain_text("Recording")
            found["Record, recording"] = _serious(page)
            page.keyboard.press("r")
            expect(page.locator("#take-audio button.play-pause-button")).to_be_visible()
            found["Record, take in the player"] = _serious(page)
        assert not any(found.values()), {k: v for k, v in found.items() if v}
    finally:
        ctx.close()
