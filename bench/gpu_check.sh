#!/usr/bin/env bash
# The full-size speed checks on ONE lent GPU (H100/H200), in under 6 minutes (bench/README.md).
#
# The machine has torch, transformers, accelerate and numpy but no mistral-common or soundfile;
# the caller installs the pinned wheels first:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site:$PWD
#   bash bench/gpu_check.sh [OUT_DIR]        # default bench/out
#
# Three runs of bench/train_speed.py --full-size, each under its own timeout, each writing
# OUT_DIR/<part>.json (rewritten after every round, so a timeout keeps what finished), <part>.txt
# (the table) and appending to OUT_DIR/gpu_check.log:
#   core     (<= 270 s) upstream (VoxFactory as written), default, -auto_batch, +fit_2x4, -8bit:
#            3 interleaved rounds; evaluation timed (16 held-out takes, at most 24 new tokens: batches
#            of 8 with and without the encoder cache, one call; 8-bit against bf16); the whole-run
#            budget for 50 / 500 / 5000 takes
#   zerogpu  (<= 70 s) bf16 with passes fitted on a 48 GiB card (a ZeroGPU `large` slice), 2 rounds
#   levers   (<= 60 s, only with GPU_CHECK_LEVERS=1) the other levers, 1 round
#   adapt    (<= 120 s, only with GPU_CHECK_ADAPT=1) the encoder option (issue 15): LoRA also on the
#            top 4 / 8 encoder layers (lower ones cached) and on all 32 with no cache, 2 rounds
# Extra arguments for every part: BENCH_ARGS (e.g. "--steps 4"). Timeouts: CORE_S, ZEROGPU_S, LEVERS_S,
# ADAPT_S.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench/out}"
mkdir -p "$out"
log="$out/gpu_check.log"
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

rc=0
part() {  # part NAME TIMEOUT_S ARGS...
  local name="$1" limit="$2"
  shift 2
  echo "== $name: train_speed.py --full-size $* (timeout ${limit} s)" | tee -a "$log"
  timeout --signal=INT --kill-after=10 "$limit" \
    python3 -u bench/train_speed.py --full-size --out "$out/$name.json" "$@" ${BENCH_ARGS:-} 2>&1 | tee -a "$log"
  local code=${PIPESTATUS[0]}
  echo "== $name exit code $code" | tee -a "$log"
  [ "$code" -ne 0 ] && rc=$code
  [ -f "$out/$name.txt" ] && cat "$out/$name.txt"
}

part core "${CORE_S:-270}" --variants upstream,default,-auto_batch,+fit_2x4,-8bit --repeats 3 --steps 3 \
  --eval-takes 16 --eval-repeats 1 --max-new-tokens 24
part zerogpu "${ZEROGPU_S:-70}" --variants -8bit --gpu-memory-gib 48 --repeats 2 --steps 3 --eval-repeats 0
if [ "${GPU_CHECK_LEVERS:-0}" = 1 ]; then
  part levers "${LEVERS_S:-60}" --repeats 1 --steps 3 --eval-repeats 0 \
    --variants default,-encoder_cache,-length_batching,-label_logits_only,-lm_only_lora,-batch_4x1,+grad_ckpt
fi
if [ "${GPU_CHECK_ADAPT:-0}" = 1 ]; then
  part adapt "${ADAPT_S:-120}" --repeats 2 --steps 3 --eval-repeats 0 \
    --variants default,+adapt_enc_4,+adapt_enc_8,+adapt_enc_all_nocache
fi
exit "$rc"
