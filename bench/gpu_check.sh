#!/usr/bin/env bash
# The full-size training-speed comparison on ONE lent H100/H200, in well under 5 minutes.
#
# The machine has torch, transformers, accelerate and numpy but no mistral-common or soundfile;
# the caller installs the pinned wheels first (bench/README.md):
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site:$PWD
#   bash bench/gpu_check.sh [OUT_DIR]        # default bench/out
#
# Writes OUT_DIR/train_speed.txt (the table), train_speed.json (every figure; rewritten after each
# variant, so a timeout keeps what finished) and train_speed.log (versions, nvidia-smi, progress).
# Extra arguments for bench/train_speed.py can be passed in BENCH_ARGS (e.g. "--steps 4").
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench/out}"
mkdir -p "$out"
log="$out/train_speed.log"
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="${PYTHONPATH:-}:$PWD"

{
  echo "== gpu_check $(date -u +%FT%TZ)"
  nvidia-smi || echo "nvidia-smi: not available"
  python3 - <<'EOF'
import importlib, sys
print("python", sys.version.split()[0])
for name in ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "numpy"):
    try:
        module = importlib.import_module(name)
        print(f"{name:13s} {module.__version__:12s} {module.__file__}")
    except Exception as e:  # keep going: the bench reports which variants could not run
        print(f"{name:13s} UNAVAILABLE  {type(e).__name__}: {e}")
import torch
print("cuda", torch.version.cuda, "available:", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF
} 2>&1 | tee "$log"

# 270 s leaves room for the start-up above inside a 5-minute window.
timeout --signal=INT --kill-after=15 "${BENCH_TIMEOUT_S:-270}" \
  python3 -u bench/train_speed.py --full-size --out "$out/train_speed.json" ${BENCH_ARGS:-} 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
echo "== train_speed.py exit code $rc" | tee -a "$log"
[ -f "$out/train_speed.txt" ] && cat "$out/train_speed.txt"
exit "$rc"
