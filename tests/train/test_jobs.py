"""The same run on Hugging Face Jobs: launched on the person's account, followed, cancelled, resumed.

The local Hub's Jobs (tests/support/jobs_server.py) run each Job's command as a real process with
the Job's env and secrets only, on a fresh HF_HOME: the tiny Voxtral trains there through
`python -m voxspace.job_entry` and the results come back through the person's checkpoint repo.
The seam is the image: the command runs in this checkout instead of the Space's Docker image.
"""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
from huggingface_hub import HfApi, ModelCard

from voxspace import jobs, publish
from voxspace.auth import Identity
from voxspace.card import BASE_CONFIG, TUNED_CONFIG
from voxspace.errors import BadInput
from voxspace.run_record import RunRecord
from voxspace.train import TrainConfig

from .conftest import make_take

SMALL = dict(precision="fp32", batch_size=2, epochs=1)  # 4 training takes: 2 steps


@pytest.fixture
def settings(hub_settings, tiny_voxtral_dir):
    return dataclasses.replace(
        hub_settings, base_model=str(tiny_voxtral_dir), jobs_image="hf.co/spaces/spaceowner/voxspace"
    )


@pytest.fixture
def alice(hub_tokens) -> Identity:
    return Identity("alice", token=hub_tokens["alice"], source="local")


def _launch(settings, who: Identity, run_dir, data, flavor: str = "l4x1", *, evaluate: bool = True, **config):
    """jobs.launch with the small config (`config` overrides its fields) on `flavor`."""
    return jobs.launch(
        settings,
        who,
        run_dir=run_dir,
        data=data,
        config=TrainConfig(**{**SMALL, **config}),
        flavor_name=flavor,
        evaluate=evaluate,
    )


def _leaks(token: str, *texts: str) -> list[str]:
    return [t[:80] for t in texts if token in t]


@pytest.mark.slow
def test_a_job_trains_with_the_pinned_takes_and_brings_the_results_home(
    settings, alice, recordings, hub, tmp_path
):
    run_dir = tmp_path / "runs" / "on-jobs"
    job = _launch(settings, alice, run_dir, recordings)
    pinned = HfApi(endpoint=hub.url, token=alice.token).dataset_info(recordings).sha
    make_take(tmp_path / "later", 6, "a take recorded after the launch")  # must not reach this run
    HfApi(endpoint=hub.url, token=alice.token).upload_folder(
        repo_id=recordings, repo_type="dataset", folder_path=str(tmp_path / "later")
    )

    lines: list[str] = []
    final = jobs.follow(job, on_line=lines.append, poll_s=0.5)

    assert final.phase == "done", (final.message, hub.job_log(job.record.job_id)[-2000:])
    record = RunRecord.load(run_dir)
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    assert record.finished and record.eval is not None and record.eval.wer_after is not None
    assert record.dataset_revision == pinned and record.n_train_takes == 4  # the takes at launch
    assert [s for s, _ in record.loss_history] == [1, 2] and final.eval == record.eval
    assert final.heldout == record.heldout_loss_history and final.best_step == record.best_step
    assert any(line.startswith("step 2/2") for line in lines)
    stored = hub.job(job.record.job_id)
    assert stored["flavor"] == "l4x1" and stored["spaceId"] == "spaceowner/voxspace"
    assert stored["timeoutSeconds"] == job.record.timeout_min * 60
    # the token is the Job's secret and nowhere else
    assert hub.job_secrets(job.record.job_id) == {"HF_TOKEN": alice.token}
    files = [p.read_text(errors="replace") for p in run_dir.rglob("*.json")]
    assert not _leaks(
        alice.token,
        json.dumps(stored),
        hub.job_log(job.record.job_id),
        hub.log_path.read_text(),
        *lines,
        *files,
    )
    # a page reload or a Space restart finds the same Job and the same results
    again = jobs.attach(settings, alice, run_dir)
    assert again.record.job_id == job.record.job_id and jobs.progress(again).phase == "done"

    # Publish takes the Job's run as a run made here: its adapter, and a card with its WER
    published = publish.publish_adapter(run_dir, "voxtral-from-a-job", alice, settings, anyway=True)
    assert hub.read_file(published.repo_id, "adapter_model.safetensors") == \
        (run_dir / "adapter" / "adapter_model.safetensors").read_bytes()
    card = ModelCard(hub.read_file(published.repo_id, "README.md").decode())
    wer = {r.metric_config: r.metric_value for r in card.data.eval_results if r.metric_type == "wer"}
    assert wer == {BASE_CONFIG: record.eval.wer_before, TUNED_CONFIG: record.eval.wer_after}


def test_refusals_come_before_anything_is_billed(settings, alice, recordings, hub, hub_tokens, tmp_path):
    scopeless = "hf_oauth_alice_without_jobs"
    hub.add_user(scopeless, "alice", kind="oauth", scopes=("openid", "profile", "contribute-repos"))
    oauth = Identity("alice", scopeless, "oauth")
    with pytest.raises(jobs.JobsNotAllowed, match="Start and manage Jobs"):
        _launch(settings, oauth, tmp_path / "a", recordings)

    bob = Identity("bob", hub_tokens["bob"], "local")
    hub.set_credits("bob", 0)
    try:
        api = HfApi(endpoint=hub.url, token=bob.token)
        repo = f"bob/recs-{tmp_path.name[-8:]}"
        api.create_repo(repo, repo_type="dataset", private=True, exist_ok=True)
        for seq, text in enumerate(["one two", "three four", "five six", "seven", "eight nine", "ten"]):
            make_take(tmp_path / "bob-takes", seq, text)
        api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=str(tmp_path / "bob-takes"))
        with pytest.raises(jobs.NoCredits, match=r"positive credit balance to run Jobs.*add credits"):
            _launch(settings, bob, tmp_path / "b", repo)
    finally:
        hub.set_credits("bob", 10)
    assert not (tmp_path / "b" / jobs.JOB_FILE).exists()

    with pytest.raises(BadInput, match="push them to your dataset repo first"):
        _launch(settings, alice, tmp_path / "c", str(tmp_path / "bob-takes"))
    with pytest.raises(BadInput, match="Unknown Jobs hardware 'a42'"):
        _launch(settings, alice, tmp_path / "d", recordings, "a42")
    big = dataclasses.replace(settings, base_model="mistralai/Voxtral-Small-24B-2507")
    with pytest.raises(BadInput, match=r"needs about 40 GB.*l4x1 has 24 GB.*l40sx1"):
        _launch(big, alice, tmp_path / "e", recordings, precision="8bit")
    assert not any(
        j["owner"]["name"] in ("alice", "bob") and j["status"]["stage"] == "RUNNING"
        for j in hub._jobs.values()
    )


def test_plan_scales_with_the_card_and_prices_per_hour():
    config = TrainConfig()
    slow, fast = jobs.plan(config, 500, 40, "t4-small"), jobs.plan(config, 500, 40, "h200")
    assert slow.minutes > fast.minutes > jobs.STARTUP_MIN
    assert slow.cost_usd == pytest.approx(slow.minutes / 60 * 0.40, abs=0.01)
    assert fast.timeout_min >= 2 * fast.minutes and fast.timeout_min % 5 == 0
    assert jobs.plan(config, 500, 40, "l4x1", timeout_min=90).timeout_min == 90
    assert "$0.80/h" in jobs.plan(config, 50, 4, "l4x1").describe()
    with pytest.raises(BadInput, match="positive number of minutes"):
        jobs.plan(config, 50, 4, "l4x1", timeout_min=0)


@pytest.mark.slow
def test_cancel_stops_the_job_and_a_killed_job_resumes_as_a_new_job(
    settings, alice, recordings, hub, tmp_path
):
    run_dir = tmp_path / "runs" / "cancelled"
    job = _launch(settings, alice, run_dir, recordings, "a10g-large", evaluate=False)
    jobs.cancel(job)
    stopped = jobs.follow(job, poll_s=0.3)
    assert stopped.phase == "cancelled" and hub.job(job.record.job_id)["status"]["stage"] == "CANCELED"

    hub.job_env["VOXSPACE_CHECKPOINT_EVERY_S"] = "0"  # a checkpoint mirrored after every step
    try:
        run_dir = tmp_path / "runs" / "killed"
        job = _launch(settings, alice, run_dir, recordings, epochs=3, evaluate=False)
        while "checkpoint saved at step" not in hub.job_log(job.record.job_id):
            assert hub.job(job.record.job_id)["status"]["stage"] == "RUNNING", hub.job_log(job.record.job_id)
            time.sleep(0.2)
        hub.kill_job(job.record.job_id)  # the machine goes away mid-run
        failed = jobs.follow(job, poll_s=0.3)
        assert failed.phase == "failed" and "Resume starts a new Job" in failed.message

        again = jobs.launch(settings, alice, run_dir=run_dir, flavor_name="l4x1", resume=True, evaluate=False)
    finally:
        hub.job_env.pop("VOXSPACE_CHECKPOINT_EVERY_S")
    assert again.record.job_id != job.record.job_id and again.record.resumed_from == job.record.job_id
    lines: list[str] = []
    final = jobs.follow(again, on_line=lines.append, poll_s=0.5)
    assert final.phase == "done", hub.job_log(again.record.job_id)[-2000:]
    assert any(line.startswith("Continuing from step") and "step 0" not in line for line in lines)
    record = RunRecord.load(run_dir)
    assert record.finished and record.steps_done == 6 and (run_dir / "adapter").is_dir()
