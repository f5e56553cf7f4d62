"""bench/demo_memory.py: its computed figures follow the parameter count, and --measure loads real weights.
Behaviour only: no memory figure of this machine is asserted beyond fp32 > bf16."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each run is a fresh interpreter importing torch and transformers
ROOT = Path(__file__).resolve().parents[2]


def test_computed_and_measured_memory_of_the_tiny_model(tiny_voxtral_dir):
    from transformers import VoxtralForConditionalGeneration

    tiny = str(tiny_voxtral_dir)
    out = subprocess.run([sys.executable, "bench/demo_memory.py", "--config", tiny, "--measure", tiny,
                          "--repeats", "1", "--json"], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=300)
    result = json.loads(out.stdout)
    n = sum(p.numel() for p in VoxtralForConditionalGeneration.from_pretrained(tiny_voxtral_dir).parameters())
    assert result["parameters"] == n
    fp32, bf16 = result["computed"]
    assert fp32["dtype"] == "fp32" and fp32["weights_GiB"] == 2 * bf16["weights_GiB"] == 4 * n / 2**30
    rss = result["measured_peak_rss_MiB"]
    assert rss["fp32"]["median"] > 0 and rss["bf16"]["median"] > 0


def test_voxtral_mini_in_fp32_does_not_fit_a_free_cpu_space_and_bf16_does():
    out = subprocess.run([sys.executable, "bench/demo_memory.py", "--json"], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=300)
    fp32, bf16 = json.loads(out.stdout)["computed"]
    assert not fp32["fits_free_cpu_space"] and bf16["fits_free_cpu_space"]
