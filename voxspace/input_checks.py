"""What people hand us, judged before it is decoded or stored: one place for every entry point.

Audio headers: a WAV/FLAC that promises more audio than it holds (an interrupted copy or download)
is refused instead of being stored as a shorter clip against the whole sentence, and a file too long
to be a take is refused from its header, before a byte of it is decoded (a 460 MB WAV would need
about 2 GB as float samples). Transcripts: control characters are refused, and so is a text the
audio could not hold. audio.decode, store.save and ingest's transcript reader call these.

    declared = check_header(path, limits)          # TooLong / TruncatedAudio before decoding
    check_complete(declared, decoded_frames, sr)   # TruncatedAudio after decoding
    text = check_transcript(text, duration_s)      # ControlCharacters / TextDoesNotFitAudio
"""

from __future__ import annotations

import io
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import soundfile as sf

from voxspace.errors import ControlCharacters, TextDoesNotFitAudio, TooLong, TruncatedAudio
from voxspace.settings import Limits

# A file may hold silence around the take (trimmed later), so the header may say more than
# max_take_s; beyond this many times it, no take under the limit can be in it.
HEADER_LENGTH_FACTOR = 4.0
# Missing audio up to this long is tolerated (writers round the data size to a block).
TRUNCATION_TOLERANCE_S = 0.05
# Fast read speech is 15-18 characters per second (spaces included), the fastest human speakers
# about 25-30; 40 is out of human reach even for scripts that spend several code points per
# syllable (Devanagari vowel signs). The slack keeps very short takes ("OK, thanks!") clear of it.
MAX_CHARS_PER_S = 40.0
CHARS_SLACK = 10
# A WAV written to a pipe cannot know its length and says 0 or a huge placeholder (ffmpeg
# 0xFFFFFFFF, espeak-ng 0x7FFFF000): not a lie. Real files that large are over the upload limit.
_STREAMING_SIZE = 0x7FFF0000
_WHITESPACE = "\t\n\r\x0b\x0c"
_NAMES = {0x00: "NUL", 0x07: "BEL", 0x08: "backspace", 0x1B: "ESC (a terminal colour code)", 0x7F: "DEL"}


@dataclass(frozen=True)
class Declared:
    """How much audio a file's header promises; `checked` when decoding must deliver all of it."""

    frames: int
    sample_rate: int
    checked: bool

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


# --- audio headers ------------------------------------------------------------------------------
def check_header(source: Path | bytes, limits: Limits, name: str = "") -> Declared | None:
    """Read only the header of `source`; refuse a lying WAV or a file far too long to be a take.

    None when soundfile cannot read the header (webm, m4a: ffmpeg decodes those, capped in length).
    """
    with _open(source) as f:
        try:
            info = sf.info(f)
        except (RuntimeError, ValueError, TypeError):
            return None
        checked = info.format in ("WAV", "FLAC")
        frames = info.frames
        if info.format == "WAV":  # libsndfile quietly shortens a WAV to the data present: look ourselves
            frames = _wav_declared_frames(f, info, name) or frames
    declared = Declared(frames, info.samplerate, checked)
    if declared.duration > limits.max_take_s * HEADER_LENGTH_FACTOR:
        raise file_too_long(
            declared.duration,
            limits,
            detail=f"{name}: header says {declared.duration:.1f} s > "
            f"{HEADER_LENGTH_FACTOR:g} x max_take_s; not decoded",
        )
    return declared


def file_too_long(duration_s: float | None, limits: Limits, detail: str) -> TooLong:
    """The sentence for a file far longer than a take (`duration_s` None: longer than the cap)."""
    cap_s = limits.max_take_s * HEADER_LENGTH_FACTOR
    holds = f"more than {_clock(cap_s)}" if duration_s is None else _clock(duration_s)
    return TooLong(
        f"Too long: this file holds {holds} of audio; please keep each take under "
        f"{limits.max_take_s:g} seconds and split a long recording into short phrases.",
        detail=detail,
    )


def check_complete(declared: Declared | None, frames: int, sample_rate: int, name: str = "") -> None:
    """After decoding: a WAV or FLAC must hold the audio its header promised (TruncatedAudio)."""
    if declared is None or not declared.checked or not declared.frames or not sample_rate:
        return
    got_s = frames / sample_rate
    if declared.duration - got_s > TRUNCATION_TOLERANCE_S:
        raise _truncated(declared.duration, got_s, name)


def _wav_declared_frames(f: BinaryIO, info: sf._SoundFileInfo, name: str) -> int | None:
    """Frames the WAV's data chunk declares; TruncatedAudio when fewer bytes follow it."""
    f.seek(0, io.SEEK_END)
    size = f.tell()
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
        if chunk_id != b"data":
            pos += 8 + chunk_size + (chunk_size & 1)
            continue
        present = size - pos - 8
        if chunk_size == 0 or chunk_size >= _STREAMING_SIZE or chunk_size <= present:
            return None
        if not info.frames or not present:
            raise _truncated(None, 0.0, name)
        bytes_per_frame = present / info.frames
        declared = int(chunk_size / bytes_per_frame)
        if (declared - info.frames) / info.samplerate > TRUNCATION_TOLERANCE_S:
            raise _truncated(declared / info.samplerate, info.frames / info.samplerate, name)
        return None
    return None


def _truncated(promised_s: float | None, got_s: float, name: str) -> TruncatedAudio:
    promise = "" if promised_s is None else f"{_clock(promised_s)} of audio"
    return TruncatedAudio(
        "This file is cut short: its header promises "
        + (promise or "audio")
        + f" but only {_clock(got_s)} is there (an interrupted copy or "
        "download?). It was not saved, so the transcript is not paired with part of the audio; "
        "upload the complete file or record it again.",
        detail=f"{name}: declared {promised_s} s, present {got_s:.3f} s",
    )


def _open(source: Path | bytes) -> BinaryIO:
    return io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")


def _clock(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min {seconds % 60:.0f} s"


# --- transcripts --------------------------------------------------------------------------------
def control_character(text: str) -> str | None:
    """The first control character of `text` other than whitespace, named with its position."""
    for i, ch in enumerate(text):
        if unicodedata.category(ch) == "Cc" and ch not in _WHITESPACE:
            return f"{_NAMES.get(ord(ch), f'U+{ord(ch):04X}')}, character {i + 1}"
    return None


def check_transcript(text: str, duration_s: float | None = None) -> str:
    """Whitespace collapsed; refuses control characters and a text too long for `duration_s` of audio.

    Control characters (NUL, terminal escape codes, other C0/C1 codes) are refused, not stripped:
    they mean the text came from a binary file or a terminal, and what else was garbled there we
    cannot know. Tabs and line breaks are ordinary whitespace and become single spaces.
    """
    text = str(text)
    what = control_character(text)
    if what is not None:
        raise ControlCharacters(
            f"The transcript contains a control character ({what}), which is not text: it was "
            "refused, not cleaned up. It usually comes from a binary file or a terminal; correct "
            "the transcript and try again.",
            detail=f"{text[:80]!r}",
        )
    clean = " ".join(text.split())
    if duration_s is not None and duration_s > 0:
        most = MAX_CHARS_PER_S * duration_s + CHARS_SLACK
        if len(clean) > most:
            raise TextDoesNotFitAudio(
                f"This transcript is too long for the recording: {len(clean):,} characters for "
                f"{duration_s:.1f} s of speech, more than anyone can say (at most about "
                f"{int(most):,}). Check that the right text goes with this file.",
                detail=f"{len(clean) / duration_s:.0f} chars/s > {MAX_CHARS_PER_S:g}",
            )
    return clean
