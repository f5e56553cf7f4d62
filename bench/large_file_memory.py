"""Peak memory (RSS) of judging a file too long to be a take: a 460 MB WAV is refused from its header.

    python bench/large_file_memory.py                    # 3 interleaved rounds, one process per measurement
    python bench/large_file_memory.py --decode-whole     # also what decoding it whole costs (~2 GB: careful)

Each measurement runs in a fresh interpreter that reports its own peak RSS (VmHWM in
/proc/self/status; Linux only), so one does not inherit another's high-water mark. Variants:
  import        import voxspace.audio and stop (the floor every other figure includes)
  take_30s      prepare_take on a 30 s, 48 kHz stereo WAV (a take at the length limit, accepted)
  refuse_460mb  prepare_take on a 460 MB WAV (16 kHz mono 16-bit, 4 h; a sparse file), refused
  decode_whole  the old path: read the file's bytes, then soundfile decodes all of it to float32
The 460 MB file is sparse (a header and a hole), so the disk holds almost nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.signals import sparse_wav  # noqa: E402
from voxspace.devtools.bench_stats import Spread, schedule  # noqa: E402

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
variant, path = sys.argv[2], sys.argv[3]
from voxspace.audio import prepare_take
from voxspace.errors import VoxSpaceError
t = time.perf_counter()
outcome = "-"
if variant in ("take_30s", "refuse_460mb"):
    try:
        outcome = f"accepted {prepare_take(path).duration:.1f} s"
    except VoxSpaceError as e:
        outcome = f"refused: {type(e).__name__}"
elif variant == "decode_whole":
    import io, soundfile as sf
    data = open(path, "rb").read()
    samples, sr = sf.read(io.BytesIO(data), dtype="float32")
    outcome = f"decoded {len(samples) / sr:.0f} s"
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve (the parent's high-water mark).
hwm_kib = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"peak_mib": hwm_kib / 1024,
                  "seconds": time.perf_counter() - t, "outcome": outcome}))
"""


def take_wav(path: Path, seconds: float = 29.0) -> Path:
    import numpy as np
    import soundfile as sf

    sr = 48_000
    t = np.arange(int(seconds * sr)) / sr
    voice = 0.2 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    sf.write(path, np.stack([voice, voice], axis=1), sr, subtype="PCM_16")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--decode-whole", action="store_true", help="also measure decoding the 460 MB file whole")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here too")
    args = ap.parse_args()
    variants = ["import", "take_30s", "refuse_460mb"] + (["decode_whole"] if args.decode_whole else [])
    with tempfile.TemporaryDirectory(prefix="voxspace-bench-") as tmp:
        big = sparse_wav(Path(tmp) / "long.wav", 460_000_000)
        take = take_wav(Path(tmp) / "take.wav")
        files = {"import": take, "take_30s": take, "refuse_460mb": big, "decode_whole": big}
        runs: dict[str, list[dict]] = {v: [] for v in variants}
        for _, variant in schedule(variants, args.repeats):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(ROOT), variant, str(files[variant])],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(
        f"peak RSS per process, {args.repeats} interleaved rounds (median ±half range); file 460 MB on disk "
        "(sparse), 16 kHz mono 16-bit = 4 h"
    )
    print(f"{'variant':<14}{'peak MiB':>16}{'seconds':>16}  outcome")
    result = {}
    for v in variants:
        peak = Spread.of([r["peak_mib"] for r in runs[v]])
        secs = Spread.of([r["seconds"] for r in runs[v]])
        outcome = runs[v][-1]["outcome"]
        print(f"{v:<14}{peak.cell('.0f'):>16}{secs.cell('.3f'):>16}  {outcome}")
        result[v] = {
            "peak_mib": peak.to_dict(),
            "seconds": secs.to_dict(),
            "outcome": outcome,
            "raw": runs[v],
        }
    print(
        json.dumps(
            {
                k: {"peak_mib": r["peak_mib"]["median"], "seconds": r["seconds"]["median"]}
                for k, r in result.items()
            }
        )
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
