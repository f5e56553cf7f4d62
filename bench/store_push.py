"""Save -> acknowledged, and save -> on the (local) Hub, for one take (targets: ack <= 0.5 s).

    python bench/store_push.py [--takes 10] [--seconds 4]

Starts the test suite's local Hub-API server in a temporary folder, saves prepared 16 kHz takes
through the real TakeStore and prints medians. The ack is a durable local write (fsync + rename);
the push is one commit per take here (preupload, LFS batch + PUT + verify, commit).
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--takes", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each take")
    args = ap.parse_args()
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
