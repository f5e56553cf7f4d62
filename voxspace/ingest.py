"""Takes that arrive in bulk: uploaded files (or a zip) with transcripts, and Hub audio datasets.

Every file goes through audio.prepare_take, exactly like a microphone take, and the caller gets a
table (one IngestRow per file) of what was accepted and what was rejected and why. Saving is the
caller's `save` (the store's TakeStore.save), so this module never touches the Hub itself.

    rows = ingest_upload([Path("takes.zip")], transcripts=None, language="en", save=store.save)
    rows = import_hub_dataset("me/clips", audio_column="audio", text_column="sentence",
                              max_minutes=30, save=store.save, token=token)
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import stat
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple

from voxspace.audio import DEFAULT_LIMITS, prepare_take
from voxspace.errors import BadInput, CorruptZip, MissingAudio, VoxSpaceError
from voxspace.input_checks import check_transcript
from voxspace.settings import LANGUAGES, Limits

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
TRANSCRIPT_SUFFIXES = (".csv", ".tsv", ".jsonl")
NAME_COLUMNS = ("file_name", "filename", "file", "path", "audio")
TEXT_COLUMNS = ("text", "transcript", "transcription", "sentence")
LANGUAGE_COLUMNS = ("language", "lang", "locale")
MAX_COMPRESSION_RATIO = 200  # audio hardly compresses; a ratio like this is a zip bomb

if TYPE_CHECKING:
    from voxspace.store import TakeStore

Save = Callable[..., Any]  # TakeStore.save(wav_bytes, duration, *, text, language, phrase_id, source)


@dataclass
class IngestRow:
    """One line of the table shown after an upload or import."""

    name: str
    accepted: bool
    reason: str  # the user message when rejected, "" when accepted
    duration: float  # seconds stored (0.0 when rejected)
    text: str
    take_id: str = ""  # the take it became ("" when rejected)


def as_table(rows: list[IngestRow]) -> tuple[list[str], list[list[Any]]]:
    """Headers and cells for a table widget or a CLI print-out."""
    return (["File", "Result", "Seconds", "Transcript"],
            [[r.name, "accepted" if r.accepted else f"rejected: {r.reason}", round(r.duration, 2),
              r.text] for r in rows])


# --- transcripts ---------------------------------------------------------------------------------
def normalise_language(value: Any) -> str | None:
    """"en", "EN", "en_us", "en-GB" -> "en"; empty -> None; a language Voxtral lacks -> BadInput."""
    text = str(value or "").strip().lower().replace("-", "_").split("_")[0]
    if not text:
        return None
    if text not in LANGUAGES:
        raise BadInput(f"Unsupported language {value!r}. Use one of: {', '.join(LANGUAGES)}.")
    return text


def _pick(columns: list[str], wanted: tuple[str, ...]) -> str | None:
    lower = {c.strip().lower(): c for c in columns}
    return next((lower[w] for w in wanted if w in lower), None)


class Line(NamedTuple):
    """One transcript line: the text, its language (None: not given) and where it was read."""

    text: str
    language: str | None
    where: str  # "t.csv, line 4"


@dataclass
class TranscriptFile:
    """The good lines of a transcript file by audio name, and every refused line with its reason.

    `refused` maps the audio name a bad line gives (or "t.csv, line 4" when it gives none) to the
    sentence naming the line and the reason; the other lines are used.
    """

    table: dict[str, Line]
    refused: dict[str, str]


def read_transcripts(path: Path) -> TranscriptFile:
    """Audio file name -> transcript line, from a csv, tsv or jsonl file; bad lines set aside.

    Columns (case-insensitive): a file name (file_name/filename/file/path/audio), a text
    (text/transcript/transcription/sentence) and optionally a language (language/lang/locale).
    A problem with the whole file (not UTF-8, no such columns, no lines) raises BadInput; a bad
    line (not JSON, an empty or garbled field, a name twice) is refused by its number, and the
    good lines are kept.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TRANSCRIPT_SUFFIXES:
        raise BadInput(f"{path.name}: transcripts must be a .csv, .tsv or .jsonl file.")
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadInput(f"{path.name} is not UTF-8 text. Save it as UTF-8 and upload it again.",
                       detail=str(e)) from e
    refused: dict[str, str] = {}
    rows = []
    for line, row in (_jsonl_rows(path.name, content) if suffix == ".jsonl"
                      else _delimited_rows(path.name, content, "\t" if suffix == ".tsv" else ",")):
        if isinstance(row, str):
            refused[f"{path.name}, line {line}"] = row
        else:
            rows.append((line, row))
    if not rows and not refused:
        raise BadInput(f"{path.name} has no transcripts in it.")
    columns = list(dict.fromkeys(k for _, row in rows for k in row))
    name_col, text_col = _pick(columns, NAME_COLUMNS), _pick(columns, TEXT_COLUMNS)
    lang_col = _pick(columns, LANGUAGE_COLUMNS)
    if rows and (name_col is None or text_col is None):
        raise BadInput(f"{path.name} needs a 'file_name' column and a 'text' column "
                       f"(found: {', '.join(columns) or 'none'}).")
    table: dict[str, Line] = {}
    for line, row in rows:
        where = f"{path.name}, line {line}"
        name = str(row.get(name_col) or "").strip()
        key = _key(name) if name else where
        if key in table:  # the first line stands; this one is named on its own
            refused[where] = f"{where}: {name} appears twice; the first line was used."
            continue
        try:
            table[key] = _read_line(row, name, where, text_col, lang_col)
        except BadInput as e:
            refused.setdefault(key, e.user_message)
    return TranscriptFile(table, refused)


def _read_line(row: dict, name: str, where: str, text_col: str | None, lang_col: str | None) -> Line:
    if not name:
        raise BadInput(f"{where}: the file name is empty.")
    try:
        text = check_transcript(str(row.get(text_col) or ""))
    except BadInput as e:
        raise BadInput(f"{where}: {e.user_message}") from e
    if not text:
        raise BadInput(f"{where}: the transcript of {name} is empty.")
    try:
        language = normalise_language(row.get(lang_col)) if lang_col else None
    except BadInput as e:
        raise BadInput(f"{where}: {e.user_message}") from e
    return Line(text, language, where)


def _jsonl_rows(name: str, content: str) -> Iterator[tuple[int, dict | str]]:
    """(line number, row) for each line; (line number, the reason) for one that is not a row."""
    for n, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            yield n, f"{name}, line {n} is not valid JSON; the other lines were used."
            continue
        if not isinstance(row, dict):
            yield n, (f"{name}, line {n} must be a JSON object like "
                      '{"file_name": "a.wav", "text": "..."}; the other lines were used.')
            continue
        yield n, row


def _delimited_rows(name: str, content: str, delimiter: str) -> Iterator[tuple[int, dict | str]]:
    """As _jsonl_rows; a quoting error stops the reader (csv cannot resync), so later lines are lost."""
    reader = csv.DictReader(io.StringIO(content), delimiter=delimiter, strict=True)
    try:
        for row in reader:
            if None in row:  # more cells than header columns
                yield reader.line_num, (f"{name}, line {reader.line_num} has more cells than the "
                                        "header; the other lines were used.")
            elif any(v is not None and v.strip() for v in row.values()):
                yield reader.line_num, row
    except csv.Error:
        yield reader.line_num, (f"{name}, line {reader.line_num} is malformed (a stray quote?); "
                                "it and the lines after it were not used.")


def _key(name: str) -> str:
    """Transcripts match files by base name, whatever folder either was in."""
    return PurePosixPath(name.replace("\\", "/")).name


def _lookup(table: dict[str, Line], name: str) -> Line | None:
    key = _key(name)
    if key in table:
        return table[key]
    stem = PurePosixPath(key).stem  # "a.wav" listed, "a.flac" uploaded
    return next((v for k, v in table.items() if PurePosixPath(k).stem == stem), None)


# --- uploads ---------------------------------------------------------------------------------------
def ingest_upload(paths: list[Path], *, transcripts: Path | None = None, language: str = "",
                  save: Save, limits: Limits = DEFAULT_LIMITS) -> list[IngestRow]:
    """Check and save uploaded audio files; zips are opened safely and may hold the transcripts.

    A transcript file may be passed as `transcripts`, among `paths`, or inside a zip. `language`
    applies to files whose transcript gives none ("" lets Voxtral detect it). Besides a row per
    audio file, the table has a row per refused transcript line and per line whose audio file
    was not among the upload (MissingAudio), so nothing is dropped without a word.
    """
    paths = [Path(p) for p in paths]
    if language:
        normalise_language(language)
    listed = _Listed()
    for t in [transcripts, *(p for p in paths if p.suffix.lower() in TRANSCRIPT_SUFFIXES)]:
        if t is not None:
            listed.add(read_transcripts(Path(t)))
    _check_upload_size([p for p in paths if p.suffix.lower() not in TRANSCRIPT_SUFFIXES], limits)

    rows: list[IngestRow] = []
    zip_refused = False
    for path in paths:
        suffix = path.suffix.lower()
        if suffix in TRANSCRIPT_SUFFIXES:
            continue
        if suffix == ".zip":
            zip_rows = _ingest_zip(path, listed, language, save, limits)
            zip_refused |= len(zip_rows) == 1 and zip_rows[0].name == path.name
            rows.extend(zip_rows)
        else:
            rows.append(_ingest_file(path, path.name, listed, language, save, limits))
    return rows + listed.leftovers(zip_refused)


@dataclass
class _Listed:
    """Every transcript line of an upload, which of them found their audio, and the refused ones."""

    table: dict[str, Line] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    def add(self, transcripts: TranscriptFile) -> None:
        self.table.update(transcripts.table)
        self.refused.update(transcripts.refused)

    def find(self, name: str) -> Line | str | None:
        """The line for audio `name`; the refusal sentence when its line was refused; None if unlisted."""
        key = _key(name)
        found = _lookup(self.table, name)
        if found is not None:
            self.used.add(next(k for k, v in self.table.items() if v is found))
            return found
        stem = PurePosixPath(key).stem
        bad = next((k for k in self.refused if k == key or PurePosixPath(k).stem == stem), None)
        if bad is not None:
            self.used.add(bad)
            return self.refused[bad]
        return None

    def leftovers(self, zip_refused: bool) -> list[IngestRow]:
        """Rows for refused lines no audio file answered, and for lines whose audio never came.

        After a zip was refused whole its files are unknown, so lines are not called missing then.
        """
        rows = [IngestRow(k, False, reason, 0.0, "") for k, reason in self.refused.items()
                if k not in self.used]
        if not zip_refused:
            for key, line in self.table.items():
                if key not in self.used:
                    e = MissingAudio(f"{line.where} names {key}, but no file of that name was uploaded; "
                                     "add the audio file (or remove the line).")
                    rows.append(IngestRow(key, False, e.user_message, 0.0, line.text))
        return rows


def _check_upload_size(paths: list[Path], limits: Limits) -> None:
    total = sum(p.stat().st_size for p in paths if p.exists())
    if len(paths) > limits.max_upload_files:
        raise BadInput(f"Too many files: upload at most {limits.max_upload_files} at a time.")
    if total > limits.max_upload_mb * 1_000_000:
        raise BadInput(f"This upload is too large: keep it under {limits.max_upload_mb} MB at a "
                       "time.", detail=f"{total} bytes")


def _ingest_file(path: Path, name: str, listed: _Listed, language: str, save: Save,
                 limits: Limits) -> IngestRow:
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        return IngestRow(name, False, "Not an audio file: use WAV, FLAC, OGG or MP3.", 0.0, "")
    found = listed.find(name)
    if found is None:
        return IngestRow(name, False, "No transcript for this file: add a line for it to the "
                         "csv/tsv/jsonl file.", 0.0, "")
    if isinstance(found, str):
        return IngestRow(name, False, f"Its transcript line was refused: {found}", 0.0, "")
    return _check_and_save(path, name, found.text, found.language or language, "upload", save, limits)


class _CapReached(Exception):
    """The next take would pass an import's max_minutes."""


def _check_and_save(source: Any, name: str, text: str, language: str, origin: str, save: Save,
                    limits: Limits, room_s: float = float("inf")) -> IngestRow:
    """prepare_take then save; a failure becomes a rejected row (others go on)."""
    try:
        clean = prepare_take(source, limits)
        if clean.duration > room_s:
            raise _CapReached
        take = save(clean.wav_bytes(), clean.duration, text=text, language=language, phrase_id="",
                    source=origin)
    except VoxSpaceError as e:  # BadAudio, or the store refusing: the row says why, others go on
        return IngestRow(name, False, e.user_message, 0.0, text)
    return IngestRow(name, True, "", clean.duration, text, getattr(take, "take_id", ""))


def _ingest_zip(path: Path, listed: _Listed, language: str, save: Save,
                limits: Limits) -> list[IngestRow]:
    with tempfile.TemporaryDirectory(prefix="voxspace-zip-") as tmp:
        try:
            members = extract_zip(path, Path(tmp), limits)
            inner = [read_transcripts(Path(tmp) / rel) for rel in members
                     if rel.suffix.lower() in TRANSCRIPT_SUFFIXES]
        except BadInput as e:
            return [IngestRow(path.name, False, e.user_message, 0.0, "")]
        for transcripts in inner:
            listed.add(transcripts)
        return [_ingest_file(Path(tmp) / rel, str(rel), listed, language, save, limits)
                for rel in members if rel.suffix.lower() not in TRANSCRIPT_SUFFIXES]


def extract_zip(path: Path, dest: Path, limits: Limits) -> list[PurePosixPath]:
    """Extract a zip into `dest`, refusing anything that could escape it or exhaust the disk.

    Refused (BadInput for the whole archive): absolute names, '..' components, symlinks,
    encrypted entries, more than max_upload_files entries, more than max_upload_mb uncompressed,
    or a compression ratio only a zip bomb has; CorruptZip when an entry fails its CRC, holds
    other than the size the archive declares, or cannot be decompressed. Hidden files and macOS
    '__MACOSX' folders are skipped. Returns the extracted files' relative paths.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise BadInput(f"{path.name} is not a valid zip file.", detail=str(e)) from e
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > limits.max_upload_files:
            raise BadInput(f"{path.name} holds too many files: at most {limits.max_upload_files}.")
        if sum(i.file_size for i in infos) > limits.max_upload_mb * 1_000_000:
            raise BadInput(f"{path.name} is too large once unpacked: keep it under "
                           f"{limits.max_upload_mb} MB.")
        wanted: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        for info in infos:  # every entry is judged before anything is written
            rel = _safe_member_name(path.name, info)
            if any(part.startswith(".") or part == "__MACOSX" for part in rel.parts):
                continue
            if info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1) + 1_000_000:
                raise BadInput(f"{path.name} looks like a zip bomb and was not opened.",
                               detail=f"{info.filename}: {info.file_size} bytes from "
                                      f"{info.compress_size}")
            if info.flag_bits & 0x1:
                raise BadInput(f"{path.name} is password-protected; upload an unencrypted zip.")
            wanted.append((info, rel))
        for info, rel in wanted:
            _extract_member(zf, info, dest / rel, path.name)
    return [rel for _, rel in wanted]


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, archive: str) -> None:
    """Copy one entry out, at most the size it declares (reads stop there), checking it whole."""
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with zf.open(info) as src, open(target, "wb") as out:
            while chunk := src.read(1 << 20):
                written += out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError) as e:
        raise _corrupt(archive, info, str(e)) from e
    if written != info.file_size:  # the archive lied about the size (Python does not check)
        raise _corrupt(archive, info, f"{written} bytes, {info.file_size} declared")


def _corrupt(archive: str, info: zipfile.ZipInfo, detail: str) -> CorruptZip:
    return CorruptZip(f"{archive} is damaged ({info.filename} fails the zip's own integrity check), so "
                      "nothing from it was added. Make the zip again from the original files and upload "
                      "it again.", detail=f"{info.filename}: {detail}")


def _safe_member_name(archive: str, info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename.replace("\\", "/")
    rel = PurePosixPath(name)
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise BadInput(f"{archive} contains a symbolic link ({info.filename}); links are not "
                       "allowed in uploads.")
    if rel.is_absolute() or (rel.parts and rel.parts[0].endswith(":")) or ".." in rel.parts:
        raise BadInput(f"{archive} contains an unsafe path ({info.filename}) and was not opened.")
    return rel


# --- Hub import ------------------------------------------------------------------------------------
def import_hub_dataset(repo_id: str, *, audio_column: str = "audio", text_column: str = "text",
                       language_column: str | None = None, language: str | None = None,
                       config: str | None = None, split: str = "train",
                       max_takes: int | None = None, max_minutes: float | None = None,
                       token: str | None = None, endpoint: str | None = None, save: Save,
                       progress: Callable[[IngestRow], None] | None = None,
                       limits: Limits = DEFAULT_LIMITS) -> list[IngestRow]:
    """Stream a Hub audio dataset into the user's takes, stopping at max_takes or max_minutes.

    Audio is read undecoded (bytes or a file on the Hub) and goes through prepare_take like any
    upload, so a broken row becomes a rejected row instead of ending the import. The caps count
    accepted takes; a take that would pass max_minutes is not saved.
    """
    from voxspace.hub_stream import stream_rows

    for cap, label in ((max_takes, "max_takes"), (max_minutes, "max_minutes")):
        if cap is not None and cap <= 0:
            raise BadInput(f"{label} must be a positive number.")
    default_language = normalise_language(language) or ""
    columns = tuple(c for c in (text_column, language_column) if c)
    rows: list[IngestRow] = []
    taken, seconds = 0, 0.0
    for i, row in enumerate(stream_rows(repo_id, config=config, split=split, columns=columns,
                                        audio_column=audio_column, token=token, endpoint=endpoint)):
        room_s = float("inf") if max_minutes is None else max_minutes * 60 - seconds
        try:
            out = _import_row(row, i, audio_column, text_column, language_column, default_language,
                              save=save, limits=limits, room_s=room_s, token=token, endpoint=endpoint)
        except _CapReached:
            break
        rows.append(out)
        if progress is not None:
            progress(out)
        if out.accepted:
            taken, seconds = taken + 1, seconds + out.duration
            if max_takes is not None and taken >= max_takes:
                break
    return rows


def _import_row(row: dict[str, Any], index: int, audio_column: str, text_column: str,
                language_column: str | None, default_language: str, *, save: Save, limits: Limits,
                room_s: float, token: str | None, endpoint: str | None) -> IngestRow:
    from voxspace.hub_stream import read_audio_bytes

    audio = row.get(audio_column) or {}
    name = PurePosixPath(str(audio.get("path") or f"row-{index}")).name
    text = " ".join(str(row.get(text_column) or "").split())
    if not text:
        return IngestRow(name, False, "This row has no transcript.", 0.0, "")
    try:
        language = normalise_language(row.get(language_column)) if language_column else None
    except BadInput:
        language = None  # a language Voxtral lacks: let it detect
    try:
        data = read_audio_bytes(audio, token=token, endpoint=endpoint)
    except VoxSpaceError as e:
        return IngestRow(name, False, e.user_message, 0.0, text)
    return _check_and_save(data, name, text, language or default_language, "import", save, limits,
                           room_s)


# --- CLI glue -------------------------------------------------------------------------------------
# cli._register_data wires these in with one line each: add_upload_command(dsub); add_import_command(dsub)
OpenStore = Callable[[argparse.Namespace], tuple["TakeStore", str | None]]


def _open_store(args: argparse.Namespace) -> tuple[TakeStore, str | None]:
    """The signed-in person's TakeStore (as `data add` opens it) and their token for Hub reads."""
    from voxspace.auth import resolve_identity
    from voxspace.settings import Settings
    from voxspace.store import TakeStore

    settings = Settings.from_env()
    identity = resolve_identity(settings)
    return TakeStore.for_identity(settings, identity, args.repo), identity.token


def _print_row(row: IngestRow) -> None:
    print(("ok   " if row.accepted else "skip ") + row.name + ("" if row.accepted else f": {row.reason}"))


def _finish(store: TakeStore, rows: list[IngestRow], timeout: float) -> int:
    kept = [r for r in rows if r.accepted]
    print(f"saved {len(kept)} takes ({sum(r.duration for r in kept) / 60:.1f} min), "
          f"rejected {len(rows) - len(kept)}")
    if kept and not store.local_only and not store.flush(timeout):
        print("not all on the Hub yet: they stay saved here and are pushed on the next run",
              file=sys.stderr)
    return 0 if kept or not rows else 1


def _common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--repo", help="your dataset repo (default <you>/voxspace-recordings)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the push")
    return p


def add_upload_command(sub: argparse._SubParsersAction,
                       open_store: OpenStore = _open_store) -> argparse.ArgumentParser:
    """`data upload FILE_OR_ZIP... [--transcripts t.csv] [--language en]`: many files at once."""
    p = _common(sub.add_parser("upload", help="check and save many audio files or a zip, with a "
                                              "csv/tsv/jsonl of transcripts"))
    p.add_argument("files", nargs="+", type=Path, help="wav/flac/ogg/mp3 files, zips, csv/tsv/jsonl")
    p.add_argument("--transcripts", type=Path, default=None, help="csv, tsv or jsonl")
    p.add_argument("--language", default="", help="for files whose transcript has none")

    def run(args: argparse.Namespace) -> int:
        store, _ = open_store(args)
        rows = ingest_upload(args.files, transcripts=args.transcripts, language=args.language,
                             save=store.save, limits=store.settings.limits)
        for row in rows:
            _print_row(row)
        return _finish(store, rows, args.timeout)

    p.set_defaults(func=run)
    return p


def add_import_command(sub: argparse._SubParsersAction,
                       open_store: OpenStore = _open_store) -> argparse.ArgumentParser:
    """`data import REPO_ID [--audio-column C] [--text-column C] [--max-takes N] [--max-minutes M]`."""
    p = _common(sub.add_parser("import", help="import takes from a Hub audio dataset (streamed)"))
    p.add_argument("repo_id", help="the dataset to import from, e.g. someone/clips")
    p.add_argument("--audio-column", default="audio")
    p.add_argument("--text-column", default="text")
    p.add_argument("--language-column", default=None)
    p.add_argument("--language", default=None, help="for rows without a language (default: detect)")
    p.add_argument("--config", default=None)
    p.add_argument("--split", default="train")
    p.add_argument("--max-takes", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None)

    def run(args: argparse.Namespace) -> int:
        store, token = open_store(args)
        rows = import_hub_dataset(
            args.repo_id, audio_column=args.audio_column, text_column=args.text_column,
            language_column=args.language_column, language=args.language, config=args.config,
            split=args.split, max_takes=args.max_takes, max_minutes=args.max_minutes, token=token,
            endpoint=store.settings.hub_endpoint, save=store.save, progress=_print_row,
            limits=store.settings.limits)
        return _finish(store, rows, args.timeout)

    p.set_defaults(func=run)
    return p
