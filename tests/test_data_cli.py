"""`python -m voxspace data add|stats|push`: the same store the Record tab uses, headless."""

from __future__ import annotations

import pytest

from tests.signals import speech, wav_bytes
from voxspace.cli import main
from voxspace.layout import read_folder
from voxspace.store import TakeStore


@pytest.fixture(autouse=True)
def _env(hub_settings, monkeypatch):
    monkeypatch.setenv("VOXSPACE_DATA_DIR", str(hub_settings.data_dir))
    monkeypatch.setenv("VOXSPACE_DATASET_REPO_NAME", hub_settings.dataset_repo_name)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield
    TakeStore.close_all()


@pytest.fixture(scope="module")
def spoken_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "spoken.wav"
    path.write_bytes(wav_bytes(*speech("good morning to everyone here")))  # 22.05 kHz, as espeak speaks
    return path


def test_add_offline_then_push_with_a_token(hub, hub_settings, hub_tokens, spoken_file, monkeypatch, capsys):
    assert (
        main(["data", "add", str(spoken_file), "--text", "good morning to everyone here", "--language", "en"])
        == 0
    )
    out = capsys.readouterr().out
    assert "saved take" in out and "local only" in out
    assert main(["data", "push"]) == 2
    assert "HF_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("HF_TOKEN", hub_tokens["alice"])
    assert main(["data", "push"]) == 0
    assert "moved 1 local takes" in capsys.readouterr().out
    repo = f"alice/{hub_settings.dataset_repo_name}"
    [take] = read_folder(hub.checkout(repo, "dataset"))
    assert take.take.text == "good morning to everyone here" and take.take.source == "upload"
    assert main(["data", "add", str(spoken_file), "--text", "again", "--phrase-id", "en-0007"]) == 2
    assert "already stored as take 1 (“good morning to everyone here”" in capsys.readouterr().err
    other = spoken_file.with_name("other.wav")
    other.write_bytes(wav_bytes(*speech("good evening to everyone here")))
    assert main(["data", "add", str(other), "--text", "again", "--phrase-id", "en-0007"]) == 0
    assert main(["data", "stats"]) == 0
    out = capsys.readouterr().out
    assert "2 takes" in out and repo in out and "1 train, 1 test" in out


def test_bad_audio_and_bad_repo_exit_with_a_message(hub_tokens, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", hub_tokens["alice"])
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"definitely not audio")
    assert main(["data", "add", str(junk), "--text", "x"]) == 2
    assert "couldn't read" in capsys.readouterr().err
    assert main(["data", "stats", "--repo", "alice/bad..name"]) == 2
    assert "'..'" in capsys.readouterr().err
