#!/usr/bin/env bash
# make test-gpu: kernel tests, then the whole engine against the CPU engine on the real
# MiniLM ($GPU_MODEL) and on bert-base / bert-large synthesized here (too big to carry to a
# GPU machine). Everything goes to $BUILD/test-gpu.log, headed by card, commit and date.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
GPU_MODEL=${GPU_MODEL:-models/all-MiniLM-L6-v2}
TOKENIZER=${TOKENIZER:-$GPU_MODEL} # where synth copies tokenizer files from
LOG=$BUILD/test-gpu.log
MODELS=$BUILD/gpu-models
mkdir -p "$MODELS"
{
    echo "# make test-gpu"
    echo "card: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n1 || echo unknown)"
    if [ -n "${AKE_COMMIT:-}" ]; then echo "commit: $AKE_COMMIT (given by AKE_COMMIT)"
    else echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"; fi
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "minilm: $GPU_MODEL"
} >"$LOG"
for arch in bert-base bert-large; do
    # synth is a pure function of (arch, seed): the same weights on every machine
    [ -f "$MODELS/$arch/model.safetensors" ] ||
        "$BUILD/akidb-embed" synth --arch "$arch" --seed 1 --out "$MODELS/$arch" --tokenizer-from "$TOKENIZER" >>"$LOG"
done
rc=0
echo "== kernels (every check in $LOG; failures and the summary here)" | tee -a "$LOG"
"$BUILD/tests/gpu/test_kernels" >"$BUILD/test-kernels.out" 2>&1 || rc=1
cat "$BUILD/test-kernels.out" >>"$LOG"
grep -v '^ok ' "$BUILD/test-kernels.out" || true
echo "== engine vs cpu fp32" | tee -a "$LOG"
"$BUILD/tests/gpu/test_engine_gpu" "$GPU_MODEL" "$MODELS/bert-base" "$MODELS/bert-large" >"$BUILD/test-engine.out" 2>&1 || rc=1
cat "$BUILD/test-engine.out" | tee -a "$LOG"
echo "test-gpu: $([ $rc -eq 0 ] && echo PASS || echo FAIL) (log: $LOG)" | tee -a "$LOG"
exit $rc
