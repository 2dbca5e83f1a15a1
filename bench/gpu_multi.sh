#!/usr/bin/env bash
# One call on a machine of 2+ GPUs: the server with one engine replica per GPU
# (--device cuda:0,cuda:1) against one GPU, same model and load, open-loop loadgen.
# bert-large (random weights of its config) and requests of 8 texts of ~100 words, so
# that the GPUs, not JSON or HTTP, bound the rate. Prints achieved QPS and latency per rate.
#   bash bench/gpu_multi.sh          (same environment as bench/gpu.sh: TOKENIZER, AKE_DEBS)
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
source bench/gpu_env.sh || exit 1
export CUDA_ARCH=${CUDA_ARCH:-90}
TOKENIZER=${TOKENIZER:-models/all-MiniLM-L6-v2}
RATES=${RATES:-200 400 600 800 1000 1200}
nvidia-smi --query-gpu=index,name --format=csv,noheader
make -j"$(nproc)" all || exit 1
m=build/gpu-models/bert-large
[ -f $m/model.safetensors ] || build/akidb-embed synth --arch bert-large --seed 1 --out $m --tokenizer-from "$TOKENIZER" --dtype f16 >/dev/null || exit 1
for devs in cuda:0 cuda:0,cuda:1; do
    echo "## serve --device $devs (bert-large, fp16), loadgen 8 texts x ~100 words per request"
    build/akidb-embed serve --model $m --device "$devs" --port 18081 --log-level warn >build/serve-multi.log 2>&1 &
    sp=$!
    for _ in $(seq 300); do
        python3 -c "import requests; requests.get('http://127.0.0.1:18081/health', timeout=1).raise_for_status()" \
            2>/dev/null && break
        sleep 0.2
    done
    echo "    rate     sent       ok http_err  net_err      qps    p50_ms    p95_ms    p99_ms    max_ms"
    for r in $RATES; do
        build/akidb-embed loadgen --url http://127.0.0.1:18081 --rate "$r" --duration 5 --warmup 1 \
            --inputs-per-request 8 --text-len 100 --timeout-ms 10000 | tail -n 1
    done
    kill "$sp" 2>/dev/null; wait "$sp" 2>/dev/null
    head -n 3 build/serve-multi.log
done
