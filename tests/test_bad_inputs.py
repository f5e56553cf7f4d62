"""Every bad input of issue 11 item 5, through the real entry points: its own sentence, nothing half-stored.

Entry points: audio.prepare_take (every take), TakeStore.save (every stored take), ingest_upload
(the Record tab's Upload and `data upload`), the CLI (`python -m voxspace data add|upload`) and the
Upload handler (voxspace.ui.bulk.upload_files). Files are made tiny in tmp_path; the 460 MB WAV is
a sparse file (a header and a hole), so nothing large is written or read.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import tracemalloc
import zipfile
from pathlib import Path

import pytest
import soundfile as sf

from tests.signals import sparse_wav, speech, tone, wav_bytes
from voxspace.audio import prepare_take
from voxspace.cli import main
from voxspace.errors import (
    ControlCharacters,
    CorruptZip,
    TextDoesNotFitAudio,
    TooLong,
    TruncatedAudio,
)
from voxspace.ingest import extract_zip, ingest_upload
from voxspace.input_checks import MAX_CHARS_PER_S, check_transcript
from voxspace.layout import read_folder
from voxspace.settings import Limits
from voxspace.store import TakeStore

SENTENCE = "Please call Maria at nine thirty."


@pytest.fixture(scope="module")
def spoken() -> bytes:
    return wav_bytes(*speech(SENTENCE))


@pytest.fixture
def local_env(tmp_path, monkeypatch):
    """The CLI and the store with no token: takes land in the local folder under tmp_path."""
    monkeypatch.setenv("VOXSPACE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield tmp_path / "data" / "local"
    TakeStore.close_all()


def stored(folder: Path) -> list[str]:
    return [t.take.text for t in read_folder(folder)] if folder.exists() else []


def save_into(folder: Path):
    """The TakeStore a `data add` without a token opens (local folder), as the `save` of an upload."""
    from voxspace.auth import resolve_identity
    from voxspace.settings import Settings

    settings = Settings.from_env()
    return TakeStore.for_identity(settings, resolve_identity(settings), None).save


# --- a. truncated or lying headers -----------------------------------------------------------------
def truncated_wav(spoken: bytes, keep: float = 0.6) -> bytes:
    """The WAV as an interrupted copy leaves it: the header still declares the whole data chunk."""
    return spoken[: 44 + int((len(spoken) - 44) * keep) // 2 * 2]


def test_a_truncated_wav_is_refused_not_stored_short(spoken, tmp_path, local_env, capsys):
    info = sf.info(io.BytesIO(spoken))
    cut = tmp_path / "cut.wav"
    cut.write_bytes(truncated_wav(spoken))
    assert sf.info(str(cut)).frames < info.frames  # libsndfile alone would take it as a shorter clip
    with pytest.raises(TruncatedAudio) as e:
        prepare_take(cut)
    assert f"promises {info.duration:.1f} s of audio" in e.value.user_message
    assert "cut short" in e.value.user_message
    with pytest.raises(TruncatedAudio):
        prepare_take(cut.read_bytes())  # the same bytes, as the browser or an import sends them

    assert main(["data", "add", str(cut), "--text", SENTENCE, "--language", "en"]) == 2
    err = capsys.readouterr().err
    assert "cut short" in err and "Traceback" not in err
    assert stored(local_env) == []


def test_a_truncated_flac_is_refused_although_ffmpeg_decodes_its_first_part(tmp_path):
    x, sr = speech(SENTENCE)
    flac = wav_bytes(x, sr, subtype="PCM_16", fmt="FLAC")
    cut = tmp_path / "cut.flac"
    cut.write_bytes(flac[: len(flac) * 2 // 3])
    with pytest.raises(TruncatedAudio) as e:
        prepare_take(cut)
    assert f"promises {len(x) / sr:.1f} s" in e.value.user_message


def test_a_streamed_wav_without_a_length_is_not_called_truncated(spoken):
    streamed = bytearray(spoken)
    streamed[40:44] = struct.pack("<I", 0xFFFFFFFF)  # what ffmpeg writes to a pipe
    streamed[4:8] = struct.pack("<I", 0xFFFFFFFF)
    assert prepare_take(bytes(streamed)).duration > 1.0


# --- b. control characters -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Call Maria\x00 now", "NUL, character 11"),
        ("\x1b[31mCall Maria\x1b[0m", "ESC (a terminal colour code), character 1"),
        ("Call\x9bMaria", "U+009B"),
        ("Call\x1fMaria", "U+001F"),
    ],
)
def test_control_characters_are_refused_with_their_name(text, named):
    with pytest.raises(ControlCharacters) as e:
        check_transcript(text)
    assert named in e.value.user_message and "refused, not cleaned up" in e.value.user_message
    assert check_transcript("Call\tMaria\r\n now ") == "Call Maria now"  # ordinary whitespace is fine


def test_control_characters_never_reach_the_store(spoken, tmp_path, local_env, capsys):
    clip = tmp_path / "a.wav"
    clip.write_bytes(spoken)
    assert main(["data", "add", str(clip), "--text", "Call \x1b[1mMaria", "--language", "en"]) == 2
    assert "control character (ESC" in capsys.readouterr().err
    jl = tmp_path / "t.jsonl"  # via an upload's transcripts: that line is refused by its number
    jl.write_text(json.dumps({"file_name": "a.wav", "text": "Call Maria\u0000 at nine"}) + "\n")
    [row] = ingest_upload([clip], transcripts=jl, save=save_into(local_env))
    assert (
        not row.accepted and "t.jsonl, line 1: The transcript contains a control character (NUL" in row.reason
    )
    assert stored(local_env) == []


# --- c. transcript length against the audio --------------------------------------------------------
def test_a_transcript_the_audio_cannot_hold_is_refused(spoken, tmp_path, local_env):
    save = save_into(local_env)
    clean = prepare_take(spoken)
    with pytest.raises(TextDoesNotFitAudio) as e:
        save(clean.wav_bytes(), 2.6, text="word " * 2000, language="en", phrase_id="", source="upload")
    assert "9,999 characters for 2.6 s" in e.value.user_message
    limit = int(MAX_CHARS_PER_S * clean.duration) + 10
    assert f"at most about {limit:,}" in check_e(lambda: check_transcript("x" * (limit + 1), clean.duration))
    assert check_transcript("x" * limit, clean.duration)  # the bound itself still passes
    take = save(
        clean.wav_bytes(), clean.duration, text=SENTENCE, language="en", phrase_id="", source="upload"
    )
    assert stored(local_env) == [take.text]

    clip = tmp_path / "a.wav"
    clip.write_bytes(wav_bytes(*speech("Good morning to you all")))
    csv = tmp_path / "t.csv"
    csv.write_text("file_name,text\na.wav," + "very long " * 1000 + "\n")
    [row] = ingest_upload([clip], transcripts=csv, save=save)
    assert not row.accepted and "too long for the recording" in row.reason
    assert len(stored(local_env)) == 1


def check_e(fn) -> str:
    with pytest.raises(TextDoesNotFitAudio) as e:
        fn()
    return e.value.user_message


# --- d. one bad line, e. missing audio: named, the rest kept ----------------------------------------
def test_cli_upload_keeps_the_good_rows_and_names_the_bad_line_and_the_missing_audio(
    tmp_path, local_env, capsys
):
    for name, words in [
        ("a.wav", "good morning to everyone here"),
        ("c.wav", "see you at noon by the station"),
    ]:
        (tmp_path / name).write_bytes(wav_bytes(*speech(words)))
    jl = tmp_path / "t.jsonl"
    jl.write_text(
        json.dumps({"file_name": "a.wav", "text": "good morning to everyone here"})
        + "\n"
        + '{"file_name": "b.wav", "text": oops}\n'
        + json.dumps({"file_name": "c.wav", "text": "see you at noon by the station"})
        + "\n"
        + json.dumps({"file_name": "gone.wav", "text": "this file never came"})
        + "\n"
    )
    code = main(
        ["data", "upload", str(tmp_path / "a.wav"), str(tmp_path / "c.wav"), "--transcripts", str(jl)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "ok   a.wav" in out and "ok   c.wav" in out
    assert "skip t.jsonl, line 2: t.jsonl, line 2 is not valid JSON; the other lines were used." in out
    assert "skip gone.wav: t.jsonl, line 4 names gone.wav, but no file of that name was uploaded" in out
    assert "saved 2 takes" in out and "rejected 2" in out
    assert sorted(stored(local_env)) == ["good morning to everyone here", "see you at noon by the station"]


# --- f. corrupt zips -------------------------------------------------------------------------------
def zip_of(entries: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytearray:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return bytearray(buf.getvalue())


def bad_crc(raw: bytearray) -> bytearray:
    raw[60] ^= 0xFF  # a byte of the first (stored) entry's data
    return raw


def lying_size(raw: bytearray, size: int) -> bytearray:
    """Set the first entry's uncompressed size in the central directory (what zipfile trusts)."""
    cd = raw.find(b"PK\x01\x02")
    raw[cd + 24 : cd + 28] = struct.pack("<I", size)
    return raw


@pytest.mark.parametrize("damage", ["crc", "size_larger", "size_smaller", "deflate"])
def test_a_corrupt_zip_is_refused_as_damaged(spoken, tmp_path, damage):
    entries = {"a.wav": spoken, "t.csv": f"file_name,text\na.wav,{SENTENCE}\n".encode()}
    raw = {
        "crc": lambda: bad_crc(zip_of(entries)),
        "size_larger": lambda: lying_size(zip_of(entries), len(spoken) + 1000),
        "size_smaller": lambda: lying_size(zip_of(entries), len(spoken) - 1000),
        "deflate": lambda: bad_crc(zip_of(entries, zipfile.ZIP_DEFLATED)),
    }[damage]()
    z = tmp_path / "takes.zip"
    z.write_bytes(bytes(raw))
    with pytest.raises(CorruptZip) as e:
        extract_zip(z, tmp_path / "out", Limits())
    assert "takes.zip is damaged (a.wav fails the zip's own integrity check)" in e.value.user_message


def test_corrupt_zip_in_the_cli_and_the_upload_handler_is_a_sentence(
    spoken, tmp_path, local_env, capsys, space_settings, hub_tokens
):
    import gradio as gr

    from voxspace.ui.bulk import upload_files
    from voxspace.ui.session import start_session

    z = tmp_path / "takes.zip"
    z.write_bytes(bytes(bad_crc(zip_of({"a.wav": spoken, "t.csv": b"file_name,text\na.wav,hello\n"}))))
    assert main(["data", "upload", str(z)]) == 1
    captured = capsys.readouterr()
    assert "skip takes.zip: takes.zip is damaged" in captured.out and "rejected 1" in captured.out
    assert "Traceback" not in captured.err + captured.out
    assert stored(local_env) == []

    profile = gr.OAuthProfile({"preferred_username": "alice", "name": "alice", "profile": "", "picture": ""})
    sess = start_session(
        space_settings,
        profile=profile,
        token=gr.OAuthToken(token=hub_tokens["alice"], scope="openid", expires_at=0),
    )
    status, table, _ = upload_files(sess, [str(z)], None, "en")
    assert "0 of 1 added" in status
    assert table[0][0] == "takes.zip" and table[0][1].startswith("rejected: takes.zip is damaged")
    assert sess.store.takes() == []


@pytest.fixture
def space_settings(hub_settings):
    import dataclasses

    return dataclasses.replace(hub_settings, space_id="tests/voxspace")


# --- g. a large file is judged from its header, before decoding ------------------------------------
def test_a_460_mb_wav_is_refused_from_its_header_without_reading_it(tmp_path):
    path = sparse_wav(tmp_path / "long.wav", 460_000_000)  # a hole, not 460 MB on the disk
    assert Limits().max_upload_mb * 1_000_000 > path.stat().st_size
    tracemalloc.start()
    try:
        with pytest.raises(TooLong) as e:
            prepare_take(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "this file holds 3 h 59 min of audio" in e.value.user_message
    assert peak < 5_000_000, peak  # decoding it would take 920 MB of float32 (soundfile allocates via numpy)


def test_a_format_only_ffmpeg_reads_is_decoded_no_further_than_the_cap(tmp_path):
    src = tmp_path / "long.wav"
    src.write_bytes(wav_bytes(tone(6, 16_000), 16_000))
    webm = tmp_path / "long.webm"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(src), str(webm)], check=True)
    with pytest.raises(TooLong) as e:
        prepare_take(webm, Limits(max_take_s=1.0))  # ffmpeg stops at 4 x 1 s
    assert "holds more than 4.0 s of audio" in e.value.user_message
    assert prepare_take(webm, Limits(max_take_s=10.0)).duration > 5.0


def test_a_hub_dataset_import_refuses_those_rows_and_keeps_the_rest(tmp_path, local_env):
    """`data import` / the Import section stream rows through the same store checks (a local folder here)."""
    from voxspace.ingest import import_hub_dataset

    root = tmp_path / "ds"
    (root / "data").mkdir(parents=True)
    texts = ["good morning to everyone here", "Call \x1b[31mMaria\x1b[0m now", "see you " * 2000]
    for i in range(len(texts)):
        (root / "data" / f"{i}.wav").write_bytes(wav_bytes(*speech(f"sentence {i} for the import test")))
    meta = "".join(json.dumps({"file_name": f"{i}.wav", "text": t}) + "\n" for i, t in enumerate(texts))
    (root / "data" / "metadata.jsonl").write_text(meta)
    rows = import_hub_dataset(str(root), save=save_into(local_env))
    assert [r.accepted for r in rows] == [True, False, False]
    assert "control character (ESC" in rows[1].reason and "too long for the recording" in rows[2].reason
    assert stored(local_env) == [texts[0]]


def test_a_hub_dataset_whose_metadata_has_a_bad_line_is_named(tmp_path, local_env):
    """`datasets` reads a split whole, so the good rows cannot be kept: the sentence names the line."""
    from voxspace.errors import BadInput
    from voxspace.ingest import import_hub_dataset

    root = tmp_path / "ds"
    (root / "data").mkdir(parents=True)
    (root / "data" / "0.wav").write_bytes(wav_bytes(*speech("good morning to everyone here")))
    (root / "data" / "metadata.jsonl").write_text(
        '{"file_name": "0.wav", "text": "good morning"}\n{"file_name": "1.wav", "text": oops}\n'
    )
    with pytest.raises(BadInput) as e:
        import_hub_dataset(str(root), save=save_into(local_env))
    assert "line 2 (blank lines not counted) of its metadata file is malformed" in e.value.user_message
    assert "nothing was imported" in e.value.user_message
