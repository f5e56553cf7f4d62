"""What a person does on the Record tab, as functions the browser tests share.

Selectors (gradio 6.31): our own controls have elem_ids (#save-btn, #skip-btn, #rerecord-btn,
#take-status, #progress, #phrase). Gradio's recorder: `button.record-button` (Record) and the
visible `button.stop-button` (Stop; a hidden #stop-paused twin exists); after the upload the player
shows `button.play-pause-button[aria-label=Play]`.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, expect

from voxspace import layout

TIMEOUT_MS = 30_000

# A MutationObserver stamps performance.now() when gradio shows Stop (right after MediaRecorder
# starts), and an in-page timer clicks Stop `ms` later: CPU starvation of the driver on a loaded
# 2-core machine cannot stretch the recording. A script click also skips the page's 0.5 s tail.
_ARM_START = """(root) => {
    delete window.__recStart;
    const mo = new MutationObserver(() => {
        const stop = [...root.querySelectorAll("button.stop-button")].find(b => b.getClientRects().length);
        if (stop) { window.__recStart = performance.now(); mo.disconnect(); }
    });
    mo.observe(root, {attributes: true, childList: true, subtree: true});
}"""
_STOP_AFTER = """(root, ms) => new Promise((resolve) => {
    const stop = [...root.querySelectorAll("button.stop-button")].find(b => b.getClientRects().length);
    setTimeout(() => { stop.click(); resolve(); }, Math.max(0, window.__recStart + ms - performance.now()));
})"""


def new_visitor(browser: Browser, app_url: str, hub_url: str, user: str | None,
                extra_permissions: list[str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[BrowserContext, Page]:
    """A fresh browser profile; `user` is who the local Hub's OAuth page signs in. `headers` go with
    every request, as the Hub's proxy adds X-IP-Token to each request of a Space's visitor."""
    ctx = browser.new_context(permissions=["microphone", *(extra_permissions or [])],
                              viewport={"width": 1280, "height": 900}, extra_http_headers=headers)
    if user:
        ctx.add_cookies([{"name": "hub_user", "value": user, "url": hub_url}])
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app_url)
    expect(page.locator("#phrase .vx-phrase-text")).to_be_visible()
    return ctx, page


def sign_in(page: Page, user: str) -> None:
    page.get_by_role("button", name="Sign in with Hugging Face").click()
    expect(page.locator("#identity-status")).to_contain_text(f"Signed in as {user}", timeout=TIMEOUT_MS)
    expect(page.locator("#take-status")).to_contain_text("Press R")


def paste_own_phrases(page: Page, text: str) -> None:
    """Put `text` on the clipboard and paste it with Ctrl+V into "Your own phrases", as a person
    does (needs the clipboard permissions on the context), then press "Use these phrases"."""
    page.locator("#custom-section").get_by_text("Your own phrases").click()
    box = page.locator("#custom-text textarea")
    page.evaluate("(s) => navigator.clipboard.writeText(s)", text)
    box.click()
    page.keyboard.press("Control+V")
    expect(box).to_have_value(text)
    page.locator("#custom-btn").click()


def phrase(page: Page) -> str:
    return page.locator("#phrase .vx-phrase-text").inner_text().strip()


def record(page: Page, seconds: float = 2.5, recorder: str = "#take-audio") -> None:
    """Record `seconds` with the mouse, timed in the page; returns once the take is in the player."""
    root = page.locator(recorder)
    root.evaluate(_ARM_START)
    root.locator("button.record-button").click()
    page.wait_for_function("() => window.__recStart !== undefined", timeout=15_000)
    root.evaluate(_STOP_AFTER, seconds * 1000)
    expect(root.locator("button.play-pause-button")).to_be_visible()
    # The player shows the local recording at once; the server has it once the upload is done.
    expect(page.locator("body[data-vx-take=ready]")).to_be_attached()


def save(page: Page, expect_text: str = "saved (") -> str:
    """Press Save and wait for the answer (a new status line); returns it."""
    status = page.locator("#take-status")
    before = status.inner_text()
    page.locator("#save-btn").click()
    expect(status).not_to_have_text(before)
    expect(status).to_contain_text(expect_text)
    return status.inner_text()


def takes_in_repo(hub, repo_id: str) -> list[layout.LocalTake]:
    return layout.read_folder(hub.checkout(repo_id, repo_type="dataset")) if hub.repo_exists(
        repo_id, "dataset") else []


def wait_for_takes(hub, repo_id: str, n: int, timeout_s: float = 60) -> list[layout.LocalTake]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = takes_in_repo(hub, repo_id)
        if len(found) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def takes_in_folder(root: Path) -> list[layout.LocalTake]:
    return layout.read_folder(root)


def metadata_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for p in folder.glob("data/*/*/metadata.jsonl")
            for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def count_from_progress(page: Page) -> int:
    m = re.search(r"(\d+)\s+takes?\s+saved", page.locator("#progress").inner_text())
    return int(m.group(1)) if m else -1


def start_tiny_run(page: Page, takes: int, *, epochs: int = 1, batch: int = 2, at_once: bool = False,
                   precision: str = "fp32") -> None:
    """Open the Train tab and start an fp32 run, one pass at batch 2 unless told otherwise (no 8-bit
    kernels on this CPU; ZeroGPU offers bf16 only). `at_once`: press Start without waiting for the
    tab's opening to finish."""
    page.get_by_role("tab", name="Train").click()
    if not at_once:
        expect(page.locator("#train-readiness")).to_contain_text(f"{takes} takes")
    page.get_by_role("button", name="Advanced settings").click()
    page.get_by_label("Epochs (passes over the takes)").fill(str(epochs))
    page.get_by_label("Batch size").fill(str(batch))
    page.get_by_label(precision, exact=True).check()
    page.get_by_role("button", name="Start training").click()
