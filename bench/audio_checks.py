"""How long the server-side checks take per take (they sit on the Save path; target: well under 0.5 s).

    python bench/audio_checks.py          # prints median milliseconds per call on this machine
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.signals import silence, speech, wav_bytes
from voxspace.audio import prepare_take
from voxspace.vad import StopDetector, should_stop


def median_ms(fn, repeat: int = 7) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    x, sr = speech("The bus to the city centre leaves at half past seven, please be on time.")
    take = np.concatenate([silence(1, sr), x, silence(1, sr)])
    x44 = (np.interp(np.arange(int(len(take) * 44_100 / sr)) * sr / 44_100, np.arange(len(take)), take)
           * 32767).astype(np.int16)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "take.wav"
        wav.write_bytes(wav_bytes(x44, 44_100))
        webm = Path(tmp) / "take.webm"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(wav), str(webm)], check=True)
        secs = len(x44) / 44_100
        print(f"take: {secs:.1f} s at 44.1 kHz")
        print(f"prepare_take(numpy int16)  {median_ms(lambda: prepare_take((44_100, x44))):7.1f} ms")
        print(f"prepare_take(wav path)     {median_ms(lambda: prepare_take(wav)):7.1f} ms")
        print(f"prepare_take(webm, ffmpeg) {median_ms(lambda: prepare_take(webm)):7.1f} ms")
        print(f"vad.should_stop(buffer)    {median_ms(lambda: should_stop(x44, 44_100)):7.1f} ms")
    # Hands-free: a 30 s take arriving as 0.5 s browser chunks at 48 kHz; the cost of judging it
    # after the last chunk, by re-reading the whole buffer or by feeding a StopDetector.
    rng = np.random.default_rng(0)
    take30 = (rng.standard_normal(30 * 48_000) * 1000).astype(np.int16)
    step = 24_000
    det = StopDetector(48_000)
    for i in range(0, len(take30) - step, step):
        det.feed(take30[i: i + step])
    t = time.perf_counter()
    det.feed(take30[-step:])
    feed_ms = 1000 * (time.perf_counter() - t)
    whole_ms = median_ms(lambda: should_stop(take30, 48_000), repeat=3)
    print(f"30 s take, last 0.5 s chunk: should_stop(whole) {whole_ms:.1f} ms, "
          f"StopDetector.feed {feed_ms:.1f} ms")


if __name__ == "__main__":
    main()
