"""When to stop a hands-free take: speech was heard, then a stretch of silence (issue 6).

WebRTC's VAD (webrtcvad-wheels: a packaged model, nothing to download) marks frames with a voice's
energy and spectrum, but it also accepts steady loud noise (fans, traffic, white or pink noise) as
speech, which would keep a hands-free take from ever stopping or let noise pass as a take. So a
frame counts as speech only if the VAD says so AND a voiced frame (a pitch-like periodicity that
noise lacks) lies within `hangover_s`: consonants next to vowels are kept, noise on its own is not.

    cfg = VadConfig(silence_stop_s=1.5)
    if should_stop(buffer, 48_000, cfg): stop_recording()      # a whole buffer
    det = StopDetector(48_000, cfg)                             # or streamed, chunk by chunk
    if det.feed(chunk): stop_recording()
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr
import webrtcvad
from numpy.lib.stride_tricks import sliding_window_view

from voxspace.audio import decode

VAD_RATE = 16_000
PITCH_HZ = (60.0, 400.0)  # voices live here; lags outside it are ignored
ANALYSIS_S = 0.064  # periodicity window: ~4 periods of the lowest pitch
MIN_LEVEL_DBFS = -60.0  # quieter frames are silence whatever their shape


@dataclass(frozen=True)
class VadConfig:
    silence_stop_s: float = 1.2  # trailing silence that ends a take
    min_speech_s: float = 0.6  # speech that must be heard before silence can end it
    aggressiveness: int = 2  # webrtcvad 0 (lenient) .. 3 (strict)
    frame_ms: int = 30  # webrtcvad accepts 10, 20 or 30
    voicing_threshold: float = 0.5  # normalised autocorrelation peak; noise stays below ~0.35
    hangover_s: float = 0.3  # unvoiced sounds this close to a voiced frame count as speech

    def __post_init__(self) -> None:
        if self.frame_ms not in (10, 20, 30):
            raise ValueError("frame_ms must be 10, 20 or 30 (webrtcvad)")
        if not 0 <= self.aggressiveness <= 3:
            raise ValueError("aggressiveness must be 0..3")

    @property
    def frame_s(self) -> float:
        return self.frame_ms / 1000


DEFAULT = VadConfig()


def _mono(samples: np.ndarray, sr: int) -> np.ndarray:
    x, _ = decode((sr, np.asarray(samples)))  # int16 from the browser -> float32
    return np.nan_to_num(x.mean(axis=1) if x.ndim == 2 else x)


def _to_vad_rate(samples: np.ndarray, sr: int) -> np.ndarray:
    x = _mono(samples, sr)
    return soxr.resample(x, sr, VAD_RATE) if sr != VAD_RATE else x


def _voicing(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """At each centre (a sample index of `x`), the highest normalised autocorrelation at a voice's
    pitch lag, past the first zero crossing (so the slow decay of pink/brown noise is not mistaken
    for a period). Windows reaching past either end of `x` see zeros there."""
    win = int(ANALYSIS_S * VAD_RATE)
    lo, hi = int(VAD_RATE / PITCH_HZ[1]), int(VAD_RATE / PITCH_HZ[0])
    if not len(centres):
        return np.zeros(0)
    start, stop = centres[0] - win // 2, centres[-1] - win // 2 + win  # span of all windows
    seg = x[max(0, start): max(0, min(len(x), stop))]
    before = max(0, -start)
    seg = np.pad(seg, (before, stop - start - before - len(seg)))
    windows = sliding_window_view(seg, win)[centres - centres[0]]
    windows = (windows - windows.mean(axis=1, keepdims=True)) * np.hanning(win)
    ac = np.fft.irfft(np.abs(np.fft.rfft(windows, 2 * win, axis=1)) ** 2, axis=1)[:, : hi + 1]
    energy = ac[:, :1]
    r = np.divide(ac, energy, out=np.zeros_like(ac), where=energy > 1e-12)
    r *= win / (win - np.arange(hi + 1))  # undo the taper's bias toward short lags
    first_zero = np.argmax(r < 0, axis=1)  # 0 when it never crosses: no period found
    lags = np.arange(hi + 1)
    usable = (lags >= np.maximum(first_zero, lo)[:, None]) & (first_zero[:, None] > 0)
    return np.where(usable, r, 0.0).max(axis=1, initial=0.0)


def _vad_flags(x: np.ndarray, first: int, last: int, n: int, vad: webrtcvad.Vad) -> np.ndarray:
    """webrtcvad's verdict on frames first..last-1 (it keeps state: feed each frame once, in order)."""
    pcm = (np.clip(x[first * n: last * n], -1.0, 1.0) * 32767).astype(np.int16).reshape(-1, n)
    return np.array([vad.is_speech(f.tobytes(), VAD_RATE) for f in pcm], bool)


def _voiced_frames(x: np.ndarray, first: int, last: int, n: int, cfg: VadConfig) -> np.ndarray:
    """Frames first..last-1 that are periodic like a voice and loud enough to be one."""
    frames = x[first * n: last * n].reshape(-1, n).astype(np.float64)
    level = 10 * np.log10(np.maximum(np.mean(frames**2, axis=1), 1e-12))
    centres = np.arange(first, last) * n + n // 2
    return (_voicing(x, centres) >= cfg.voicing_threshold) & (level >= MIN_LEVEL_DBFS)


def _combine(flagged: np.ndarray, voiced: np.ndarray, cfg: VadConfig) -> np.ndarray:
    """Speech = webrtcvad says so AND a voiced frame lies within hangover_s."""
    if not len(flagged):
        return np.zeros(0, bool)
    reach = round(cfg.hangover_s / cfg.frame_s)
    near_voice = np.convolve(voiced, np.ones(2 * reach + 1))[reach: reach + len(voiced)] > 0
    return flagged & near_voice


def speech_frames(samples: np.ndarray, sr: int, cfg: VadConfig = DEFAULT) -> np.ndarray:
    """One bool per `cfg.frame_ms` frame (at 16 kHz): is someone speaking there?"""
    x = _to_vad_rate(samples, sr)
    n = VAD_RATE * cfg.frame_ms // 1000
    count = len(x) // n
    return _combine(_vad_flags(x, 0, count, n, webrtcvad.Vad(cfg.aggressiveness)),
                    _voiced_frames(x, 0, count, n, cfg), cfg)


def speech_s(samples: np.ndarray, sr: int, cfg: VadConfig = DEFAULT) -> float:
    """Seconds of speech heard in `samples`."""
    return float(speech_frames(samples, sr, cfg).sum() * cfg.frame_s)


def trailing_silence_s(samples: np.ndarray, sr: int, cfg: VadConfig = DEFAULT) -> float:
    """Seconds since the last speech frame (the whole length when nobody has spoken)."""
    return _trailing_s(speech_frames(samples, sr, cfg), cfg)


def _trailing_s(flags: np.ndarray, cfg: VadConfig) -> float:
    if not flags.any():
        return len(flags) * cfg.frame_s
    return float((len(flags) - 1 - np.flatnonzero(flags)[-1]) * cfg.frame_s)


def _over(flags: np.ndarray, cfg: VadConfig) -> bool:
    if flags.sum() * cfg.frame_s < cfg.min_speech_s:
        return False
    return _trailing_s(flags, cfg) >= cfg.silence_stop_s


def should_stop(samples: np.ndarray, sr: int, cfg: VadConfig = DEFAULT) -> bool:
    """True once at least min_speech_s of speech was heard and silence_stop_s has followed it.

    Noise alone never stops a take (no speech is ever heard), so a person who has not started
    yet is not cut off; the UI's own time limit (Limits.max_take_s) bounds that case.
    """
    return _over(speech_frames(samples, sr, cfg), cfg)


class StopDetector:
    """should_stop for a recording that arrives chunk by chunk (hands-free streaming).

    Each `feed` judges only the frames it completes, so a 30 s take costs what one should_stop
    call on it does, not that again for every chunk. A frame whose periodicity window still
    reaches past the audio so far is judged provisionally (zeros beyond the end, as should_stop
    does) and again once its window is complete.

        det = StopDetector(48_000, cfg)
        for sr, chunk in stream: if det.feed(chunk): stop()
    """

    def __init__(self, sample_rate: int, cfg: VadConfig = DEFAULT) -> None:
        self.cfg = cfg
        self.sample_rate = sample_rate
        self._n = VAD_RATE * cfg.frame_ms // 1000
        self._lookahead = int(ANALYSIS_S * VAD_RATE) // 2 - self._n // 2  # past a frame's end
        self._vad = webrtcvad.Vad(cfg.aggressiveness)
        self._resampler = (None if sample_rate == VAD_RATE
                           else soxr.ResampleStream(sample_rate, VAD_RATE, 1, dtype="float32"))
        self._x = np.zeros(0, np.float32)  # the take so far at 16 kHz (30 s = 1.9 MB)
        self._flagged = np.zeros(0, bool)
        self._voiced = np.zeros(0, bool)
        self._final = 0  # frames [0, _final) have their complete periodicity window

    def feed(self, chunk: np.ndarray) -> bool:
        """Add the next chunk (int16 or float, mono or (frames, channels)); True: stop now."""
        x = _mono(chunk, self.sample_rate).astype(np.float32)
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x)
        self._x = np.concatenate([self._x, x])
        total = len(self._x) // self._n
        done = len(self._flagged)
        self._flagged = np.concatenate([self._flagged,
                                        _vad_flags(self._x, done, total, self._n, self._vad)])
        # Voicing from the first provisional frame on; the frames before it are final.
        voiced = _voiced_frames(self._x, self._final, total, self._n, self.cfg)
        self._voiced = np.concatenate([self._voiced[: self._final], voiced])
        self._final = max(self._final, min(total, (len(self._x) - self._lookahead) // self._n))
        return self.stopped

    @property
    def flags(self) -> np.ndarray:
        """Per frame so far: is someone speaking there?"""
        return _combine(self._flagged, self._voiced, self.cfg)

    @property
    def stopped(self) -> bool:
        return _over(self.flags, self.cfg)
