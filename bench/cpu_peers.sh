#!/usr/bin/env bash
# CPU peers benchmark: akidb-embed vs PyTorch vs ONNX Runtime, FP32, same model, same shapes,
# same thread count, in one run on this machine. See bench/README.md.
#
# Usage: bash bench/cpu_peers.sh [--threads T] [--model DIR] [--iters N] [--peers-only]
#                                [--out FILE]
#   --threads T   threads for every implementation (default $THREADS or 2)
#   --model DIR   model folder (default models/all-MiniLM-L6-v2)
#   --iters N     timed iterations per shape, median reported (default 20, at least 20)
#   --peers-only  skip akidb-embed (time torch and onnxruntime only)
#   --out FILE    results JSON (default bench/results/cpu_peers-<UTC date>.json)
set -euo pipefail
cd "$(dirname "$0")/.."

threads=${THREADS:-2}
model=models/all-MiniLM-L6-v2
iters=20
peers_only=0
out=
while (($#)); do
    case $1 in
        --threads) threads=$2; shift 2 ;;
        --model) model=$2; shift 2 ;;
        --iters) iters=$2; shift 2 ;;
        --peers-only) peers_only=1; shift ;;
        --out) out=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "cpu_peers.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

[ -f "$model/model.safetensors" ] || bash scripts/setup
PY=$(bash tests/golden/golden_venv.sh)
mixed=$("$PY" bench/cpu_peers.py --model "$model" --print-mixed)

args=(--model "$model" --threads "$threads" --iters "$iters")
[ -n "$out" ] && args+=(--out "$out")
if ((!peers_only)); then
    [ -x build/akidb-embed ] || make -s all
    mkdir -p build/bench
    ak_json=build/bench/akidb-cpu-$$.json
    trap 'rm -f "$ak_json"' EXIT
    echo "cpu_peers: akidb-embed bench (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    ./build/akidb-embed bench --model "$model" --threads "$threads" --iters "$iters" \
        --batch 1,8,32 --seq 32,128,256 --mixed "$mixed" --json "$ak_json" >&2
    args+=(--akidb-json "$ak_json")
fi
"$PY" bench/cpu_peers.py "${args[@]}"
