#!/usr/bin/env bash
# make test-gpu: kernel tests, then the whole engine against the CPU engine on the real
# MiniLM ($GPU_MODEL) and on bert-base / bert-large synthesized here (too big to carry to a
# GPU machine), then the HTTP black-box suite (tests/http) against `akidb-embed serve
# --device $HTTP_DEVICE --dtype $HTTP_DTYPE` on $GPU_MODEL (HTTP_GPU=0 skips it; $PYTHON needs
# pytest, requests, numpy, tokenizers and openai). Everything goes to $BUILD/test-gpu.log,
# headed by card, commit and date.
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
if [ "${HTTP_GPU:-1}" = 1 ]; then
    HTTP_DEVICE=${HTTP_DEVICE:-cuda:0} HTTP_DTYPE=${HTTP_DTYPE:-fp16} PYTHON=${PYTHON:-python3}
    echo "== HTTP tests (tests/http) against the server on $HTTP_DEVICE $HTTP_DTYPE, model $GPU_MODEL" | tee -a "$LOG"
    if "$PYTHON" -c "import pytest, requests, numpy, tokenizers, openai" 2>>"$LOG"; then
        AKE_BIN="$BUILD/akidb-embed" AKE_TEST_DEVICE=$HTTP_DEVICE AKE_TEST_DTYPE=$HTTP_DTYPE AKE_TEST_MODEL="$GPU_MODEL" \
            "$PYTHON" -m pytest -q -rs -p no:cacheprovider tests/http >"$BUILD/test-http-gpu.out" 2>&1 || rc=1
        cat "$BUILD/test-http-gpu.out" >>"$LOG"
        grep -E '^(FAILED|ERROR|SKIPPED)|passed|failed' "$BUILD/test-http-gpu.out" || true
    else
        echo "HTTP tests: FAIL ($PYTHON lacks pytest, requests, numpy, tokenizers or openai; see $LOG)" | tee -a "$LOG"
        rc=1
    fi
fi
echo "test-gpu: $([ $rc -eq 0 ] && echo PASS || echo FAIL) (log: $LOG)" | tee -a "$LOG"
exit $rc
