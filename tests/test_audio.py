"""Every take is checked server side: one test per bad input, and the conversions that must hold."""

import io
import subprocess

import numpy as np
import pytest
import soundfile as sf

from tests.signals import silence, speech, tone, wav_bytes, white_noise
from voxspace.audio import CleanAudio, decode, prepare_take
from voxspace.errors import (
    BadAudio,
    Clipped,
    NonFiniteAudio,
    TooLong,
    TooQuiet,
    TooShort,
    UnreadableAudio,
)
from voxspace.settings import Limits


def padded(x: np.ndarray, sr: int, before: float = 1.0, after: float = 1.0) -> np.ndarray:
    return np.concatenate([silence(before, sr), x, silence(after, sr)])


# --- bad inputs -----------------------------------------------------------------------------------
def test_non_audio_bytes_are_unreadable():
    with pytest.raises(UnreadableAudio) as e:
        prepare_take(b"\x00\x01 definitely not audio \xff" * 50)
    assert "couldn't read" in e.value.user_message


def test_text_file_renamed_wav_is_unreadable(tmp_path):
    fake = tmp_path / "take.wav"
    fake.write_text("hello, I am a text file pretending to be audio\n" * 20)
    with pytest.raises(UnreadableAudio) as e:
        prepare_take(fake)
    assert "take.wav" in e.value.detail and "take.wav" not in e.value.user_message


def test_empty_file_is_unreadable(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableAudio, match="empty"):
        prepare_take(empty)


def test_missing_file_is_unreadable(tmp_path):
    with pytest.raises(UnreadableAudio):
        prepare_take(tmp_path / "nope.wav")


@pytest.mark.parametrize("playlist", ["#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{wav}\n#EXT-X-ENDLIST\n",
                                      "ffconcat version 1.0\nfile {wav}\n"])
def test_playlists_cannot_make_ffmpeg_read_server_files(tmp_path, playlist):
    secret = tmp_path / "secret.wav"
    x, sr = speech()
    secret.write_bytes(wav_bytes(x, sr))
    upload = tmp_path / "take.webm"
    upload.write_text(playlist.format(wav=secret))
    with pytest.raises(UnreadableAudio):
        prepare_take(upload)


def test_nan_and_inf_samples_are_rejected():
    x, sr = speech()
    x = x.copy()
    x[1000] = np.nan
    with pytest.raises(NonFiniteAudio) as e:
        prepare_take((sr, x))
    assert e.value.detail == "1 non-finite samples"
    x[1000] = np.inf
    with pytest.raises(NonFiniteAudio):
        prepare_take(wav_bytes(x, sr, subtype="FLOAT"))


def test_short_speech_is_too_short():
    sr = 44_100
    with pytest.raises(TooShort) as e:
        prepare_take((sr, padded(tone(0.4, sr), sr)))
    assert "at least 1 second" in e.value.user_message
    assert e.value.detail.startswith("0.4")  # the speech, not the 2 s of silence around it


def test_silence_only_says_no_speech_was_heard():
    with pytest.raises(TooShort, match="didn't hear any speech"):
        prepare_take((16_000, np.zeros(32_000, np.int16)))
    with pytest.raises(TooShort, match="didn't hear any speech"):
        prepare_take((16_000, np.zeros(0, np.int16)))


def test_long_take_is_too_long():
    sr = 16_000
    with pytest.raises(TooLong) as e:
        prepare_take((sr, tone(31, sr)))
    assert "under 30 seconds" in e.value.user_message
    assert "31.00 s" in e.value.detail


def test_minus_60_dbfs_is_too_quiet():
    sr = 16_000
    with pytest.raises(TooQuiet) as e:
        prepare_take((sr, padded(tone(2, sr, dbfs=-60), sr)))
    assert e.value.user_message == "Too quiet: move closer to the microphone or speak a little louder."
    assert "-60.0 dBFS" in e.value.detail


def test_clipped_square_wave_is_rejected():
    sr = 16_000
    square = np.sign(np.sin(2 * np.pi * 200 * np.arange(2 * sr) / sr))
    pcm = (padded(square, sr) * 32767).astype(np.int16)
    with pytest.raises(Clipped, match="Too loud"):
        prepare_take((sr, pcm))


def test_one_clipped_burst_in_a_long_quiet_take_still_counts():
    # The clipped share is measured within the speech, so leading silence cannot dilute it.
    x, sr = speech()
    x = x.copy()
    x[5000:5200] = 1.0  # 200 of ~60k samples: above the 0.1% limit
    with pytest.raises(Clipped):
        prepare_take((sr, padded(x, sr, before=10, after=10)))


def test_every_rejection_is_a_bad_audio_with_a_code():
    with pytest.raises(BadAudio) as e:
        prepare_take(b"nope")
    assert e.value.code == "unreadable"


# --- happy paths ----------------------------------------------------------------------------------
def test_stereo_44k_int16_becomes_16k_mono_and_silence_is_trimmed():
    x, sr = speech()
    x44 = np.interp(np.arange(int(len(x) * 44_100 / sr)) * sr / 44_100, np.arange(len(x)), x)
    body = (padded(x44, 44_100, before=1.5, after=2.0) * 32767).astype(np.int16)
    stereo = np.stack([body, body // 2], axis=1)
    clean = prepare_take((44_100, stereo))
    assert clean.sample_rate == 16_000 and clean.samples.ndim == 1
    assert clean.samples.dtype == np.float32
    speech_s = len(x) / sr
    assert speech_s - 0.2 < clean.duration < speech_s + 0.6  # 3.5 s of silence gone, padding kept
    assert abs(clean.samples[:160]).max() < 0.01  # starts in the kept padding, not mid-word


def test_wav_bytes_reread_as_16k_mono_pcm16(tmp_path):
    x, sr = speech()
    clean = prepare_take((sr, x))
    data = clean.wav_bytes()
    info = sf.info(io.BytesIO(data))
    assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
    back, _ = sf.read(io.BytesIO(data), dtype="float32")
    assert len(back) == len(clean.samples)
    assert np.abs(back - clean.samples).max() < 1e-4
    assert isinstance(clean, CleanAudio) and abs(clean.duration - len(back) / 16_000) < 1e-9


def test_espeak_speech_passes_from_a_file(tmp_path):
    path = tmp_path / "take.wav"
    path.write_bytes(subprocess.run(["espeak-ng", "--stdout", "Please call Maria at nine thirty."],
                                    check=True, capture_output=True).stdout)
    clean = prepare_take(str(path))
    assert 1.0 < clean.duration < 5.0


@pytest.mark.parametrize("fmt", ["flac", "ogg", "mp3", "webm"])
def test_compressed_formats_decode(tmp_path, fmt):
    # wav/flac/ogg/mp3 are read by soundfile; webm (what browsers record) needs the ffmpeg fallback.
    x, sr = speech()
    src = tmp_path / "take.wav"
    src.write_bytes(wav_bytes(x, sr))
    out = tmp_path / f"take.{fmt}"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(src), str(out)], check=True)
    clean = prepare_take(out)
    assert abs(clean.duration - len(x) / sr) < 0.6


def test_decode_scales_int16_and_keeps_channels():
    samples, sr = decode((8_000, np.array([[-32768, 16384], [0, 32767]], np.int16)))
    assert sr == 8_000 and samples.shape == (2, 2) and samples.dtype == np.float32
    assert samples[0, 0] == -1.0 and samples[0, 1] == 0.5


def test_limits_are_honoured():
    sr = 16_000
    clean = prepare_take((sr, padded(tone(0.4, sr), sr)), Limits(min_speech_s=0.3))
    assert clean.duration < 1.0
    with pytest.raises(TooQuiet):
        prepare_take((sr, tone(2, sr, dbfs=-30)), Limits(min_rms_dbfs=-20))


def test_clean_samples_are_read_only():
    x, sr = speech()
    clean = prepare_take((sr, x))
    with pytest.raises(ValueError):
        clean.samples[0] = 1.0


def test_recording_modules_import_no_heavy_libraries():
    # The Save path must answer fast: torch, transformers, datasets and gradio stay out of it.
    import sys

    code = ("import sys; import voxspace.audio, voxspace.phrases, voxspace.ingest, voxspace.vad; "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'gradio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("spoil", ["dc_offset", "noise_floor"])
def test_trimming_survives_dc_offset_and_background_noise(spoil):
    x, sr = speech()
    loud = np.flatnonzero(np.abs(x) > 1e-3)
    x = x[loud[0]: loud[-1] + 1]
    take = padded(x, sr, before=2, after=2)
    if spoil == "dc_offset":
        take = take + 0.05
    else:
        take = take + white_noise(len(take) / sr + 1, sr, dbfs=-50)[: len(take)]
    clean = prepare_take((sr, take.astype(np.float32)))
    assert len(x) / sr < clean.duration < len(x) / sr + 0.5  # 4 s of padding gone, no speech lost
    assert abs(float(clean.samples.mean())) < 0.01
