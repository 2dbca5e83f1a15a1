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
echo "== training: GPU trainer vs CPU trainer, PyTorch's loss sequence, determinism" | tee -a "$LOG"
"$BUILD/tests/gpu/test_train_gpu" >"$BUILD/test-train.out" 2>&1 || rc=1
cat "$BUILD/test-train.out" | tee -a "$LOG"
echo "== distill on cuda:0: a run stopped at step 25 and resumed ends bit-exact with an uninterrupted one" | tee -a "$LOG"
DISTILL=(--teacher tests/golden/distill/teacher --layers 0,2 --corpus tests/golden/quant_calib.txt --steps 60
         --batch 16 --max-len 32 --lr 1e-3 --valid-size 200 --valid-every 20 --checkpoint-every 20 --device cuda:0
         --teacher-device cpu --no-plot) # the tiny teacher's heads of 8 are not the CUDA engine's
rm -rf "$BUILD/distill-a" "$BUILD/distill-b"
if "$BUILD/akidb-embed" distill "${DISTILL[@]}" --out "$BUILD/distill-a" >>"$LOG" 2>&1 &&
    "$BUILD/akidb-embed" distill "${DISTILL[@]}" --out "$BUILD/distill-b" --stop-after 25 >>"$LOG" 2>&1 &&
    "$BUILD/akidb-embed" distill "${DISTILL[@]}" --out "$BUILD/distill-b" --resume "$BUILD/distill-b/checkpoint" >>"$LOG" 2>&1 &&
    cmp "$BUILD/distill-a/model.safetensors" "$BUILD/distill-b/model.safetensors" &&
    cmp "$BUILD/distill-a/curve.tsv" "$BUILD/distill-b/curve.tsv"; then
    echo "ok   resumed GPU run: same weights and losses" | tee -a "$LOG"
else
    echo "FAIL resumed GPU run differs or a run failed (see $LOG)" | tee -a "$LOG"
    rc=1
fi
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
# serve_check DIR DTYPE_NAME: serve DIR on cuda:0; /info must report DTYPE_NAME and /embed answer.
serve_check() {
    local dir=$1 want=$2 port=$((18500 + RANDOM % 1000))
    "$BUILD/akidb-embed" serve --model "$dir" --device cuda:0 --port "$port" >>"$LOG" 2>&1 &
    local pid=$!
    if "${PYTHON:-python3}" - "$port" "$want" >>"$LOG" 2>&1 <<'EOF'
import json, sys, time, urllib.request
port, want = sys.argv[1], sys.argv[2]
for _ in range(150):
    try:
        info = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/info", timeout=2))
        break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit("server did not answer")
assert info["dtype"] == want, info["dtype"]
body = json.dumps({"inputs": ["hello world", "a quantized GPU"]}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/embed", body, {"content-type": "application/json"})
vecs = json.load(urllib.request.urlopen(req, timeout=10))
assert len(vecs) == 2 and len(vecs[0]) == info["dim"], "bad /embed answer"
print("serve:", info["dtype"], "dim", info["dim"])
EOF
    then
        echo "ok   serve $dir on cuda:0: /info says $want, /embed answers" | tee -a "$LOG"
    else
        echo "FAIL serve $dir on cuda:0 (see $LOG)" | tee -a "$LOG"
        rc=1
    fi
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

if [ "${GPU_GATE:-1}" = 1 ]; then
    echo "== W8A8 on real text: accuracy gate (5,000 eval sentences vs cpu fp32), quantize, serve" | tee -a "$LOG"
    BIN=$BUILD/akidb-embed EVAL=tests/golden/quant_eval.txt CALIB=tests/golden/quant_calib.txt
    # validate_gpu MODEL DTYPE JSON [GATE]: the gate of validate on cuda:0 against cpu fp32
    validate_gpu() {
        "$BIN" validate --model "$1" --device cuda:0 ${2:+--dtype "$2"} --reference "$GPU_MODEL" --corpus "$EVAL" \
            --limit 5000 --json "$3" ${4:+--gate "$4"} >>"$LOG" 2>&1
    }
    echo "-- int8: dynamic, then quantize (static, gated on cuda:0), validate, serve" | tee -a "$LOG"
    validate_gpu "$GPU_MODEL" int8 "$BUILD/gate-dynamic-int8.json" || { echo "FAIL dynamic int8 gate" | tee -a "$LOG"; rc=1; }
    grep -E "^(cosine|recall|gate)" "$LOG" | tail -n 3
    rm -rf "$MODELS/minilm-int8"
    if "$BIN" quantize --model "$GPU_MODEL" --dtype int8 --calib "$CALIB" --device cuda:0 --out "$MODELS/minilm-int8" >>"$LOG" 2>&1; then
        validate_gpu "$MODELS/minilm-int8" "" "$BUILD/gate-static-int8.json" || { echo "FAIL static int8 gate" | tee -a "$LOG"; rc=1; }
        grep -E "^(cosine|recall|file|gate)" "$LOG" | tail -n 4
        serve_check "$MODELS/minilm-int8" int8
    else
        echo "FAIL quantize --dtype int8" | tee -a "$LOG"
        rc=1
    fi
    cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d .)
    if [ "${cc:-0}" -ge 89 ]; then
        # FP8 E4M3 does not reach the default gate on MiniLM (measured: recall@10 0.926 dynamic,
        # 0.921 with 84.7 % of the FLOPs in 8 bits after the sensitivity pass; README): its
        # level is checked with the FP8 gate below, and quantize must refuse it by name.
        FP8_GATE=mean=0.995,min=0.98,recall=0.90
        echo "-- fp8: dynamic (gate $FP8_GATE), quantize (default gate: refused or passing), --no-gate, serve" | tee -a "$LOG"
        validate_gpu "$GPU_MODEL" fp8 "$BUILD/gate-dynamic-fp8.json" "$FP8_GATE" ||
            { echo "FAIL dynamic fp8 at the fp8 gate" | tee -a "$LOG"; rc=1; }
        grep -E "^(cosine|recall|gate)" "$LOG" | tail -n 3
        rm -rf "$MODELS/minilm-fp8"
        if "$BIN" quantize --model "$GPU_MODEL" --dtype fp8 --calib "$CALIB" --device cuda:0 --out "$MODELS/minilm-fp8" \
            >"$BUILD/quantize-fp8.out" 2>&1; then
            echo "quantize --dtype fp8 passed the default gate" | tee -a "$LOG"
        elif grep -q "the accuracy gate fails.*\(recall@10\|cosine\)" "$BUILD/quantize-fp8.out" && [ ! -e "$MODELS/minilm-fp8" ]; then
            echo "ok   quantize --dtype fp8 refused: $(grep -o 'the accuracy gate fails[^;]*' "$BUILD/quantize-fp8.out")" | tee -a "$LOG"
            "$BIN" quantize --model "$GPU_MODEL" --dtype fp8 --calib "$CALIB" --device cuda:0 --no-gate \
                --out "$MODELS/minilm-fp8" >>"$LOG" 2>&1 || { echo "FAIL quantize --dtype fp8 --no-gate" | tee -a "$LOG"; rc=1; }
        else
            echo "FAIL quantize --dtype fp8: neither written nor refused by the gate" | tee -a "$LOG"
            rc=1
        fi
        cat "$BUILD/quantize-fp8.out" >>"$LOG"
        if [ -f "$MODELS/minilm-fp8/model.safetensors" ]; then
            validate_gpu "$MODELS/minilm-fp8" "" "$BUILD/gate-static-fp8.json" "$FP8_GATE" ||
                { echo "FAIL static fp8 at the fp8 gate" | tee -a "$LOG"; rc=1; }
            grep -E "^(cosine|recall|file|gate)" "$LOG" | tail -n 4
            serve_check "$MODELS/minilm-fp8" float8_e4m3fn
        fi
    else
        echo "fp8: skipped (compute capability ${cc:-unknown} < 8.9)" | tee -a "$LOG"
    fi
fi
echo "test-gpu: $([ $rc -eq 0 ] && echo PASS || echo FAIL) (log: $LOG)" | tee -a "$LOG"
exit $rc
