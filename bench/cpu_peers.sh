#!/usr/bin/env bash
# CPU peers benchmark: akidb-embed vs PyTorch vs ONNX Runtime, FP32, same model, same shapes,
# same thread count, in one run on this machine; with --int8, akidb-embed's INT8 (dynamic and
# static) vs ONNX Runtime's quantize_dynamic, speed and accuracy. See bench/README.md.
#
# Usage: bash bench/cpu_peers.sh [--threads T] [--model DIR] [--iters N] [--repeat R]
#                                [--shapes LIST] [--peers-only] [--out FILE]
#                                [--int8 [--static-int8 DIR] [--no-accuracy] [--accuracy-limit N]]
#   --threads T   threads for every implementation (default $THREADS or 2)
#   --model DIR   model folder (default models/all-MiniLM-L6-v2)
#   --iters N     timed iterations per shape, median reported (default 20, at least 20)
#   --repeat R    interleaved passes over all shapes; each cell keeps its lowest median (default 1)
#   --shapes LIST only these cells, e.g. 32x128,32xmixed (default: the whole grid + mixed)
#   --peers-only  skip akidb-embed (time torch and onnxruntime only)
#   --out FILE    results JSON (default bench/results/cpu_peers[-int8]-<UTC date>.json)
#   --int8        akidb-embed fp32 / int8 dynamic / static INT8 folder, onnxruntime fp32 /
#                 quantize_dynamic INT8: speed, and each INT8's accuracy against its own FP32
#   --static-int8 DIR   time this static INT8 folder (default: akidb-embed quantize, cached)
#   --no-accuracy       with --int8: time only
#   --accuracy-limit N  with --int8: texts of tests/golden/quant_eval.txt (default 5000)
set -euo pipefail
cd "$(dirname "$0")/.."

threads=${THREADS:-2}
model=models/all-MiniLM-L6-v2
iters=20
repeat=1
peers_only=0
out=
extra=()
while (($#)); do
    case $1 in
        --threads) threads=$2; shift 2 ;;
        --model) model=$2; shift 2 ;;
        --iters) iters=$2; shift 2 ;;
        --repeat) repeat=$2; shift 2 ;;
        --peers-only) peers_only=1; shift ;;
        --out) out=$2; shift 2 ;;
        --shapes|--static-int8|--accuracy-limit) extra+=("$1" "$2"); shift 2 ;;
        --int8|--no-accuracy) extra+=("$1"); shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "cpu_peers.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

[ -f "$model/model.safetensors" ] || bash scripts/setup
PY=$(bash tests/golden/golden_venv.sh)

args=(--model "$model" --threads "$threads" --iters "$iters" --repeat "$repeat")
[ -n "$out" ] && args+=(--out "$out")
args+=(${extra[@]+"${extra[@]}"})
if ((!peers_only)); then
    if ! make -s all >&2; then
        [ -x build/akidb-embed ] || { echo "cpu_peers.sh: cannot build build/akidb-embed" >&2; exit 1; }
        echo "cpu_peers.sh: warning: 'make' failed; timing the existing build/akidb-embed," \
             "which may not match the commit recorded in the rows" >&2
    fi
    args+=(--akidb build/akidb-embed)
fi
exec "$PY" bench/cpu_peers.py "${args[@]}"
