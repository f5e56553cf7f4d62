"""Hands-free stop: speech then silence stops; speech alone, silence alone and noise never do."""

import numpy as np
import pytest

from tests.signals import pink_noise, silence, speech, white_noise
from voxspace.vad import VadConfig, should_stop, speech_frames, speech_s, trailing_silence_s

CFG = VadConfig()


@pytest.fixture(scope="module")
def voice():
    x, sr = speech("Please call Maria at nine thirty tomorrow morning.")
    loud = np.flatnonzero(np.abs(x) > 1e-3)  # espeak pads its output with silence
    return x[loud[0]: loud[-1] + 1], sr


def test_speech_then_silence_stops(voice):
    x, sr = voice
    take = np.concatenate([silence(0.5, sr), x, silence(1.5, sr)])
    assert should_stop(take, sr, CFG)
    assert 1.3 <= trailing_silence_s(take, sr, CFG) <= 1.6
    assert speech_s(take, sr, CFG) > 1.5


def test_short_pause_does_not_stop_yet(voice):
    x, sr = voice
    take = np.concatenate([x, silence(0.6, sr)])
    assert not should_stop(take, sr, CFG)
    assert should_stop(take, sr, VadConfig(silence_stop_s=0.4))


def test_speech_only_does_not_stop(voice):
    x, sr = voice
    assert not should_stop(x, sr, CFG)
    assert trailing_silence_s(x, sr, CFG) < 0.3


def test_silence_only_never_stops():
    sr = 16_000
    assert not should_stop(silence(5, sr), sr, CFG)
    assert not speech_frames(silence(5, sr), sr, CFG).any()
    assert trailing_silence_s(silence(3, sr), sr, CFG) == pytest.approx(3.0, abs=0.05)


@pytest.mark.parametrize("noise", [white_noise, pink_noise])
@pytest.mark.parametrize("dbfs", [-15.0, -30.0])
def test_noise_is_not_speech_and_never_stops(noise, dbfs):
    # webrtcvad on its own calls all of this speech (checked: 94-100% of frames).
    sr = 22_050
    x = noise(6, sr, dbfs=dbfs)
    assert speech_s(x, sr, CFG) == 0.0
    assert not should_stop(np.concatenate([x, silence(2, sr)]), sr, CFG)


def test_speech_in_noise_then_noise_stops(voice):
    # The voice is heard over steady noise, and the noise that follows counts as silence.
    x, sr = voice
    take = np.concatenate([x, np.zeros(int(2 * sr), np.float32)])
    take = take + white_noise(len(take) / sr + 0.1, sr, dbfs=-35)[: len(take)]
    assert speech_s(take, sr, CFG) > 1.0
    assert should_stop(take, sr, CFG)


def test_too_little_speech_does_not_stop(voice):
    x, sr = voice
    take = np.concatenate([x[: int(0.3 * sr)], silence(2, sr)])
    assert not should_stop(take, sr, VadConfig(min_speech_s=0.6))


def test_int16_browser_audio_at_48k(voice):
    x, sr = voice
    import soxr

    x48 = soxr.resample(np.concatenate([x, silence(1.5, sr)]), sr, 48_000)
    pcm = (x48 * 32767).astype(np.int16)
    assert should_stop(pcm, 48_000, CFG)
    assert not should_stop(pcm[:0], 48_000, CFG)


def test_config_is_validated():
    with pytest.raises(ValueError):
        VadConfig(frame_ms=25)
    with pytest.raises(ValueError):
        VadConfig(aggressiveness=4)
