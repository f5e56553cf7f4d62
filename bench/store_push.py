"""Save -> acknowledged, and save -> on the (local) Hub, for one take (targets: ack <= 0.5 s).

    python bench/store_push.py [--takes 10] [--seconds 4]
    python bench/store_push.py --pace 5 --hours 2 [--speed 240]

Starts the test suite's local Hub-API server in a temporary folder, saves prepared 16 kHz takes
through the real TakeStore and prints medians. The ack is a durable local write (fsync + rename);
the push is one commit per take here (preupload, LFS batch + PUT + verify, commit).

`--pace`: a recording session at one take every PACE s for HOURS, time compressed `speed` times
(the Hub's 128 commits/hour limit and the commit budget run on the same compressed clock).
Prints commits, the most in any hour, 429s, takes lost, and save -> on-Hub latency in Hub seconds.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.hub_server import HubServer


def _tone(i: int, seconds: float) -> bytes:
    """A distinct 16 kHz take per i (the store refuses audio it already holds)."""
    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * 16_000)) / 16_000
    buf = io.BytesIO()
    sf.write(buf, (0.2 * np.sin(2 * np.pi * (180 + 0.25 * i) * t)).astype(np.float32), 16_000, format="WAV",
             subtype="PCM_16")
    return buf.getvalue()


def pace(args: argparse.Namespace) -> None:
    """A compressed recording session against the Hub's hourly commit limit."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        clock = lambda: (time.monotonic() - t0) * args.speed  # noqa: E731 - the Hub's compressed hour
        hub = HubServer(Path(tmp) / "hub", users={"bench-token": "bench"}, commit_clock=clock)
        url = hub.start()
        os.environ.update(HF_ENDPOINT=url, HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1",
                          HF_HOME=str(Path(tmp) / "hf-home"), HF_HUB_DISABLE_PROGRESS_BARS="1")
        from voxspace.auth import Identity
        from voxspace.commit_budget import BudgetConfig
        from voxspace.settings import Settings
        from voxspace.store import TakeStore

        n = int(args.hours * 3600 / args.pace)
        wavs = [_tone(i, args.seconds) for i in range(n)]
        settings = Settings(data_dir=Path(tmp) / "data", hub_endpoint=url, push_retry_max_s=1.0,
                            commit_budget=BudgetConfig(speed=args.speed))
        store = TakeStore.for_identity(settings, Identity("bench", "bench-token", "local"))
        saved_at, acks = {}, []
        start = time.monotonic()
        for i, wav in enumerate(wavs):
            a = time.perf_counter()
            take = store.save(wav, args.seconds, text=f"bench phrase {i}", language="en", phrase_id=f"en-{i}")
            acks.append(time.perf_counter() - a)
            saved_at[take.take_id] = clock()
            time.sleep(max(0.0, start + (i + 1) * args.pace / args.speed - time.monotonic()))
        lag = (time.monotonic() - start) / (n * args.pace / args.speed)
        assert store.flush(120), store.stats()
        repo = store.repo_id
        history = hub.commits(repo, "dataset")[1:]
        t_hub = [(c["date"] - (time.time() - time.monotonic()) - t0) * args.speed for c in history]
        landed = {}
        for c, t in zip(history, t_hub, strict=True):
            for path in c["files"]:
                take_id = path.split("/")[2] if path.startswith("data/") else None
                if take_id in saved_at and take_id not in landed:
                    landed[take_id] = t
        latency = sorted(landed[k] - saved_at[k] for k in landed)
        per_hour = max(sum(s <= t < s + 3600 for t in t_hub) for s in t_hub)
        limited = sum(r["status"] == 429 for r in hub.requests() if r.get("repo") == repo)
        TakeStore.close_all()
        hub.stop()
    print(f"session: {n} takes, one per {args.pace:g} s for {args.hours:g} h (x{args.speed:g} compressed; "
          f"achieved pace {lag:.2f} x nominal)")
    print(f"commits: {len(history)}  most in any hour: {per_hour}  (Hub limit 128)  429 answers: {limited}")
    print(f"lost: {n - len(landed)}")
    print(f"save -> acknowledged:  median {1000 * statistics.median(acks):.1f} ms  "
          f"p95 {1000 * sorted(acks)[int(0.95 * (n - 1))]:.1f} ms  max {1000 * max(acks):.1f} ms (real)")
    print(f"save -> on the Hub:    median {statistics.median(latency):.1f} s  "
          f"p95 {latency[int(0.95 * (len(latency) - 1))]:.1f} s  max {latency[-1]:.1f} s (Hub time)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--takes", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each take")
    ap.add_argument("--pace", type=float, help="simulate a session: one take every PACE seconds")
    ap.add_argument("--hours", type=float, default=2.0, help="length of the simulated session")
    ap.add_argument("--speed", type=float, default=240.0, help="time compression of the session")
    args = ap.parse_args()
    if args.pace:
        return pace(args)
    with tempfile.TemporaryDirectory() as tmp:
        hub = HubServer(Path(tmp) / "hub", users={"bench-token": "bench"})
        url = hub.start()
        os.environ.update(HF_ENDPOINT=url, HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1",
                          HF_HOME=str(Path(tmp) / "hf-home"), HF_HUB_DISABLE_PROGRESS_BARS="1")
        import numpy as np
        import soundfile as sf

        from voxspace.auth import Identity
        from voxspace.settings import Settings
        from voxspace.store import TakeStore

        t = np.arange(int(args.seconds * 16_000)) / 16_000
        buf = io.BytesIO()
        sf.write(buf, (0.2 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 16_000, format="WAV",
                 subtype="PCM_16")
        wav = buf.getvalue()
        settings = Settings(data_dir=Path(tmp) / "data", hub_endpoint=url, push_retry_max_s=1.0)
        t0 = time.perf_counter()
        store = TakeStore.for_identity(settings, Identity("bench", "bench-token", "local"))
        sign_in = time.perf_counter() - t0
        acks, pushes = [], []
        for i in range(args.takes):
            wav = _tone(i, args.seconds)
            t0 = time.perf_counter()
            store.save(wav, args.seconds, text=f"bench phrase {i}", language="en", phrase_id=f"en-{i}")
            acks.append(time.perf_counter() - t0)
            assert store.flush(60), store.stats()
            pushes.append(time.perf_counter() - t0)
        TakeStore.close_all()
        t0 = time.perf_counter()
        TakeStore.for_identity(replace(settings, data_dir=Path(tmp) / "fresh"),
                               Identity("bench", "bench-token", "local"))
        resume = time.perf_counter() - t0
        TakeStore.close_all()
        t0 = time.perf_counter()
        TakeStore.for_identity(settings, Identity("bench", "bench-token", "local"))
        resume_same_disk = time.perf_counter() - t0
        TakeStore.close_all()
        hub.stop()
    print(f"takes: {args.takes} x {args.seconds:.1f} s ({len(wav) / 1024:.0f} KiB WAV each)")
    print(f"save -> acknowledged:   median {1000 * statistics.median(acks):7.1f} ms  "
          f"max {1000 * max(acks):7.1f} ms")
    print(f"save -> on local Hub:   median {1000 * statistics.median(pushes):7.1f} ms  "
          f"max {1000 * max(pushes):7.1f} ms")
    print(f"sign-in, empty repo:           {1000 * sign_in:7.1f} ms")
    print(f"sign-in, resume {args.takes} takes:     {1000 * resume:7.1f} ms (fresh disk)")
    print(f"sign-in, resume {args.takes} takes:     {1000 * resume_same_disk:7.1f} ms (same disk: ledger)")


if __name__ == "__main__":
    main()
