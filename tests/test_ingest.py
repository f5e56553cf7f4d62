"""Uploads: transcripts parsed strictly, every file checked, zips opened without escaping the folder.

`save` is a collector with TakeStore.save's signature (our own interface, not the Hub); it checks
each take is a 16 kHz mono PCM_16 WAV as the store would receive it.
"""

import io
import json
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest
import soundfile as sf

from tests.signals import silence, speech, tone, wav_bytes
from voxspace.errors import BadInput, HubError
from voxspace.ingest import as_table, extract_zip, ingest_upload, read_transcripts
from voxspace.settings import Limits


class Collector:
    def __init__(self) -> None:
        self.saved: list[dict] = []

    def __call__(self, wav: bytes, duration: float, *, text: str, language: str, phrase_id: str,
                 source: str) -> dict:
        info = sf.info(io.BytesIO(wav))
        assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
        take = dict(duration=duration, text=text, language=language, phrase_id=phrase_id,
                    source=source)
        self.saved.append(take)
        return take


def speech_file(folder: Path, name: str, text: str = "Please call Maria at nine thirty.") -> Path:
    x, sr = speech(text)
    path = folder / name
    suffix = path.suffix.lower()
    if suffix == ".wav":
        path.write_bytes(wav_bytes(x, sr))
    else:
        src = folder / (path.stem + "-src.wav")
        src.write_bytes(wav_bytes(x, sr))
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), str(path)],
                       check=True)
        src.unlink()
    return path


# --- transcripts -----------------------------------------------------------------------------------
def texts(path: Path) -> dict[str, tuple[str, str | None]]:
    return {k: (v.text, v.language) for k, v in read_transcripts(path).table.items()}


def test_csv_with_bom_quotes_and_language(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text('\ufefffile_name,text,language\n"a.wav","Hello, Maria",en\nsub/b.wav,नमस्ते दुनिया,hi\n'
                 "c.wav,  spaced   out  ,\n", encoding="utf-8")
    assert texts(p) == {"a.wav": ("Hello, Maria", "en"), "b.wav": ("नमस्ते दुनिया", "hi"),
                                   "c.wav": ("spaced out", None)}


def test_tsv_and_jsonl_with_alternative_column_names(tmp_path):
    tsv = tmp_path / "t.tsv"
    tsv.write_text("path\tsentence\na.wav\tone two three\n", encoding="utf-8")
    assert texts(tsv) == {"a.wav": ("one two three", None)}
    jl = tmp_path / "t.jsonl"
    jl.write_text('{"file": "a.wav", "transcript": "bonjour à tous", "lang": "fr-FR"}\n\n',
                  encoding="utf-8")
    assert texts(jl) == {"a.wav": ("bonjour à tous", "fr")}


@pytest.mark.parametrize(("name", "content", "message"), [
    ("t.csv", "name,words\na.wav,hello\n", "needs a 'file_name' column and a 'text' column"),
    ("t.csv", "", "has no transcripts"),
    ("t.txt", "a.wav hello\n", "must be a .csv, .tsv or .jsonl"),
])
def test_malformed_transcript_files_say_what(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_text(content, encoding="utf-8")
    with pytest.raises(BadInput) as e:
        read_transcripts(p)
    assert message in e.value.user_message


@pytest.mark.parametrize(("name", "content", "key", "message"), [
    ("t.jsonl", '{"file_name": "a.wav", "text": "ok"}\n{"file_name": "b.wav", "text": "ok"}\n'
                '{"file_name": "c.wav", "text": oops}\n', "t.jsonl, line 3", "line 3 is not valid JSON"),
    ("t.jsonl", '{"file_name": "a.wav", "text": "ok"}\n["a.wav", "text"]\n', "t.jsonl, line 2",
     "line 2 must be a JSON object"),
    ("t.csv", "file_name,text\na.wav,ok\nb.wav,hi there,extra\n", "t.csv, line 3", "line 3 has more cells"),
    ("t.csv", "file_name,text\na.wav,one\na.wav,two\n", "t.csv, line 3", "a.wav appears twice"),
    ("t.csv", "file_name,text,language\na.wav,ok,\nb.wav,hola,klingon\n", "b.wav",
     "line 3: Unsupported language"),
    ("t.csv", "file_name,text\na.wav,ok\nb.wav,\n", "b.wav", "transcript of b.wav is empty"),
    ("t.csv", "file_name,text\na.wav,ok\n,hello\n", "t.csv, line 3", "line 3: the file name is empty"),
])
def test_a_bad_line_is_named_and_the_good_lines_kept(tmp_path, name, content, key, message):
    p = tmp_path / name
    p.write_text(content, encoding="utf-8")
    found = read_transcripts(p)
    assert found.table["a.wav"].text in ("ok", "one")
    assert list(found.refused) == [key] and message in found.refused[key]


def test_binary_transcript_file_is_refused(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b"\xff\xfe\x00\x01\x02binary")
    with pytest.raises(BadInput, match="not UTF-8"):
        read_transcripts(p)


# --- plain uploads ---------------------------------------------------------------------------------
def test_upload_of_every_format_with_a_csv(tmp_path):
    files = [speech_file(tmp_path, f"take.{ext}") for ext in ("wav", "flac", "ogg", "mp3")]
    csv = tmp_path / "t.csv"
    csv.write_text("file_name,text\n" + "".join(f"{f.name},Call Maria at nine thirty\n" for f in files))
    save = Collector()
    rows = ingest_upload(files, transcripts=csv, language="en", save=save)
    assert [r.accepted for r in rows] == [True] * 4, [r.reason for r in rows]
    assert len(save.saved) == 4
    assert {s["source"] for s in save.saved} == {"upload"} and save.saved[0]["language"] == "en"
    assert all(1.0 < r.duration < 4.0 for r in rows)


def test_bad_files_are_rejected_with_reasons_and_the_rest_saved(tmp_path):
    good = speech_file(tmp_path, "good.wav")
    quiet = tmp_path / "quiet.wav"
    quiet.write_bytes(wav_bytes(tone(2, 16_000, dbfs=-60), 16_000))
    short = tmp_path / "short.wav"
    short.write_bytes(wav_bytes(tone(0.3, 16_000), 16_000))
    fake = tmp_path / "fake.wav"
    fake.write_text("not audio at all")
    orphan = speech_file(tmp_path, "orphan.wav")
    notes = tmp_path / "notes.pdf"
    notes.write_bytes(b"%PDF-1.4")
    jl = tmp_path / "t.jsonl"  # a transcript file may come among the uploaded files
    jl.write_text("".join(json.dumps({"file_name": n, "text": f"phrase for {n}", "language": "de"})
                          + "\n" for n in ("good.wav", "quiet.wav", "short.wav", "fake.wav")))
    save = Collector()
    rows = ingest_upload([good, quiet, short, fake, orphan, notes, jl], language="en", save=save)
    by_name = {r.name: r for r in rows}
    assert set(by_name) == {"good.wav", "quiet.wav", "short.wav", "fake.wav", "orphan.wav",
                            "notes.pdf"}
    assert by_name["good.wav"].accepted and save.saved[0]["language"] == "de"
    assert by_name["quiet.wav"].reason.startswith("Too quiet")
    assert by_name["short.wav"].reason.startswith("Too short")
    assert "couldn't read" in by_name["fake.wav"].reason
    assert by_name["orphan.wav"].reason.startswith("No transcript")
    assert by_name["notes.pdf"].reason.startswith("Not an audio file")
    assert len(save.saved) == 1
    headers, cells = as_table(rows)
    assert headers[1] == "Result" and cells[1][1].startswith("rejected: Too quiet")


def test_upload_limits(tmp_path):
    files = [speech_file(tmp_path, f"{i}.wav") for i in range(3)]
    with pytest.raises(BadInput, match="Too many files"):
        ingest_upload(files, language="en", save=Collector(), limits=Limits(max_upload_files=2))
    with pytest.raises(BadInput, match="too large"):
        ingest_upload(files, language="en", save=Collector(), limits=Limits(max_upload_mb=0))


def test_unsupported_default_language_is_refused(tmp_path):
    with pytest.raises(BadInput, match="Unsupported language"):
        ingest_upload([speech_file(tmp_path, "a.wav")], language="xx", save=Collector())


# --- zips ------------------------------------------------------------------------------------------
def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_zip_with_audio_and_transcripts_in_folders(tmp_path):
    a = speech_file(tmp_path, "a.wav").read_bytes()
    b = speech_file(tmp_path, "b.flac", "The bus leaves at half past seven.").read_bytes()
    z = make_zip(tmp_path / "takes.zip", {
        "takes/clips/a.wav": a, "takes/clips/b.flac": b,
        "takes/metadata.csv": b"file_name,text\nclips/a.wav,Call Maria\nb.wav,The bus leaves\n",
        "__MACOSX/takes/._a.wav": b"junk", "takes/.DS_Store": b"junk"})
    save = Collector()
    rows = ingest_upload([z], language="en", save=save)
    assert [(r.name, r.accepted, r.text) for r in rows] == [
        ("takes/clips/a.wav", True, "Call Maria"), ("takes/clips/b.flac", True, "The bus leaves")]


@pytest.mark.parametrize("evil", ["../evil.wav", "ok/../../evil.wav", "/tmp/evil.wav", "C:/evil.wav",
                                  "..\\evil.wav"])
def test_zip_path_traversal_is_refused_and_nothing_escapes(tmp_path, evil):
    dest = tmp_path / "deep" / "dest"
    dest.mkdir(parents=True)
    x, sr = speech()
    z = make_zip(tmp_path / "evil.zip", {"fine.wav": wav_bytes(x, sr), evil: wav_bytes(x, sr),
                                         "t.csv": b"file_name,text\nfine.wav,hi\nevil.wav,hi\n"})
    with pytest.raises(BadInput, match="unsafe path"):
        extract_zip(z, dest, Limits())
    assert not list(tmp_path.rglob("*.wav"))  # judged before anything is written
    save = Collector()
    rows = ingest_upload([z], language="en", save=save)
    assert len(rows) == 1 and not rows[0].accepted and rows[0].name == "evil.zip"
    assert save.saved == []


def test_zip_symlink_is_refused(tmp_path):
    z = tmp_path / "link.zip"
    with zipfile.ZipFile(z, "w") as zf:
        info = zipfile.ZipInfo("a.wav")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(BadInput, match="symbolic link"):
        extract_zip(z, tmp_path / "out", Limits())


def test_zip_bomb_and_oversized_zip_are_refused(tmp_path):
    bomb = make_zip(tmp_path / "bomb.zip", {"a.wav": bytes(20_000_000)})
    assert bomb.stat().st_size < 100_000
    with pytest.raises(BadInput, match="zip bomb"):
        extract_zip(bomb, tmp_path / "out", Limits())
    assert not (tmp_path / "out" / "a.wav").exists()
    x, sr = speech()
    big = make_zip(tmp_path / "big.zip", {f"{i}.wav": wav_bytes(x, sr) for i in range(3)})
    with pytest.raises(BadInput, match="too large once unpacked"):
        extract_zip(big, tmp_path / "out", Limits(max_upload_mb=0))
    with pytest.raises(BadInput, match="too many files"):
        extract_zip(big, tmp_path / "out", Limits(max_upload_files=2))


def test_not_a_zip_becomes_a_rejected_row(tmp_path):
    z = tmp_path / "takes.zip"
    z.write_text("hello")
    rows = ingest_upload([z], language="en", save=Collector())
    assert rows[0].reason == "takes.zip is not a valid zip file."


def test_zip_with_a_malformed_transcript_line_names_it(tmp_path):
    x, sr = speech()
    z = make_zip(tmp_path / "t.zip", {"a.wav": wav_bytes(x, sr), "meta.jsonl": b'{"file_name": "a.wav"\n'})
    rows = ingest_upload([z], language="en", save=Collector())
    by_name = {r.name: r for r in rows}
    assert by_name["a.wav"].reason.startswith("No transcript")
    assert "meta.jsonl, line 1 is not valid JSON" in by_name["meta.jsonl, line 1"].reason
    z = make_zip(tmp_path / "u.zip", {"a.wav": wav_bytes(x, sr), "meta.csv": b"name,words\na.wav,hi\n"})
    rows = ingest_upload([z], language="en", save=Collector())
    assert [r.name for r in rows] == ["u.zip"] and "needs a 'file_name' column" in rows[0].reason


# --- import from a dataset folder (the Hub-server variant lives in test_ingest_hub.py) ------------
def test_import_streams_with_column_mapping_and_caps(tmp_path):
    from voxspace.ingest import import_hub_dataset

    root = tmp_path / "ds"
    texts = [f"sentence number {i} for the import" for i in range(5)]
    (root / "data").mkdir(parents=True)
    meta = []
    for i, t in enumerate(texts):
        x, sr = speech(t)
        if i == 1:
            x = silence(2, sr)  # a broken row is rejected, not fatal
        (root / "data" / f"{i}.wav").write_bytes(wav_bytes(x, sr))
        meta.append({"file_name": f"{i}.wav", "sentence": t, "locale": "en-GB" if i else "xx"})
    (root / "data" / "metadata.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))

    save, seen = Collector(), []
    rows = import_hub_dataset(str(root), audio_column="audio", text_column="sentence",
                              language_column="locale", language="fr", max_takes=3, save=save,
                              progress=seen.append)
    assert [r.accepted for r in rows] == [True, False, True, True] and seen == rows
    assert [s["language"] for s in save.saved] == ["fr", "en", "en"]  # "xx" falls back
    assert {s["source"] for s in save.saved} == {"import"}
    assert rows[1].reason.startswith("We didn't hear any speech")

    save = Collector()
    first = speech(texts[0])
    rows = import_hub_dataset(str(root), audio_column="audio", text_column="sentence",
                              max_minutes=(len(first[0]) / first[1] + 0.5) / 60, save=save)
    assert len(save.saved) == 1  # the second take would pass the cap, so it is not saved

    with pytest.raises(BadInput, match="no column 'transcript'"):
        import_hub_dataset(str(root), text_column="transcript", save=Collector())
    with pytest.raises(BadInput, match="max_takes must be a positive"):
        import_hub_dataset(str(root), text_column="sentence", max_takes=0, save=Collector())
    with pytest.raises(HubError):
        import_hub_dataset(str(tmp_path / "missing"), save=Collector())


def test_cli_upload_command_saves_into_the_local_store(tmp_path, monkeypatch, capsys):
    import argparse

    from voxspace.ingest import add_upload_command
    from voxspace.layout import read_folder
    from voxspace.store import TakeStore

    monkeypatch.setenv("VOXSPACE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("HF_TOKEN", raising=False)  # no token: the local no-token folder
    wav = speech_file(tmp_path, "a.wav")
    csv = tmp_path / "t.csv"
    csv.write_text("file_name,text\na.wav,Call Maria\n")
    parser = argparse.ArgumentParser()
    add_upload_command(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(["upload", str(wav), str(tmp_path / "missing.wav"), "--transcripts",
                              str(csv), "--language", "en"])
    try:
        assert args.func(args) == 0
    finally:
        TakeStore.close_all()
    out = capsys.readouterr().out
    assert "ok   a.wav" in out and "skip missing.wav" in out and "saved 1 takes" in out
    [take] = read_folder(tmp_path / "data" / "local")
    assert (take.take.text, take.take.language, take.take.source) == ("Call Maria", "en", "upload")
