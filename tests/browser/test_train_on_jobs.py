"""From the Train tab in a Space: a visitor signed in with the `jobs` scope sends a tiny run to a
Hugging Face Job on their own account, follows it to the WER table, then cancels a second one.

The local Hub runs each Job's command as a process from this checkout (tests/support/jobs_server.py):
the seam is the Space's Docker image, which it does not pull.
"""

from __future__ import annotations

import re
import secrets

import pytest
from huggingface_hub import HfApi
from playwright.sync_api import expect

from tests.browser import pages
from tests.browser.conftest import AppServer, space_env
from tests.train.conftest import TEXTS, make_take

pytestmark = [pytest.mark.browser, pytest.mark.slow]
RUN_TIMEOUT_MS = 420_000  # a Job's process imports torch and trains the tiny model on a loaded 2-core box


def test_a_run_on_jobs_is_followed_to_the_wer_table_and_another_is_cancelled(
    mic_browser, hub, hub_tokens, tiny_voxtral_dir, tmp_path
):
    name = f"recordings-{secrets.token_hex(4)}"  # alice's takes, already on her dataset repo
    api = HfApi(endpoint=hub.url, token=hub_tokens["alice"])
    api.create_repo(f"alice/{name}", repo_type="dataset", private=True)
    for seq, text in enumerate(TEXTS):
        make_take(tmp_path / "takes", seq, text)
    api.upload_folder(repo_id=f"alice/{name}", repo_type="dataset", folder_path=str(tmp_path / "takes"))
    env = space_env(hub, tmp_path)
    env.update(
        {
            "OAUTH_SCOPES": "openid profile contribute-repos jobs",
            "VOXSPACE_DATASET_REPO_NAME": name,
            "VOXSPACE_BASE_MODEL": str(tiny_voxtral_dir),
        }
    )
    app = AppServer(env, tmp_path).start()
    try:
        ctx, page = pages.new_visitor(mic_browser, app.url, hub.url, "alice")
        pages.sign_in(page, "alice")
        page.get_by_role("tab", name="Train").click()
        page.get_by_role("button", name="Advanced settings").click()
        page.get_by_label("Epochs (passes over the takes)").fill("1")
        page.get_by_label("Batch size").fill("2")
        page.get_by_label("fp32").check()
        page.get_by_role(
            "button", name=re.compile("Train on Hugging Face Jobs")
        ).first.click()  # the accordion
        expect(page.locator("#train-jobs-estimate")).to_contain_text("$0.80/h")
        page.locator("#train-jobs-start").click()

        status = page.locator("#train-status")
        expect(status).to_contain_text(re.compile(r"Done|stopped|failed"), timeout=RUN_TIMEOUT_MS)
        expect(status).to_contain_text("Done")
        expect(page.locator("#train-progress")).to_contain_text("step 2 of 2")
        expect(page.locator("#train-log textarea")).to_have_value(re.compile("Results saved"))
        expect(page.locator("#train-scores")).to_contain_text("Word error rate (WER)")
        expect(page.locator("#train-per-take")).to_contain_text(TEXTS[1])
        runs = list((app.data_dir / "runs" / "alice").glob("job-*/adapter/adapter_config.json"))
        assert len(runs) == 1  # the adapter came home, where the Publish tab looks

        page.locator("#train-jobs-start").click()  # a second Job, cancelled at once
        expect(page.get_by_role("button", name="Cancel")).to_be_enabled()
        page.get_by_role("button", name="Cancel").click()
        expect(status).to_contain_text("Cancelled", timeout=120_000)
        expect(page.get_by_role("button", name="Start training")).to_be_enabled()
        stages = sorted(
            j["status"]["stage"]
            for j in hub._jobs.values()
            if j["labels"]
            and j["labels"].get("name", "").startswith("voxspace-job-")
            and j["owner"]["name"] == "alice"
            and j["environment"].get("PYTHONUNBUFFERED")
        )
        assert "CANCELED" in stages and "COMPLETED" in stages
        assert hub_tokens["alice"] not in app.log()
        ctx.close()
    finally:
        app.stop()
