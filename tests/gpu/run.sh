#!/usr/bin/env bash
# make test-gpu: kernel tests, then the whole engine against the CPU engine on the real
# MiniLM ($GPU_MODEL) and on bert-base / bert-large synthesized here (too big to carry to a
# GPU machine), then the HTTP black-box suite (tests/http) against `akidb-embed serve
# --device $HTTP_DEVICE --dtype $HTTP_DTYPE` on $GPU_MODEL (HTTP_GPU=0 skips it; $PYTHON needs
# pytest, requests, numpy, tokenizers and openai). Then the W8A8 engines on real text: the
# accuracy gate of `validate` (5,000 sentences of tests/golden/quant_eval.txt against the CPU fp32
# engine) for dynamic int8 and fp8 on $GPU_MODEL, `quantize` (calibrated on
# tests/golden/quant_calib.txt, gated on the GPU) + `validate` + `serve` of the folders it writes.
# $GPU_MODEL must then be the real all-MiniLM-L6-v2 (an F16 copy is fine: bench/gpu_carry.sh);
# GPU_GATE=0 skips it (synthesized weights have no meaningful neighbours).
# Everything goes to $BUILD/test-gpu.log, headed by card, commit and date.
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
if [ "${GPU_GATE:-1}" = 1 ]; then
    echo "== W8A8 on real text: accuracy gate (5,000 eval sentences vs cpu fp32), quantize, serve" | tee -a "$LOG"
    BIN=$BUILD/akidb-embed EVAL=tests/golden/quant_eval.txt
    cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d .)
    dtypes="int8"
    [ "${cc:-0}" -ge 89 ] && dtypes="int8 fp8" || echo "fp8: skipped (compute capability ${cc:-unknown} < 8.9)" | tee -a "$LOG"
    for dt in $dtypes; do
        echo "-- dynamic $dt" | tee -a "$LOG"
        "$BIN" validate --model "$GPU_MODEL" --device cuda:0 --dtype "$dt" --reference "$GPU_MODEL" --corpus "$EVAL" \
            --limit 5000 --json "$BUILD/gate-dynamic-$dt.json" >>"$LOG" 2>&1 || { echo "FAIL dynamic $dt gate" | tee -a "$LOG"; rc=1; }
        tail -n 6 "$LOG"
        echo "-- quantize --dtype $dt (static), gated on cuda:0" | tee -a "$LOG"
        rm -rf "$MODELS/minilm-$dt"
        if "$BIN" quantize --model "$GPU_MODEL" --dtype "$dt" --calib tests/golden/quant_calib.txt --device cuda:0 \
            --out "$MODELS/minilm-$dt" >>"$LOG" 2>&1; then
            "$BIN" validate --model "$MODELS/minilm-$dt" --device cuda:0 --reference "$GPU_MODEL" --corpus "$EVAL" \
                --limit 5000 --json "$BUILD/gate-static-$dt.json" >>"$LOG" 2>&1 || { echo "FAIL static $dt gate" | tee -a "$LOG"; rc=1; }
            tail -n 6 "$LOG"
            port=$((18500 + RANDOM % 1000))
            "$BIN" serve --model "$MODELS/minilm-$dt" --device cuda:0 --port "$port" >>"$LOG" 2>&1 &
            pid=$!
            ok=0
            for _ in $(seq 1 100); do
                if curl -sf "localhost:$port/info" >"$BUILD/info-$dt.json" 2>/dev/null; then ok=1; break; fi
                sleep 0.2
            done
            if [ $ok = 1 ] && grep -q "\"dtype\":\"$( [ $dt = int8 ] && echo int8 || echo float8_e4m3fn)\"" "$BUILD/info-$dt.json" &&
                curl -sf "localhost:$port/embed" -H 'content-type: application/json' -d '{"inputs":["hello world","a quantized GPU"]}' |
                grep -q '^\[\[' ; then
                echo "ok   serve $MODELS/minilm-$dt on cuda:0: /info says $dt, /embed answers" | tee -a "$LOG"
            else
                echo "FAIL serve $MODELS/minilm-$dt on cuda:0 (see $LOG, $BUILD/info-$dt.json)" | tee -a "$LOG"
                rc=1
            fi
            kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
        else
            echo "FAIL quantize --dtype $dt" | tee -a "$LOG"
            tail -n 5 "$LOG"
            rc=1
        fi
    done
fi
echo "test-gpu: $([ $rc -eq 0 ] && echo PASS || echo FAIL) (log: $LOG)" | tee -a "$LOG"
exit $rc
