"""Server-side checks on every take before it is stored: decode, 16 kHz mono, trim, judge.

    clean = prepare_take("take.webm")        # raises a BadAudio subclass with a user message
    store.save(clean.wav_bytes(), clean.duration, ...)

Decoding: soundfile (libsndfile 1.2 reads wav/flac/ogg-vorbis/opus/mp3) first; anything it refuses
(webm/opus from browsers, m4a) goes through the `ffmpeg` binary, asked to re-emit float WAV on a
pipe so that the same soundfile reader (and the same channel/rate handling) applies to both paths.
No torch, no transformers: this runs on every Save and must answer in milliseconds.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from voxspace.errors import Clipped, NonFiniteAudio, TooLong, TooQuiet, TooShort, UnreadableAudio
from voxspace.input_checks import HEADER_LENGTH_FACTOR, check_complete, check_header, file_too_long
from voxspace.settings import Limits

SAMPLE_RATE = 16_000
FRAME_S = 0.02  # energy frames for trimming: 20 ms
PAD_S = 0.2  # silence kept on each side of the speech, so word onsets/offsets are not cut
TRIM_BELOW_PEAK_DB = 35.0  # frames this far below the loudest one count as silence
TRIM_ABOVE_FLOOR_DB = 6.0  # ... unless the noise floor is closer than that
FULL_SCALE = 0.999  # |sample| at or above this counts as clipped (int16 full scale is 0.99997)
FFMPEG_TIMEOUT_S = 60
DEFAULT_LIMITS = Limits()  # frozen, so one shared default is safe

AudioSource = str | Path | bytes | tuple[int, np.ndarray]

UNREADABLE_MSG = ("We couldn't read this as audio. Please record again, or upload a WAV, FLAC, "
                  "OGG or MP3 file.")


@dataclass(frozen=True, eq=False)
class CleanAudio:
    """A take that passed every check: float32 mono at 16 kHz, silence trimmed (read-only)."""

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        self.samples.flags.writeable = False

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    def wav_bytes(self) -> bytes:
        """16-bit PCM WAV, the storage format of the dataset layout."""
        buf = io.BytesIO()
        sf.write(buf, np.clip(self.samples, -1.0, 1.0), self.sample_rate, format="WAV",
                 subtype="PCM_16")
        return buf.getvalue()


# --- decoding -----------------------------------------------------------------------------------
def decode(source: AudioSource, limits: Limits = DEFAULT_LIMITS) -> tuple[np.ndarray, int]:
    """Any input the UI, an upload or an import gives -> (float32 samples, sample rate).

    Samples are shaped (frames,) or (frames, channels) and scaled to [-1, 1] for integer input;
    nothing is mixed, resampled or judged yet, except what the header alone tells
    (input_checks: a file far too long, or one cut short, is refused before it is decoded). A path
    is read by soundfile frame by frame, never whole into memory. `source` is a file path, the
    file's bytes, or gradio's `type="numpy"` tuple (sample_rate, int16/float array).
    """
    if isinstance(source, tuple):
        sr, data = source
        return _to_float(np.asarray(data)), int(sr)
    if isinstance(source, (bytes, bytearray, memoryview)):
        src: Path | bytes = bytes(source)
        name, size = "uploaded bytes", len(src)
    else:
        src = Path(source)
        name = src.name
        try:
            size = src.stat().st_size
        except OSError as e:
            raise UnreadableAudio(UNREADABLE_MSG, detail=f"{name}: {e.strerror}") from e
    if not size:
        raise UnreadableAudio("This file is empty. Please record again or choose another file.",
                              detail=f"{name}: 0 bytes")
    try:
        declared = check_header(src, limits, name)
    except OSError as e:
        raise UnreadableAudio(UNREADABLE_MSG, detail=f"{name}: {e.strerror}") from e
    try:
        samples, sr = _read_soundfile(src)
    except (sf.LibsndfileError, RuntimeError, ValueError) as first:
        samples, sr = _decode_with_ffmpeg(src, name, first, limits)
    check_complete(declared, len(samples), sr, name)
    return samples, sr


def _decode_with_ffmpeg(src: Path | bytes, name: str, first: Exception,
                        limits: Limits) -> tuple[np.ndarray, int]:
    cap_s = limits.max_take_s * HEADER_LENGTH_FACTOR
    try:
        samples, sr = _read_soundfile(_ffmpeg_to_wav(src, cap_s))
    except (sf.LibsndfileError, RuntimeError, ValueError) as second:
        raise UnreadableAudio(UNREADABLE_MSG,
                              detail=f"{name}: soundfile: {first}; ffmpeg: {second}") from second
    if len(samples) >= (cap_s - 0.5) * sr:  # ffmpeg stopped at the cap: the file goes on
        raise file_too_long(None, limits, detail=f"{name}: ffmpeg decoding stopped at {cap_s:g} s")
    return samples, sr


def _read_soundfile(data: Path | bytes) -> tuple[np.ndarray, int]:
    samples, sr = sf.read(io.BytesIO(data) if isinstance(data, bytes) else data, dtype="float32",
                          always_2d=False)
    return samples, int(sr)


def _ffmpeg_to_wav(src: Path | bytes, cap_s: float) -> bytes:
    """Formats libsndfile lacks (webm, m4a...): ffmpeg decodes to float WAV, channels and rate kept.

    At most `cap_s` seconds are decoded (-t), so a huge file cannot fill the memory.
    """
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("format not readable by soundfile and no ffmpeg binary on PATH")
    # Only the pipe may be opened: an uploaded playlist (m3u8, ffconcat) must not make ffmpeg
    # read the server's own files or URLs. A file is streamed in, not read whole first.
    args = [exe, "-nostdin", "-v", "error", "-protocol_whitelist", "pipe", "-i", "pipe:0", "-vn",
            "-t", f"{cap_s:g}", "-f", "wav", "-c:a", "pcm_f32le", "pipe:1"]
    try:
        if isinstance(src, bytes):
            proc = subprocess.run(args, input=src, capture_output=True, timeout=FFMPEG_TIMEOUT_S,
                                  check=False)
        else:
            with open(src, "rb") as f:
                proc = subprocess.run(args, stdin=f, capture_output=True, timeout=FFMPEG_TIMEOUT_S,
                                      check=False)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"ffmpeg took longer than {FFMPEG_TIMEOUT_S} s") from e
    if proc.returncode != 0 or not proc.stdout:
        raise RuntimeError(proc.stderr.decode(errors="replace").strip()[-300:] or "no output")
    return proc.stdout


def _to_float(data: np.ndarray) -> np.ndarray:
    """Integer PCM (gradio gives int16) -> float32 in [-1, 1]; float input passes through."""
    if data.dtype.kind == "f":
        return data.astype(np.float32, copy=False)
    if data.dtype.kind == "i":
        return (data / float(-np.iinfo(data.dtype).min)).astype(np.float32)
    if data.dtype.kind == "u":  # 8-bit WAV is unsigned, centred on 128
        half = (np.iinfo(data.dtype).max + 1) / 2
        return ((data - half) / half).astype(np.float32)
    raise UnreadableAudio(UNREADABLE_MSG, detail=f"unsupported sample type {data.dtype}")


# --- the checks ---------------------------------------------------------------------------------
def prepare_take(source: AudioSource, limits: Limits = DEFAULT_LIMITS) -> CleanAudio:
    """Decode, convert to 16 kHz mono, trim silence, then judge; raises a BadAudio subclass.

    Order matters for the message a person gets: a broken file is reported before a quiet one, and
    clipping is measured at the source rate (resampling smooths flat tops away).
    """
    samples, sr = decode(source, limits)
    if samples.size == 0:
        raise _no_speech(detail="0 samples")
    if not np.isfinite(samples).all():
        raise NonFiniteAudio("This recording contains invalid (NaN or infinite) samples. "
                             "Please record it again.",
                             detail=f"{int((~np.isfinite(samples)).sum())} non-finite samples")
    clipped_at = np.abs(samples) >= FULL_SCALE  # per channel, at the source rate
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    if sr != limits.sample_rate:
        mono = soxr.resample(mono, sr, limits.sample_rate, quality="HQ")
    mono = np.ascontiguousarray(mono - mono.mean(), dtype=np.float32)  # a mic's DC offset is not sound

    span = _voiced_span(mono, limits.sample_rate)
    if span is None:
        raise _no_speech(detail=f"no frame above the energy threshold in {len(mono)} samples")
    start, end = span
    speech_s = (end - start) / limits.sample_rate
    pad = int(PAD_S * limits.sample_rate)
    kept = mono[max(0, start - pad): min(len(mono), end + pad)]
    kept_s = len(kept) / limits.sample_rate

    if kept_s > limits.max_take_s:
        raise TooLong(f"Too long: please keep each take under {limits.max_take_s:g} seconds; "
                      "split a long passage into shorter phrases.",
                      detail=f"{kept_s:.2f} s after trimming > max_take_s={limits.max_take_s}")
    if speech_s < limits.min_speech_s:
        raise TooShort(f"Too short: please read the whole phrase; we need at least "
                       f"{limits.min_speech_s:g} second{'s' if limits.min_speech_s != 1 else ''} "
                       "of speech.",
                       detail=f"{speech_s:.2f} s of speech < min_speech_s={limits.min_speech_s}")
    level = _active_rms_dbfs(mono[start:end], limits.sample_rate)
    if level < limits.min_rms_dbfs:
        raise TooQuiet("Too quiet: move closer to the microphone or speak a little louder.",
                       detail=f"speech level {level:.1f} dBFS < min_rms_dbfs={limits.min_rms_dbfs}")
    # Share of clipped samples within the speech, counted at the source rate over all channels.
    s0, s1 = (int(x * sr / limits.sample_rate) for x in (start, end))
    region = clipped_at[s0:s1]
    fraction = float(region.mean()) if region.size else 0.0
    if fraction > limits.clip_fraction:
        raise Clipped("Too loud: the sound is distorted (clipped). Move back from the microphone a "
                      "little or lower the input volume, then record again.",
                      detail=f"{fraction:.4f} of samples at full scale > "
                             f"clip_fraction={limits.clip_fraction}")
    return CleanAudio(kept.copy(), limits.sample_rate)


def _no_speech(detail: str) -> TooShort:
    return TooShort("We didn't hear any speech. Check that the right microphone is selected and "
                    "not muted, then record again.", detail=detail)


def _frame_db(mono: np.ndarray, sr: int) -> np.ndarray:
    """RMS level in dBFS of consecutive FRAME_S frames (the last partial frame included)."""
    n = max(1, int(FRAME_S * sr))
    padded = np.pad(mono, (0, -len(mono) % n))
    power = np.mean(padded.reshape(-1, n).astype(np.float64) ** 2, axis=1)
    return 10 * np.log10(np.maximum(power, 1e-12))  # silence floors at -120 dBFS


def _voiced_span(mono: np.ndarray, sr: int) -> tuple[int, int] | None:
    """[start, end) sample indices from the first to the last frame loud enough to be speech.

    The threshold adapts to the take: 35 dB under its loudest frame, but never within 6 dB of its
    noise floor (5th-percentile frame), so steady background hum is trimmed too.
    """
    db = _frame_db(mono, sr)
    if db.max() <= -100:  # digital silence
        return None
    peak = db.max()
    threshold = min(max(peak - TRIM_BELOW_PEAK_DB, np.percentile(db, 5) + TRIM_ABOVE_FLOOR_DB),
                    peak - TRIM_ABOVE_FLOOR_DB)  # a steady signal (no floor to find) is kept whole
    voiced = np.flatnonzero(db >= threshold)
    n = max(1, int(FRAME_S * sr))
    return int(voiced[0] * n), int(min(len(mono), (voiced[-1] + 1) * n))


def _active_rms_dbfs(speech: np.ndarray, sr: int) -> float:
    """Level of the speech itself: mean power of the frames within 35 dB of the loudest.

    Pauses between words would otherwise drag a normal voice below the quiet threshold.
    """
    db = _frame_db(speech, sr)
    active = db[db >= db.max() - TRIM_BELOW_PEAK_DB]
    return float(10 * np.log10(np.mean(10 ** (active / 10))))
