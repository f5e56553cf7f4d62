"""The local Hub-API server speaks the real clients' protocol and refuses what the Hub refuses."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from huggingface_hub.utils import get_session

from voxspace.layout import Take, write_take


def _wav(seconds: float = 1.0, sr: int = 16_000, freq: float = 220.0) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()


@pytest.fixture
def alice(hub, hub_tokens):
    return HfApi(endpoint=hub.url, token=hub_tokens["alice"])


@pytest.fixture
def bob(hub, hub_tokens):
    return HfApi(endpoint=hub.url, token=hub_tokens["bob"])


def test_round_trip_with_lfs_wav_and_whoami(hub, alice, tmp_path):
    assert alice.whoami()["name"] == "alice"
    url = alice.create_repo("alice/roundtrip", repo_type="dataset", private=True)
    assert url.repo_id == "alice/roundtrip"
    wav = _wav()
    alice.upload_file(
        path_or_fileobj=wav, path_in_repo="audio/a.wav", repo_id="alice/roundtrip", repo_type="dataset"
    )
    alice.upload_file(
        path_or_fileobj=b"hello\n", path_in_repo="notes.txt", repo_id="alice/roundtrip", repo_type="dataset"
    )
    assert hub.file_entry("alice/roundtrip", "audio/a.wav", repo_type="dataset")["lfs"] is True
    assert hub.file_entry("alice/roundtrip", "notes.txt", repo_type="dataset")["lfs"] is False
    got = hf_hub_download(
        "alice/roundtrip", "audio/a.wav", repo_type="dataset", token=alice.token, cache_dir=tmp_path / "cache"
    )
    assert Path(got).read_bytes() == wav
    tree = {f.path: f for f in alice.list_repo_tree("alice/roundtrip", repo_type="dataset", recursive=True)}
    assert tree["audio/a.wav"].lfs.size == len(wav)
    assert [f.path for f in alice.list_repo_tree("alice/roundtrip", repo_type="dataset")] == [
        "audio",
        ".gitattributes",
        "notes.txt",
    ]
    assert alice.file_exists("alice/roundtrip", "notes.txt", repo_type="dataset")
    assert not alice.file_exists("alice/roundtrip", "missing.txt", repo_type="dataset")
    assert len(alice.list_repo_commits("alice/roundtrip", repo_type="dataset")) == 3
    # Re-uploading an unchanged file makes no new commit (the client compares preupload oids).
    alice.upload_file(
        path_or_fileobj=wav, path_in_repo="audio/a.wav", repo_id="alice/roundtrip", repo_type="dataset"
    )
    assert len(hub.commits("alice/roundtrip", repo_type="dataset")) == 3
    assert (hub.checkout("alice/roundtrip", "dataset") / "audio" / "a.wav").read_bytes() == wav


def test_private_repo_is_hidden_from_anonymous_and_other_users(hub, alice, bob, hub_tokens):
    alice.create_repo("alice/secret", repo_type="dataset", private=True)
    alice.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/secret", repo_type="dataset")
    with pytest.raises(RepositoryNotFoundError) as anon:
        HfApi(endpoint=hub.url, token=False).dataset_info("alice/secret")
    assert anon.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError) as other:
        bob.dataset_info("alice/secret")
    assert other.value.response.status_code == 404
    with pytest.raises(RepositoryNotFoundError):
        bob.upload_file(
            path_or_fileobj=b"y", path_in_repo="y.txt", repo_id="alice/secret", repo_type="dataset"
        )
    assert hub.list_files("alice/secret", "dataset") == [".gitattributes", "x.txt"]
    alice.update_repo_settings("alice/secret", repo_type="dataset", private=False)
    assert bob.dataset_info("alice/secret").private is False
    with pytest.raises(HfHubHTTPError) as forbidden:  # public but not bob's: 403 on write
        bob.upload_file(
            path_or_fileobj=b"y", path_in_repo="y.txt", repo_id="alice/secret", repo_type="dataset"
        )
    assert forbidden.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as bad:  # a bad token is refused even on public files
        HfApi(endpoint=hub.url, token="hf_not_a_real_token").dataset_info("alice/secret")
    assert bad.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as ns:
        bob.create_repo("alice/bobs-attempt")
    assert ns.value.response.status_code == 403
    assert hub.writes_by("alice/secret") == {"alice"}
    log_text = hub.log_path.read_text()
    assert all(tok not in log_text for tok in hub_tokens.values())


def test_commit_conflict_create_conflict_and_bad_names(hub, alice):
    alice.create_repo("alice/conflict")
    with pytest.raises(HfHubHTTPError) as dup:
        alice.create_repo("alice/conflict")
    assert dup.value.response.status_code == 409
    alice.create_repo("alice/conflict", exist_ok=True)
    stale = alice.model_info("alice/conflict").sha
    alice.upload_file(path_or_fileobj=b"1", path_in_repo="a.txt", repo_id="alice/conflict")
    with pytest.raises(HfHubHTTPError) as conflict:
        alice.create_commit(
            "alice/conflict", [CommitOperationAdd("b.txt", b"2")], commit_message="late", parent_commit=stale
        )
    assert conflict.value.response.status_code == 412
    # The client validates names itself; the server must refuse them too (raw HTTP).
    for bad in ("-leading", "a..b", "x" * 97, "sp ace"):
        r = get_session().post(
            f"{hub.url}/api/repos/create",
            headers={"authorization": f"Bearer {alice.token}"},
            json={"name": bad, "type": "model"},
        )
        assert r.status_code == 400, bad


def test_binary_regular_files_over_1mib_are_refused(alice):
    alice.create_repo("alice/binary")
    blob = b"\0" * (1024 * 1024 + 1)
    with pytest.raises(HfHubHTTPError) as e:
        alice.upload_file(path_or_fileobj=blob, path_in_repo="weights.raw", repo_id="alice/binary")
    assert e.value.response.status_code == 400
    alice.upload_file(path_or_fileobj=blob, path_in_repo="weights.bin", repo_id="alice/binary")  # LFS: fine


@pytest.mark.parametrize(
    "card, why",
    [
        ("---\nlicense: [mit\n---\n", "Invalid YAML"),
        ("---\nlicense: mit\nlicense: apache-2.0\n---\n", "duplicated"),
        ("---\nlicense: not-a-license\n---\n", "license"),
        ("---\nconfigs: {default: x}\n---\n", "configs"),
    ],
)
def test_validate_yaml_refuses_bad_cards(alice, card, why):
    alice.create_repo("alice/cards", repo_type="dataset", exist_ok=True)
    with pytest.raises(ValueError, match=why):
        alice.upload_file(
            path_or_fileobj=card.encode(),
            path_in_repo="README.md",
            repo_id="alice/cards",
            repo_type="dataset",
        )


def test_commit_failures_refusals_and_space_endpoints(hub, alice):
    alice.create_repo("alice/flaky")
    hub.fail_next_commits(1)
    with pytest.raises(HfHubHTTPError) as e:  # the client never retries /commit
        alice.upload_file(path_or_fileobj=b"1", path_in_repo="a.txt", repo_id="alice/flaky")
    assert e.value.response.status_code == 500
    hub.refuse_writes()
    try:
        with pytest.raises(HfHubHTTPError):
            alice.create_repo("alice/refused")
    finally:
        hub.allow_writes()
    assert not hub.repo_exists("alice/refused")

    alice.create_repo("alice/demo", repo_type="space", space_sdk="gradio")
    alice.add_space_variable("alice/demo", "MODEL_ID", "alice/tiny")
    alice.add_space_secret("alice/demo", "SOME_SECRET", "s3cret")
    assert hub.space_variables("alice/demo") == {"MODEL_ID": "alice/tiny"}
    assert hub.space_secrets("alice/demo") == {"SOME_SECRET": "s3cret"}
    hub.refuse_hardware("zero-a10g", users={"alice"})
    with pytest.raises(HfHubHTTPError, match="ZeroGPU"):
        alice.request_space_hardware("alice/demo", "zero-a10g")
    alice.request_space_hardware("alice/demo", "t4-small")
    assert hub.space_hardware_requests("alice/demo") == ["t4-small"]
    stages = [alice.get_space_runtime("alice/demo").stage for _ in range(3)]
    assert stages == ["BUILDING", "RUNNING", "RUNNING"]
    hub.set_space_outcome("alice/demo", "RUNTIME_ERROR", polls=1, message="ImportError: no module x")
    assert alice.get_space_runtime("alice/demo").stage == "RUNTIME_ERROR"


def test_load_dataset_reads_the_layout_with_16khz_audio(hub, alice, bob, tmp_path):
    datasets = pytest.importorskip("datasets")
    pytest.importorskip("torchcodec")
    folder = tmp_path / "repo"
    texts = ["hello world", "zwölf Boxkämpfer", "नमस्ते दुनिया"]
    for seq, text in enumerate(texts):
        take = Take(
            take_id=f"t{seq}",
            text=text,
            language="en",
            duration=1.0,
            phrase_id=f"en-{seq}",
            split="test" if seq == 1 else "train",
            seq=seq,
            created_at=0.0,
        )
        write_take(folder, take, _wav(sr=44_100, freq=200 + 100 * seq))
    (folder / "README.md").write_text(
        "---\nlicense: cc-by-4.0\nconfigs:\n- config_name: default\n  data_files:\n"
        "  - split: train\n    path: data/train/**\n  - split: test\n    path: data/test/**\n---\n"
    )
    alice.create_repo("alice/layout", repo_type="dataset", private=True)
    alice.upload_folder(folder_path=folder, repo_id="alice/layout", repo_type="dataset")
    ds = datasets.load_dataset("alice/layout", token=alice.token, cache_dir=str(tmp_path / "ds-cache"))
    assert sorted(ds) == ["test", "train"]
    assert sorted(ds["train"]["text"]) == sorted([texts[0], texts[2]])
    row = ds["train"].cast_column("audio", datasets.Audio(sampling_rate=16_000))[0]
    audio = row["audio"]
    samples = audio.get_all_samples()
    assert samples.sample_rate == 16_000 and samples.data.shape[0] == 1
    from datasets.exceptions import DatasetNotFoundError

    with pytest.raises(
        (DatasetNotFoundError, RepositoryNotFoundError)
    ):  # bob cannot read it through datasets either
        datasets.load_dataset("alice/layout", token=bob.token, cache_dir=str(tmp_path / "bob-cache"))


def test_from_pretrained_by_repo_id(hub, alice, tiny_voxtral_dir, tmp_path):
    pytest.importorskip("torch")
    from transformers import VoxtralForConditionalGeneration

    alice.create_repo("alice/tiny")
    alice.upload_folder(folder_path=tiny_voxtral_dir, repo_id="alice/tiny")
    assert hub.file_entry("alice/tiny", "model.safetensors")["lfs"] is True
    model = VoxtralForConditionalGeneration.from_pretrained(
        "alice/tiny", token=alice.token, cache_dir=tmp_path / "models"
    )
    assert model.config.audio_config.num_mel_bins == 128


def test_paths_info_duplicate_delete_and_read_only_tokens(hub, alice, bob):
    alice.create_repo("alice/src-space", repo_type="space", space_sdk="gradio")
    alice.upload_file(
        path_or_fileobj=b"print(1)\n", path_in_repo="app.py", repo_id="alice/src-space", repo_type="space"
    )
    infos = alice.get_paths_info("alice/src-space", ["app.py", "missing.py"], repo_type="space")
    assert [(i.path, i.size) for i in infos] == [("app.py", 9)]
    bob.duplicate_repo("alice/src-space", "bob/copy", repo_type="space", private=True)
    assert hub.read_file("bob/copy", "app.py", repo_type="space") == b"print(1)\n"
    assert hub.is_private("bob/copy", "space")
    with pytest.raises(HfHubHTTPError):
        bob.delete_repo("alice/src-space", repo_type="space")
    bob.delete_repo("bob/copy", repo_type="space")
    assert not hub.repo_exists("bob/copy", "space")
    hub.add_user("hf_readonly_alice_token", "alice", role="read")
    reader = HfApi(endpoint=hub.url, token="hf_readonly_alice_token")
    assert reader.space_info("alice/src-space").id == "alice/src-space"
    with pytest.raises(HfHubHTTPError) as e:
        reader.upload_file(
            path_or_fileobj=b"x", path_in_repo="x.py", repo_id="alice/src-space", repo_type="space"
        )
    assert e.value.response.status_code == 403


def test_paused_writes_hang_until_allowed(hub, alice):
    import threading

    alice.create_repo("alice/paused")
    hub.pause_writes()
    done = threading.Event()
    worker = threading.Thread(
        target=lambda: (
            alice.upload_file(path_or_fileobj=b"1", path_in_repo="a.txt", repo_id="alice/paused"),
            done.set(),
        )
    )
    try:
        worker.start()
        assert not done.wait(1.0)  # the upload is stuck in the Hub
        assert hub.list_files("alice/paused") == [".gitattributes"]
    finally:
        hub.allow_writes()
    worker.join(30)
    assert done.is_set() and hub.list_files("alice/paused") == [".gitattributes", "a.txt"]


def test_fresh_repo_ids_never_collide_and_fixed_names_can_be_reset(hub, alice, fresh_repo_id):
    first, second = fresh_repo_id("alice", "recordings"), fresh_repo_id("alice", "recordings")
    assert first != second and first.startswith("alice/recordings-")
    alice.create_repo(first, repo_type="dataset")
    assert hub.delete_repo(first, "dataset") and not hub.repo_exists(first, "dataset")
    alice.create_repo(first, repo_type="dataset")  # the name is free again
    assert not hub.delete_repo("alice/never-made", "dataset")
