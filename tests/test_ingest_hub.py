"""Streaming from the (local) Hub: audio imports with column mapping and caps, phrase lists from a
Granary-shaped dataset, and private repos that only their owner's token can read."""

import json

import numpy as np
import pytest

from tests.signals import silence, speech, wav_bytes
from tests.test_ingest import Collector
from voxspace.errors import BadInput, HubError
from voxspace.ingest import import_hub_dataset
from voxspace.phrases import custom_id, from_hub_dataset

TEXTS = ["The bus leaves at half past seven.", "Please call Maria at nine thirty.",
         "We planted three cherry trees.", "Turn left at the traffic lights."]


@pytest.fixture(scope="module")
def clips_repo(hub, hub_tokens, tmp_path_factory):
    """alice's private audio dataset: one wav per row, columns sentence + locale."""
    from huggingface_hub import HfApi

    root = tmp_path_factory.mktemp("clips")
    (root / "data").mkdir()
    rows = []
    for i, text in enumerate(TEXTS):
        x, sr = speech(text)
        if i == 1:
            x = silence(2, sr)  # a silent row: rejected, and the import goes on
        (root / "data" / f"clip{i}.wav").write_bytes(wav_bytes(x, sr))
        rows.append({"file_name": f"clip{i}.wav", "sentence": text, "locale": ["en", "en", "es", "de"][i]})
    (root / "data" / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    api = HfApi(endpoint=hub.url, token=hub_tokens["alice"])
    api.create_repo("alice/clips", repo_type="dataset", private=True)
    api.upload_folder(folder_path=root, repo_id="alice/clips", repo_type="dataset")
    return "alice/clips"


@pytest.fixture(scope="module")
def granary_repo(hub, hub_tokens, tmp_path_factory):
    """A text-only dataset shaped like NVIDIA Granary: `<lang>_<corpus>` configs, split `asr`."""
    from huggingface_hub import HfApi

    root = tmp_path_factory.mktemp("granary")
    card = ["---", "configs:"]
    for lang, lines in {"en": ["ok", "This one has exactly five words.", "one two three four five "
                               "six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                               "sixteen", "A second readable sentence here.",
                               "A second readable sentence here.", "Third good line of text."],
                        "fr": ["Bonjour à tous les amis."]}.items():
        (root / f"{lang}_demo").mkdir()
        (root / f"{lang}_demo" / "asr.jsonl").write_text(
            "".join(json.dumps({"text": t, "duration": 1.0}, ensure_ascii=False) + "\n" for t in lines),
            encoding="utf-8")
        card += [f"- config_name: {lang}_demo", "  data_files:", "  - split: asr",
                 f"    path: {lang}_demo/asr.jsonl"]
    (root / "README.md").write_text("\n".join([*card, "---", "Granary-shaped test data."]) + "\n")
    api = HfApi(endpoint=hub.url, token=hub_tokens["alice"])
    api.create_repo("alice/granary-mini", repo_type="dataset")
    api.upload_folder(folder_path=root, repo_id="alice/granary-mini", repo_type="dataset")
    return "alice/granary-mini"


def test_import_maps_columns_and_stops_at_the_take_cap(hub, hub_tokens, clips_repo):
    save, seen = Collector(), []
    rows = import_hub_dataset(clips_repo, audio_column="audio", text_column="sentence",
                              language_column="locale", max_takes=2, token=hub_tokens["alice"],
                              endpoint=hub.url, save=save, progress=seen.append)
    assert [(r.name, r.accepted) for r in rows] == [("clip0.wav", True), ("clip1.wav", False),
                                                    ("clip2.wav", True)]
    assert rows[1].reason.startswith("We didn't hear any speech") and seen == rows
    assert [(s["text"], s["language"], s["source"]) for s in save.saved] == [
        (TEXTS[0], "en", "import"), (TEXTS[2], "es", "import")]


def test_import_minutes_cap(hub, hub_tokens, clips_repo):
    save = Collector()
    x, sr = speech(TEXTS[0])
    import_hub_dataset(clips_repo, text_column="sentence", max_minutes=(len(x) / sr + 0.5) / 60,
                       token=hub_tokens["alice"], save=save)
    assert len(save.saved) == 1
    assert np.isclose(save.saved[0]["duration"], len(x) / sr, atol=0.5)


def test_private_dataset_is_refused_to_other_users(hub, hub_tokens, clips_repo):
    with pytest.raises(HubError) as e:
        import_hub_dataset(clips_repo, text_column="sentence", token=hub_tokens["bob"],
                           save=Collector())
    assert hub_tokens["bob"] not in str(e.value) and hub_tokens["bob"] not in (e.value.detail or "")
    with pytest.raises(HubError):
        import_hub_dataset(clips_repo, text_column="sentence", token=None, save=Collector())


def test_import_names_missing_columns(hub, hub_tokens, clips_repo):
    with pytest.raises(BadInput, match=r"no column 'transcript'.*sentence"):
        import_hub_dataset(clips_repo, text_column="transcript", token=hub_tokens["alice"],
                           save=Collector())


def test_phrases_from_a_granary_config_are_readable_and_deduplicated(hub, granary_repo):
    phrases = from_hub_dataset(granary_repo, config="en_demo", split="asr", language="en", limit=10,
                               endpoint=hub.url)
    assert [p.text for p in phrases] == ["This one has exactly five words.",
                                         "A second readable sentence here.", "Third good line of text."]
    assert phrases[0].phrase_id == custom_id("This one has exactly five words.")
    assert len(from_hub_dataset(granary_repo, config="en_demo", split="asr", language="en",
                                limit=2)) == 2
    fr = from_hub_dataset(granary_repo, config="fr_demo", split="asr", language="fr")
    assert fr[0].text == "Bonjour à tous les amis." and fr[0].language == "fr"


def test_phrases_from_a_missing_dataset_or_split(hub, granary_repo):
    with pytest.raises(HubError, match="Couldn't find the dataset"):
        from_hub_dataset("alice/nope", language="en")
    with pytest.raises(BadInput):
        from_hub_dataset(granary_repo, config="en_demo", split="train", language="en")


def test_cli_import_lands_in_the_users_recordings_repo(hub, hub_tokens, hub_settings, clips_repo,
                                                        monkeypatch, capsys):
    import argparse

    from voxspace.ingest import add_import_command
    from voxspace.layout import read_folder
    from voxspace.store import TakeStore

    monkeypatch.setenv("VOXSPACE_DATA_DIR", str(hub_settings.data_dir))
    monkeypatch.setenv("HF_TOKEN", hub_tokens["alice"])
    parser = argparse.ArgumentParser()
    add_import_command(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(["import", clips_repo, "--text-column", "sentence", "--language-column",
                              "locale", "--max-takes", "2", "--repo", "alice/imported"])
    try:
        assert args.func(args) == 0
    finally:
        TakeStore.close_all()
    assert "saved 2 takes" in capsys.readouterr().out
    takes = sorted(read_folder(hub.checkout("alice/imported", "dataset")), key=lambda t: t.take.seq)
    assert [(t.take.text, t.take.language, t.take.source) for t in takes] == [
        (TEXTS[0], "en", "import"), (TEXTS[2], "es", "import")]
    assert hub.is_private("alice/imported", "dataset")


def test_an_explicit_endpoint_wins_over_the_one_datasets_was_imported_with(hub, hub_tokens, clips_repo,
                                                                          granary_repo, monkeypatch):
    import datasets.config

    dead = "http://127.0.0.1:9"  # nothing listens there: any request sent to it fails
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", dead)
    monkeypatch.setattr(datasets.config, "HUB_DATASETS_URL",
                        dead + "/datasets/{repo_id}/resolve/{revision}/{path}")
    assert from_hub_dataset(granary_repo, config="fr_demo", split="asr", language="fr", endpoint=hub.url)
    save = Collector()
    import_hub_dataset(clips_repo, text_column="sentence", max_takes=1, token=hub_tokens["alice"],
                       endpoint=hub.url, save=save)
    assert len(save.saved) == 1
    assert dead == datasets.config.HF_ENDPOINT  # restored after the stream ends
