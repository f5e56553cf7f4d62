"""Test audio made on the spot: espeak-ng speech and numpy signals (no fixtures on disk)."""

from __future__ import annotations

import functools
import io
import itertools
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf


@functools.lru_cache(maxsize=16)
def _espeak_wav(text: str, voice: str) -> bytes:
    return subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], check=True,
                          capture_output=True, timeout=30).stdout


def speech(text: str = "The quick brown fox jumps over the lazy dog near the river bank.",
           voice: str = "en") -> tuple[np.ndarray, int]:
    """espeak-ng speech as float32 mono at its native 22050 Hz, normalised to a -3 dBFS peak."""
    samples, sr = sf.read(io.BytesIO(_espeak_wav(text, voice)), dtype="float32")
    return (0.7 * samples / np.abs(samples).max()).astype(np.float32), sr


def distinct_takes(text: str = "one two three four five", step: float = 0.002
                   ) -> Callable[[], tuple[bytes, float]]:
    """`next_take()` -> (prepared 16 kHz WAV bytes, seconds): the same sentence a little quieter each
    call, so each is new audio as from a real microphone (a store refuses audio it already holds,
    and identical audio saved in the same second would be the same take id)."""
    from voxspace.audio import prepare_take

    samples, sr = speech(text)
    calls = itertools.count()

    def next_take() -> tuple[bytes, float]:
        clean = prepare_take((sr, samples * (1 - step * next(calls))))
        return clean.wav_bytes(), clean.duration

    return next_take


def silence(seconds: float, sr: int) -> np.ndarray:
    return np.zeros(int(seconds * sr), np.float32)


def tone(seconds: float, sr: int, *, dbfs: float = -20.0, hz: float = 180.0) -> np.ndarray:
    """A voice-like harmonic tone whose RMS is `dbfs`."""
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * hz * k * t) / k for k in range(1, 6))
    return (x / np.sqrt(np.mean(x**2)) * 10 ** (dbfs / 20)).astype(np.float32)


def white_noise(seconds: float, sr: int, *, dbfs: float = -25.0, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(int(seconds * sr))
    return (x * 10 ** (dbfs / 20)).astype(np.float32)


def pink_noise(seconds: float, sr: int, *, dbfs: float = -25.0, seed: int = 0) -> np.ndarray:
    """1/f noise, shaped in the frequency domain (closer to room rumble than white noise)."""
    n = int(seconds * sr)
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    return (x / np.sqrt(np.mean(x**2)) * 10 ** (dbfs / 20)).astype(np.float32)


def wav_bytes(samples: np.ndarray, sr: int, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def sparse_wav(path: Path, data_bytes: int) -> Path:
    """A 16 kHz mono 16-bit WAV whose data chunk is `data_bytes` of a hole: huge, yet nothing on disk."""
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 16_000, 32_000, 2, 16)  # PCM, mono, 16 kHz, 16-bit
    sizes = struct.pack("<I", 36 + data_bytes), struct.pack("<I", data_bytes)
    header = b"RIFF" + sizes[0] + b"WAVEfmt " + fmt + b"data" + sizes[1]
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + data_bytes)
    return path
