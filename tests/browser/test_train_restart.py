"""A Space restarted in the middle of a training run (its disk wiped, as a Space without persistent
storage is) loses at most a few seconds of it: the visitor signs in again, the Train tab offers
Resume at the step the Hub copy of the checkpoint holds, and the run finishes from there.

The run is in one go, as on a dedicated GPU (this CPU Space has no ZeroGPU); it mirrors its
checkpoint every second here (VOXSPACE_CHECKPOINT_EVERY_S). Real app, real OAuth, real kill -9.
"""

from __future__ import annotations

import re
import secrets
import shutil
import time
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from playwright.sync_api import expect

from tests.browser import pages
from tests.browser.conftest import AppServer, space_env
from tests.train.conftest import TEXTS, make_take
from voxspace import checkpoint

pytestmark = [pytest.mark.browser, pytest.mark.slow]
USER = "restarted"
RUN_TIMEOUT_MS = 240_000  # a bound for a tiny run on a loaded 2-core machine, not a measurement


def _remote_state(hub, token: str) -> dict | None:
    return checkpoint.find_remote_checkpoint(f"{USER}/voxspace-checkpoints", token, hub.url)


def test_a_restart_mid_run_resumes_from_the_hub_copy(mic_browser, hub, tiny_voxtral_dir, tmp_path):
    token = f"hf_restarted{secrets.token_hex(8)}"
    hub.add_user(token, USER)
    takes = tmp_path / "takes"  # six takes already in the person's dataset repo: four train, two held out
    for seq, text in enumerate(TEXTS):
        make_take(takes, seq, text)
    api = HfApi(endpoint=hub.url, token=token)
    api.create_repo(f"{USER}/voxspace-recordings", repo_type="dataset", private=True)
    api.upload_folder(repo_id=f"{USER}/voxspace-recordings", repo_type="dataset", folder_path=takes)

    env = space_env(hub, tmp_path / "space")
    env.update(VOXSPACE_BASE_MODEL=str(tiny_voxtral_dir), VOXSPACE_CHECKPOINT_EVERY_S="1")
    app = AppServer(env, tmp_path).start()
    try:
        ctx, page = pages.new_visitor(mic_browser, app.url, hub.url, USER)
        pages.sign_in(page, USER)
        pages.start_tiny_run(page, takes=6, epochs=40, batch=1)  # 160 short steps
        deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
        while not ((state := _remote_state(hub, token)) and 0 < state["step"] < state["total_steps"]):
            assert time.monotonic() < deadline, app.log()[-3000:]
            time.sleep(0.1)
        ctx.close()
        app.kill()
        at_kill = None  # the newest copy: a push may have landed after the poll, or land just after the kill
        while (later := _remote_state(hub, token)) != at_kill:
            at_kill = later
            time.sleep(1.0)
        assert at_kill["step"] < at_kill["total_steps"] == 160
        shutil.rmtree(Path(env["VOXSPACE_DATA_DIR"]))  # no persistent storage: the disk is gone

        app.start()
        ctx, page = pages.new_visitor(mic_browser, app.url, hub.url, USER)
        pages.sign_in(page, USER)
        page.get_by_role("tab", name="Train").click()
        resume = page.get_by_role("button", name=f"Resume (step {at_kill['step']} of 160)")
        expect(resume).to_be_visible()
        resume.click()
        status = page.locator("#train-status")
        expect(status).to_contain_text(re.compile(r"Done\.|stopped|failed"), timeout=RUN_TIMEOUT_MS)
        expect(status).to_contain_text("Done")
        expect(page.locator("#train-progress")).to_contain_text("step 160 of 160")
        expect(page.locator("#train-scores")).to_contain_text("Word error rate (WER)")
        ctx.close()
        assert _remote_state(hub, token)["step"] == 160
        n = at_kill["step"]  # the trainer went on from the Hub copy, not from step 0
        assert re.search(rf"resumed \S+/restored-step-{n} at step {n}/160", app.log())
    finally:
        app.stop()
