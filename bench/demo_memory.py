"""How much memory the demo Space's model takes in fp32 and in bf16 (issue 12: the CPU fallback).

    python bench/demo_memory.py                      # Voxtral-Mini-3B's dimensions, computed, no download
    python bench/demo_memory.py --config DIR         # a model folder's config.json, computed
    python bench/demo_memory.py --measure DIR        # also load DIR's weights: peak RSS per dtype

Computed: the model is built on torch's meta device from its config (no weights, no download) and
its parameters counted; weights take 4 bytes each in fp32 and 2 in bf16. A free CPU Space has
16 GB of memory, and the demo needs room beside the weights for Python, gradio and activations.

Measured (--measure): each dtype is loaded in a fresh process that reports its peak resident set
size (ru_maxrss) after one forward-free load; dtypes are interleaved over --repeats rounds and the
median and spread (min..max) printed, in MiB as measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

FREE_CPU_SPACE_GB = 16  # GB (10^9 bytes), as the Hub states the free tier
BYTES = {"fp32": 4, "bf16": 2}


def parameter_count(config_dir: str | None) -> tuple[int, str]:
    """Parameters of the model described by `config_dir`'s config.json (or Voxtral-Mini-3B's)."""
    import torch
    from transformers import AutoConfig, VoxtralForConditionalGeneration

    if config_dir:
        config, what = AutoConfig.from_pretrained(config_dir), f"config of {config_dir}"
    else:
        from voxspace.devtools.tiny_voxtral import full_size_config

        config, what = full_size_config(), "Voxtral-Mini-3B dimensions (VoxtralConfig defaults)"
    with torch.device("meta"):
        model = VoxtralForConditionalGeneration(config)
    return sum(p.numel() for p in model.parameters()), what


def computed_rows(n_params: int) -> list[dict]:
    return [
        {"dtype": dtype, "weights_GiB": n_params * b / 2**30, "weights_GB": n_params * b / 1e9,
         "fits_free_cpu_space": n_params * b / 1e9 < FREE_CPU_SPACE_GB}
        for dtype, b in BYTES.items()
    ]


_LOAD = """
import resource, sys, torch
from transformers import VoxtralForConditionalGeneration
dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[sys.argv[2]]
VoxtralForConditionalGeneration.from_pretrained(sys.argv[1], dtype=dtype)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
"""


def measure(model_dir: str, repeats: int) -> dict[str, list[float]]:
    """Peak RSS (MiB) of loading `model_dir` in each dtype, each in a fresh process, interleaved."""
    out: dict[str, list[float]] = {d: [] for d in BYTES}
    for _ in range(repeats):
        for dtype in BYTES:
            res = subprocess.run([sys.executable, "-c", _LOAD, model_dir, dtype], capture_output=True,
                                 text=True, check=True)
            out[dtype].append(int(res.stdout.strip().splitlines()[-1]) / 1024)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", help="a model folder whose config.json to count (default: Voxtral-Mini-3B)")
    ap.add_argument("--measure", metavar="DIR", help="also load DIR's weights in each dtype and report RSS")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args(argv)

    n, what = parameter_count(args.config)
    rows = computed_rows(n)
    result: dict = {"parameters": n, "source": what, "computed": rows}
    if args.measure:
        runs = measure(args.measure, args.repeats)
        result["measured_peak_rss_MiB"] = {
            d: {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": v}
            for d, v in runs.items()
        }
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{n:,} parameters ({what}); computed weight memory, no download:")
    for r in rows:
        verdict = "fits" if r["fits_free_cpu_space"] else "does NOT fit"
        print(f"  {r['dtype']}: {r['weights_GiB']:.1f} GiB ({r['weights_GB']:.1f} GB): {verdict} a free CPU "
              f"Space's {FREE_CPU_SPACE_GB} GB, before Python, gradio and activations")
    for d, m in result.get("measured_peak_rss_MiB", {}).items():
        print(f"  measured {d}: peak RSS median {m['median']:.0f} MiB (min {m['min']:.0f}, "
              f"max {m['max']:.0f}, {len(m['runs'])} runs, interleaved)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
