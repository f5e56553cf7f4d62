"""A run keeps the takes it started on: slices, a resume after a restart and both evaluations use them."""

from __future__ import annotations

import json
import secrets
import shutil

import pytest

from tests.train.conftest import make_take
from voxspace import checkpoint
from voxspace.errors import TakesChanged
from voxspace.pinning import TakePins
from voxspace.run_record import RunRecord
from voxspace.train import RUN_SPEC, TrainConfig, Trainer


def _ids(takes) -> list[str]:
    return [t.take.take_id for t in takes]


@pytest.fixture
def data(tmp_path, takes_dir):
    """A copy of the six session takes that a test may add to or damage."""
    return shutil.copytree(takes_dir, tmp_path / "takes")


def test_takes_recorded_after_the_start_wait_for_the_next_run(tmp_path, data):
    run = tmp_path / "run"
    first = Trainer(run, TrainConfig.quick(), data).prepare()
    train, test = _ids(first.train_takes), _ids(first.test_takes)
    make_take(data, 6, "a new training take")  # recorded while the run is paused
    make_take(data, 7, "a new held out take")  # split_for(7) == "test"

    again = Trainer(run).prepare()
    assert (_ids(again.train_takes), _ids(again.test_takes)) == (train, test)
    assert again.new_takes == 2
    spec = json.loads((run / RUN_SPEC).read_text())
    assert [i for i, _ in spec["takes"]["test"]] == test and spec["takes"]["revision"] is None
    # a brand-new run in another folder does take them
    fresh = Trainer(tmp_path / "run-2", TrainConfig.quick(), data).prepare()
    assert "t006" in _ids(fresh.train_takes) and "t007" in _ids(fresh.test_takes)


def test_resume_after_a_restart_trains_and_evaluates_the_pinned_takes(tmp_path, data, base):
    """After a restart only checkpoint/ and summary.json come back from the Hub (no run.json): the
    pins travel in the checkpoint's state.json, so steps, total and both splits stay the same."""
    from voxspace.evaluate import evaluate_run

    run = tmp_path / "run"
    trainer = Trainer(run, TrainConfig.quick(batch_size=1), data, base=base)
    trainer.train_slice(max_steps=1)
    total, train, test = trainer.total_steps, _ids(trainer.train_takes), _ids(trainer.test_takes)
    before = evaluate_run(trainer.model, trainer.processor, trainer.test_takes, max_new_tokens=2)
    trainer.close()
    make_take(data, 6, "a new training take")
    make_take(data, 7, "a new held out take")
    (run / RUN_SPEC).unlink()  # what pull_checkpoint leaves: checkpoint/ + summary.json
    assert checkpoint.read_state(run)["takes"]["train"][0][0] == train[0]

    resumed = Trainer(run, base=base).setup()
    assert (_ids(resumed.train_takes), _ids(resumed.test_takes)) == (train, test)
    assert resumed.total_steps == total and resumed.step == 1 and resumed.new_takes == 2
    assert len(resumed.examples) == len(train)
    report = evaluate_run(
        resumed.model, resumed.processor, resumed.test_takes, before=before, max_new_tokens=2
    )
    assert [r.take_id for r in report.per_take] == test and report.wer_before == before.wer_before
    record = RunRecord.load(run)
    assert record.train_take_ids == train and record.test_take_ids == test
    resumed.close()


def test_a_report_of_other_takes_is_not_reused_as_the_before(tmp_path, data, base):
    """Runs from before pinning stored a 'before' of other takes: it is measured again, not zipped."""
    from voxspace.evaluate import evaluate_run

    model, processor = base
    trainer = Trainer(tmp_path / "run", TrainConfig.quick(), data).prepare()
    report = evaluate_run(model, processor, trainer.test_takes, max_new_tokens=2)
    make_take(data, 7, "a new held out take")
    newest = Trainer(tmp_path / "run-2", TrainConfig.quick(), data).prepare().test_takes[-1]
    more = [*trainer.test_takes, newest]
    again = evaluate_run(model, processor, more, before=report, max_new_tokens=2)
    assert [r.take_id for r in again.per_take] == _ids(more) and again.n_takes == 3


@pytest.mark.parametrize("damage", ["deleted", "re-recorded", "text edited"])
def test_a_pinned_take_that_is_gone_or_changed_stops_the_run_with_a_sentence(tmp_path, data, damage):
    run = tmp_path / "run"
    Trainer(run, TrainConfig.quick(), data).prepare()
    folder = next(data.glob("data/test/t001"))
    if damage == "deleted":
        shutil.rmtree(folder)
    elif damage == "re-recorded":
        make_take(data, 1, "a different sentence entirely")
        (folder / "metadata.jsonl").write_text(
            (folder / "metadata.jsonl").read_text().replace("a different sentence entirely", "open the door")
        )
    else:
        meta = folder / "metadata.jsonl"
        meta.write_text(meta.read_text().replace("open the door", "open the window"))
    with pytest.raises(TakesChanged) as e:
        Trainer(run).prepare()
    assert "start a new run" in e.value.user_message
    assert ("no longer in the recordings" if damage == "deleted" else "were changed") in e.value.user_message


def test_pins_round_trip_and_old_runs_without_pins_still_load():
    pins = TakePins(revision="abc123", train=[("t000", "h0")], test=[("t001", "h1")])
    assert TakePins.from_dict(json.loads(json.dumps(pins.to_dict()))) == pins
    assert TakePins.from_dict(None) is None


def test_a_hub_dataset_is_read_at_the_commit_the_run_started_on(tmp_path, takes_dir, hub, hub_tokens):
    """After a restart the local snapshot is gone: the takes are fetched again at the pinned commit,
    so a take pushed in the meantime is not even downloaded."""
    from huggingface_hub import HfApi

    token = hub_tokens["alice"]
    api = HfApi(endpoint=hub.url, token=token)
    repo = f"alice/pinned-{secrets.token_hex(4)}"
    api.create_repo(repo, repo_type="dataset", private=True)
    api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=str(takes_dir))
    start = api.dataset_info(repo).sha
    kw = dict(data_token=token, data_endpoint=hub.url, data_cache_dir=tmp_path / "cache")
    run = tmp_path / "run"
    first = Trainer(run, TrainConfig.quick(), repo, **kw).prepare()
    assert first.pins.revision == start

    extra = tmp_path / "extra"
    make_take(extra, 6, "pushed while the run was paused")
    api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=str(extra))
    assert api.dataset_info(repo).sha != start
    shutil.rmtree(tmp_path / "cache")  # a restarted Space has no snapshot on disk
    again = Trainer(run, **kw).prepare()
    assert _ids(again.train_takes) == _ids(first.train_takes) and again.new_takes == 0
    assert start in again.data_dir


def test_a_before_report_of_another_precision_is_measured_again(tmp_path, data, base, monkeypatch):
    """A 'before' measured on the 8-bit training copy is not compared with an 'after' on the served base."""
    import voxspace.evaluate as ev

    model, processor = base
    test = Trainer(tmp_path / "run", TrainConfig.quick(), data).prepare().test_takes
    report = ev.evaluate_run(model, processor, test, max_new_tokens=2)
    assert report.base_precision == "fp32"
    calls = []
    real = ev.transcribe
    monkeypatch.setattr(ev, "transcribe", lambda *a, **k: calls.append(1) or real(*a, **k))
    ev.evaluate_run(model, processor, test, before=report, max_new_tokens=2)
    assert calls == []  # same takes, same precision: reused
    report.base_precision = "8bit"
    again = ev.evaluate_run(model, processor, test, before=report, max_new_tokens=2)
    assert calls == [1] and again.base_precision == "fp32"


def test_resume_offer_counts_the_takes_that_wait_for_the_next_run(tmp_path, data, base):
    from voxspace import run_service
    from voxspace.auth import Identity
    from voxspace.settings import Settings

    settings, nobody = Settings(data_dir=tmp_path / "voxspace-data"), Identity(None)
    run = run_service.runs_root(settings, nobody) / "run-1"
    trainer = Trainer(run, TrainConfig.quick(batch_size=1), data, base=base)
    trainer.train_slice(max_steps=1)
    trainer.close()
    found = run_service.find_resumable(settings, nobody)
    assert found is not None and found.run_dir == run
    assert found.pinned == {t.take.take_id for t in trainer.train_takes + trainer.test_takes}
    assert found.new_takes([*found.pinned, "t006", "t007"]) == 2
    assert run_service.Resumable(run, 1, 2, False).new_takes(["t006"]) == 0  # a run from before pins


def _held_out(langs: dict[str, int]) -> list:
    """Held-out takes, languages interleaved in recording order (no audio needed to sample them)."""
    from pathlib import Path

    from voxspace.layout import LocalTake, Take

    out, seq = [], 0
    pools = {k: n for k, n in langs.items()}
    while any(pools.values()):
        for lang in langs:
            if pools[lang]:
                pools[lang] -= 1
                out.append(LocalTake(Take(take_id=f"t{seq:04d}", text="x", language=lang, duration=1.0,
                                          phrase_id="p", split="test", seq=seq, created_at=0.0),
                                     Path(f"/nowhere/{seq}.wav")))
                seq += 1
    return out


def test_the_measured_sample_is_capped_stratified_by_language_and_spread_over_time():
    """Issue 13: evaluation is two generate passes per held-out take, so a 5000-take run (~625 held
    out) would spend more GPU time measuring than training; at most 64 are measured by default."""
    from voxspace.pinning import sample_held_out

    held = _held_out({"en": 100, "fr": 30, "de": 1})
    picked = sample_held_out(held, 13)
    langs = [t.take.language for t in picked]
    assert len(picked) == 13 and langs.count("de") == 1  # a rare language is never left out
    assert langs.count("en") > langs.count("fr") >= 2  # in proportion to the takes
    seqs = [t.take.seq for t in picked if t.take.language == "en"]
    assert min(seqs) < len(held) * 0.2 and max(seqs) > len(held) * 0.8  # early and late takes
    assert _ids(sample_held_out(held, 13)) == _ids(picked)  # the same on every machine
    assert sample_held_out(held, 0) == held and sample_held_out(held, 500) == held


def test_a_capped_run_measures_its_sample_and_the_rest_are_neither_trained_nor_new(tmp_path, data):
    run = tmp_path / "run"
    first = Trainer(run, TrainConfig.quick(eval_max_takes=1), data).prepare()
    all_held_out = [t for t in Trainer(tmp_path / "uncapped", TrainConfig.quick(eval_max_takes=0), data)
                    .prepare().test_takes]
    assert len(all_held_out) == 2 and len(first.test_takes) == 1
    held_back = set(_ids(all_held_out)) - set(_ids(first.test_takes))
    assert first.pins.held_back == sorted(held_back)
    assert not held_back & set(_ids(first.train_takes))  # held out all the same
    again = Trainer(run).prepare()
    assert _ids(again.test_takes) == _ids(first.test_takes) and again.new_takes == 0


def test_a_cap_that_is_not_a_whole_number_is_refused_with_a_sentence():
    from voxspace.errors import BadHyperparameter

    with pytest.raises(BadHyperparameter, match="Held-out takes to measure"):
        TrainConfig.quick(eval_max_takes=-1).validate()
