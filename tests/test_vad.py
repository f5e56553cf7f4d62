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


def test_a_very_short_buffer_is_judged_without_error(voice):
    x, sr = voice
    for seconds in (0.01, 0.2, 0.5):  # fewer frames than the hangover reaches
        flags = speech_frames(x[: int(seconds * sr)], sr, CFG)
        assert len(flags) == int(seconds * 16_000) // 480
        assert not should_stop(x[: int(seconds * sr)], sr, CFG)


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


def chunks(x: np.ndarray, sr: int, seconds: float = 0.5):
    step = int(seconds * sr)
    return [x[i: i + step] for i in range(0, len(x), step)]


def test_streaming_detector_matches_the_whole_buffer_at_16k(voice):
    # At 16 kHz nothing is resampled, so every chunk's verdict must equal should_stop on the
    # buffer so far: frames judged provisionally are judged again once their window is complete.
    import soxr

    from voxspace.vad import StopDetector

    x, sr = voice
    take = soxr.resample(np.concatenate([silence(0.4, sr), x, silence(2.0, sr)]), sr, 16_000)
    det, seen = StopDetector(16_000, CFG), np.zeros(0, np.float32)
    verdicts = []
    for c in chunks(take, 16_000, 0.37):  # chunk edges fall mid-frame
        seen = np.concatenate([seen, c])
        verdicts.append((det.feed(c), should_stop(seen, 16_000, CFG)))
        assert (det.flags == speech_frames(seen, 16_000, CFG)).all()
    assert [a for a, _ in verdicts] == [b for _, b in verdicts]
    assert verdicts[-1][0] and not verdicts[0][0]


def test_streaming_detector_on_browser_chunks_stops_after_the_silence(voice):
    import soxr

    from voxspace.vad import StopDetector

    x, sr = voice
    speech_end = 0.4 + len(x) / sr
    take = soxr.resample(np.concatenate([silence(0.4, sr), x, silence(3.0, sr)]), sr, 48_000)
    det = StopDetector(48_000, CFG)
    stopped_at = None
    for i, c in enumerate(chunks((take * 32767).astype(np.int16), 48_000)):
        if det.feed(c):
            stopped_at = (i + 1) * 0.5
            break
    assert stopped_at is not None
    assert speech_end + CFG.silence_stop_s <= stopped_at <= speech_end + CFG.silence_stop_s + 0.6


@pytest.mark.parametrize("noise", [white_noise, pink_noise])
def test_streaming_detector_never_stops_on_noise(noise):
    from voxspace.vad import StopDetector

    det = StopDetector(44_100, CFG)
    assert not any(det.feed(c) for c in chunks(noise(8, 44_100, dbfs=-20), 44_100))
    assert not det.flags.any()
