"""On ZeroGPU, from the browser: a signed-in visitor trains the tiny model from the Train tab through
several GPU slices to the WER table, every GPU call billed to them; closing the page pauses the run
at its last checkpoint and Resume, on their return, finishes it.

app.py runs unchanged in ZeroGPU mode (SPACES_ZERO_GPU=true, the real `spaces` package: patching at
start-up, pack at launch(), a forked worker per call) against the local device API of
tests/support/zerogpu_api.py, which records each call's X-IP-Token; the browser sends that header
with every request, as the Hub's proxy does for a Space's visitor. The one seam is the worker's move
of the weights to CUDA on a machine without a GPU (tests/support/zerogpu_seam.py; nothing is
replaced where a GPU exists).
"""

from __future__ import annotations

import re
import secrets
import time

import pytest
from huggingface_hub import HfApi
from playwright.sync_api import expect

from tests.browser import pages
from tests.browser.conftest import AppServer, space_env
from tests.support.zerogpu_api import DeviceAPI, visitor_token, zerogpu_env
from tests.train.conftest import TEXTS, make_take

pytestmark = [pytest.mark.browser, pytest.mark.slow]
USER = "zoe"
CAP_S = 60  # VOXSPACE_SLICE_CAP_S: the longest call the Space asks for
RUN_TIMEOUT_MS = 300_000  # a bound for forked GPU calls on a loaded 2-core machine, not a measurement


def test_a_visitor_trains_on_zerogpu_billed_to_them_and_a_closed_page_pauses_the_run(
    mic_browser, hub, tiny_voxtral_dir, tmp_path
):
    token = f"hf_zoe{secrets.token_hex(8)}"
    hub.add_user(token, USER)
    for seq, text in enumerate(TEXTS):  # six takes in zoe's dataset: four to train on, two held out
        make_take(tmp_path / "takes", seq, text)
    api = HfApi(endpoint=hub.url, token=token)
    api.create_repo(f"{USER}/voxspace-recordings", repo_type="dataset", private=True)
    api.upload_folder(
        repo_id=f"{USER}/voxspace-recordings", repo_type="dataset", folder_path=tmp_path / "takes"
    )
    device = DeviceAPI(max_duration_s=CAP_S).start()
    env = {**space_env(hub, tmp_path), **zerogpu_env(device, tmp_path / "offload")}
    env.update(
        VOXSPACE_BASE_MODEL=str(tiny_voxtral_dir),
        VOXSPACE_SLICE_CAP_S=str(CAP_S),
        VOXSPACE_SLICE_MAX_STEPS="1",
    )  # one step per GPU call: four training slices
    app = AppServer(env, tmp_path, own_group=True).start()
    # while the base loaded, before launch(), the port said so (voxspace/startup_page.py)
    assert any(f"Loading the speech model <code>{tiny_voxtral_dir}</code>" in p for p in app.loading_pages)
    headers = {"X-IP-Token": visitor_token(USER)}
    try:
        ctx, page = pages.new_visitor(mic_browser, app.url, hub.url, USER, headers=headers)
        pages.sign_in(page, USER)
        pages.start_tiny_run(page, takes=6, epochs=2, batch=2, precision="bf16")  # 4 steps
        progress = page.locator("#train-progress")
        expect(progress).to_contain_text(re.compile(r"step [1-3] of 4"), timeout=RUN_TIMEOUT_MS)
        ctx.close()  # the visitor leaves mid-run: no page of theirs is open
        deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
        while "Paused: the page was closed" not in app.log():
            assert time.monotonic() < deadline, app.log()[-3000:]
            time.sleep(0.2)
        at_pause = len(device.calls)
        paused_at = int(re.findall(r"Paused: the page was closed.*\(step (\d)/4\)", app.log())[-1])
        # after the slice going on when the page closed (at step 4: before the evaluation after)
        assert 1 <= paused_at <= 4 and at_pause == 1 + paused_at  # evaluation before, then the slices
        time.sleep(2)
        assert len(device.calls) == at_pause  # no GPU call billed to zoe while she is away

        ctx, page = pages.new_visitor(mic_browser, app.url, hub.url, USER, headers=headers)
        pages.sign_in(page, USER)
        page.get_by_role("tab", name="Train").click()
        status = page.locator("#train-status")
        expect(status).to_contain_text("Paused: the page was closed")
        page.get_by_role("button", name=f"Resume (step {paused_at} of 4)").click()
        expect(status).to_contain_text(re.compile(r"Done|stopped|failed"), timeout=RUN_TIMEOUT_MS)
        expect(status).to_contain_text("Done")
        expect(page.locator("#train-progress")).to_contain_text("step 4 of 4")
        expect(page.locator("#train-scores")).to_contain_text("Word error rate (WER)")
        expect(page.locator("#train-per-take")).to_contain_text(TEXTS[1])  # a held-out reference
        ctx.close()
    finally:
        app.stop()
        device.stop()
    # evaluation before, four one-step slices (some before the pause, the rest after Resume),
    # evaluation after: each one GPU call, all approved, all billed to zoe, none over the cap
    calls = device.calls
    assert len(calls) == 6 and all(c.answer == "approved" and not c.failed for c in calls)
    assert {c.visitor for c in calls} == {USER}
    assert all(0 < c.duration_s <= CAP_S for c in calls)
    assert device.seconds_used(USER) > 0 and device.seconds_used(None) == 0
    assert len(re.findall(r"base model .* loaded in", app.log())) == 1  # at start-up, never in a call
