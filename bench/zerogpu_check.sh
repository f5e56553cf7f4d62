#!/usr/bin/env bash
# VoxSpace through ZeroGPU's real machinery (spaces 0.51.3 in ZeroGPU mode, a local device API, real
# CUDA in each forked worker) on ONE lent H100/H200, in under 6 minutes. See bench/zerogpu_check.py.
#
# Needs the project's requirements on the machine (requirements.txt: spaces, gradio, mistral-common,
# soundfile, ...), not only torch/transformers: `spaces` imports gradio. The bare lent machines
# (bench/README.md, "On a lent GPU machine") lack gradio and its pandas, which do not fit the 64 MiB
# that can be carried there; run this where `pip install -r requirements.txt` has been done (e.g. a
# Space or Job image built from this repo). It stops at once, saying what is missing, otherwise.
#
#   bash bench/zerogpu_check.sh [OUT_DIR]    # default bench/out; python3 from PATH (activate the venv)
#   TINY=1 bash bench/zerogpu_check.sh       # the tiny model on a CPU, with the CPU worker seam: a dry run
#
# Parts, each under its own timeout: the random full-size model written (MODEL_S, 90 s), then bf16
# (BF16_S, 150 s) and 8-bit (INT8_S, 100 s): base loaded at start-up, three training slices, one
# evaluation call (bf16), the same steps unbroken in one call; per-call figures and whether the
# resumed adapter equals the unbroken one, printed and written to OUT_DIR/zerogpu_<precision>.json.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench/out}"
mkdir -p "$out"
log="$out/zerogpu_check.log"
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False TOKENIZERS_PARALLELISM=false
export PYTHONPATH="${PYTHONPATH:-}:$PWD"
tiny=()
[ "${TINY:-0}" = 1 ] && tiny=(--tiny)

{
  echo "== zerogpu_check $(date -u +%FT%TZ)"
  nvidia-smi || echo "nvidia-smi: not available"
  python3 - <<'PY' || exit 2
import importlib, sys
missing = []
for name in ("torch", "transformers", "peft", "bitsandbytes", "spaces", "gradio", "mistral_common", "soundfile"):
    try:
        module = importlib.import_module(name)
        print(f"{name:15s} {getattr(module, '__version__', '?'):12s}")
    except Exception as e:
        missing.append(name)
        print(f"{name:15s} MISSING ({type(e).__name__}: {e})")
if missing:
    sys.exit(f"missing: {', '.join(missing)}; install requirements.txt first (see the top of this script)")
PY
} 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" -ne 0 ] && exit 2

model="$(mktemp -d)/model"
echo "== model (timeout ${MODEL_S:-90} s)" | tee -a "$log"
timeout "${MODEL_S:-90}" python3 -u bench/zerogpu_check.py model "$model" "${tiny[@]}" 2>&1 | tail -3 | tee -a "$log"
rc=0
for p in bf16 8bit; do
  limit=$([ "$p" = bf16 ] && echo "${BF16_S:-150}" || echo "${INT8_S:-100}")
  echo "== $p (timeout $limit s)" | tee -a "$log"
  # its own process group: the forked GPU workers end with it
  timeout --kill-after=10 "$limit" setsid python3 -u bench/zerogpu_check.py run --model "$model" \
    --precision "$p" --out "$out/zerogpu_$p.json" "${tiny[@]}" 2>&1 | grep -v "SPACES_ZERO_GPU_DEBUG" | tee -a "$log"
  code=${PIPESTATUS[0]}
  echo "== $p exit code $code" | tee -a "$log"
  [ "$code" -ne 0 ] && rc=$code
done
exit "$rc"
