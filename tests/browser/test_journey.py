"""The whole journey as a new visitor of the Space walks it (issue 4, Tests): sign in, record six
takes with the fake microphone, train the tiny Voxtral with the quick preset, read the WER table,
publish the adapter, create the demo Space and get its link; then the local Hub holds each piece.

Its own app server: the session one has no VOXSPACE_BASE_MODEL, and a new user ("journey") keeps
the counts free of other modules' takes."""

from __future__ import annotations

import re
import secrets

import pytest
from huggingface_hub import ModelCard
from playwright.sync_api import expect

from tests.browser import pages
from tests.browser.conftest import AppServer, space_env

pytestmark = [pytest.mark.browser, pytest.mark.slow]
USER = "journey"
BASE_ID = "alice/journey-tiny-voxtral"
RUN_TIMEOUT_MS = 240_000  # a whole tiny run on a loaded 2-core machine; a bound, not a measurement


@pytest.fixture(scope="module")
def journey_app(hub, hub_tokens, tiny_voxtral_dir, tmp_path_factory):
    hub.add_user(f"hf_journey{secrets.token_hex(8)}", USER)
    # The base is a Hub repo, as in a real Space: the demo Space it creates must load the same base,
    # and a local folder cannot be given to a Space (it is refused with a sentence).
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.url, token=hub_tokens["alice"])
    api.create_repo(BASE_ID, exist_ok=True)
    api.upload_folder(repo_id=BASE_ID, folder_path=str(tiny_voxtral_dir))
    workdir = tmp_path_factory.mktemp("journey-app")
    env = space_env(hub, workdir)
    env["VOXSPACE_BASE_MODEL"] = BASE_ID
    app = AppServer(env, workdir).start()
    yield app
    app.stop()


def test_a_new_user_goes_from_sign_in_to_a_demo_link(mic_browser, journey_app, hub):
    ctx, page = pages.new_visitor(mic_browser, journey_app.url, hub.url, USER)
    try:
        _walk(page, hub)
    finally:
        ctx.close()


def _walk(page, hub) -> None:
    dataset = f"{USER}/voxspace-recordings"
    # Sign in and record six takes.
    pages.sign_in(page, USER)
    expect(page.locator("#identity-status")).to_contain_text(dataset)
    read = []
    for _ in range(6):
        read.append(pages.phrase(page))
        pages.record(page, 2.0)
        pages.save(page)
        expect(page.locator("#phrase .vx-phrase-text")).not_to_have_text(read[-1])
    expect(page.locator("#progress")).to_contain_text("6 takes saved")
    takes = pages.wait_for_takes(hub, dataset, 6)
    assert sorted(t.take.text for t in takes) == sorted(read)

    # Train the tiny model: the quick preset, one pass in fp32 (no 8-bit kernels on this CPU).
    page.get_by_role("tab", name="Train").click()
    expect(page.get_by_label("quick")).to_be_checked()
    pages.start_tiny_run(page, takes=6)
    status = page.locator("#train-status")
    expect(status).to_contain_text(re.compile(r"✓ Done|stopped|failed"), timeout=RUN_TIMEOUT_MS)
    expect(status).to_contain_text("Done")

    # The WER table: before and after, as percentages.
    wer_row = page.locator("#train-scores").get_by_role("row", name=re.compile(r"^Word error rate"))
    pct = re.compile(r"^\s*\d+\.\d%\s*$")  # gradio pads each cell with spaces
    expect(wer_row.get_by_role("gridcell")).to_have_text(["Word error rate (WER)", pct, pct, re.compile("%")])
    shown_wer = sorted(c.strip() for c in wer_row.get_by_role("gridcell").all_inner_texts()[1:3])

    # Publish the adapter (public, so the demo can load it without a token).
    page.get_by_role("tab", name="Publish").click()
    expect(page.locator("#publish-run input")).to_have_value(re.compile(r"^run-"))
    run = page.locator("#publish-run input").input_value()
    model = f"{USER}/voxtral-{run}"
    page.get_by_label("Public: anyone can see and download it").check()
    # A random tiny model is never better than its base: the page says so, and publishing needs a tick.
    page.get_by_label("Publish even if it is not better than the base model").check()
    page.get_by_role("button", name="Publish the adapter").click()
    expect(page.locator("#publish-status")).to_contain_text(f"Published to {model}", timeout=60_000)

    # Create the demo Space and follow its build until it runs; the link is on the page.
    page.get_by_role("button", name="Demo Space").click()
    expect(page.locator("#demo-adapter input, #demo-adapter textarea")).to_have_value(model)
    page.get_by_role("button", name="Create the demo Space").click()
    space = f"{model}-demo"
    link = f"{hub.url}/spaces/{space}"
    demo = page.locator("#demo-status")
    expect(demo).to_contain_text(f"{space}: running.", timeout=60_000)
    expect(demo).to_contain_text(link)

    # The local Hub holds each piece.
    assert len(pages.takes_in_repo(hub, dataset)) == 6
    files = hub.list_files(model)
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= set(files)
    card = ModelCard(hub.read_file(model, "README.md").decode())
    card_wer = [r.metric_value for r in card.data.eval_results if r.metric_type == "wer"]
    assert sorted(f"{100 * v:.1f}%" for v in card_wer) == shown_wer  # the card says what the page said
    assert card.data.datasets == [dataset]
    assert hub.repo_exists(space, "space")
    variables = hub.space_variables(space)
    assert variables["ADAPTER_ID"] == model and variables["BASE_MODEL_ID"] == BASE_ID
    assert hub.space_state(space)["stage"] == "RUNNING"
