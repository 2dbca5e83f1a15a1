#!/usr/bin/env bash
# One GPU-machine call for the server on the GPU: build, the lone-request latency with its
# server-side breakdown under the idle-path variants (--idle-spin-us, AKE_CUDA_SYNC), the
# server under load (5k/20k/30k single-text requests/s), then `make test-gpu` (kernels,
# engine vs CPU, and the HTTP suite against --device cuda:0). Writes under $OUT (or
# bench/results): serve-gpu-<date>.txt and test-gpu-<date>.log.
#   GPU_MODEL=.carry/all-MiniLM-L6-v2-f16 AKE_COMMIT=abc1234 bash bench/gpu_serve.sh
# Environment as bench/gpu.sh (GPU_MODEL, TOKENIZER, AKE_DEBS, AKE_COMMIT, CUDA_ARCH).
set -uo pipefail
cd "$(dirname "$0")/.."
RES=${OUT:-bench/results}
mkdir -p "$RES" build
source bench/gpu_env.sh || exit 1
export CUDA_ARCH=${CUDA_ARCH:-90}
GPU_MODEL=${GPU_MODEL:-models/all-MiniLM-L6-v2}
export TOKENIZER=${TOKENIZER:-$GPU_MODEL}
CARD=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -n1)
COMMIT=${AKE_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
DATE=$(date -u +%Y-%m-%d)
TXT=$RES/serve-gpu-$DATE.txt
make -j"$(nproc)" all build/tests/gpu/test_kernels build/tests/gpu/test_engine_gpu build/tests/gpu/to_f16 >>build/make.log 2>&1 ||
    { tail -n 30 build/make.log; exit 1; }

PORT=18080
# server-side means over the lone run, from /metrics deltas: request, queue, tokenize, inference
get() { python3 -c "import sys, requests; r = requests.get(sys.argv[1], timeout=2); r.raise_for_status(); print(r.text)" "$1"; }
snap() { get "http://127.0.0.1:$PORT/metrics" | grep -E '^ake_(request|queue|tokenize|inference)_seconds_(sum|count)' ; }
means() {
    python3 - "$1" "$2" <<'EOF'
import sys
def rd(p):
    d = {}
    for l in open(p):
        k, v = l.split()
        d[k.split("{")[0]] = float(v)
    return d
a, b = rd(sys.argv[1]), rd(sys.argv[2])
out = []
for n in ("request", "queue", "tokenize", "inference"):
    c = b.get(f"ake_{n}_seconds_count", 0) - a.get(f"ake_{n}_seconds_count", 0)
    s = b.get(f"ake_{n}_seconds_sum", 0) - a.get(f"ake_{n}_seconds_sum", 0)
    out.append(f"{n} {1e3 * s / c:.3f} ms" if c else f"{n} -")
print("    server-side means: " + ", ".join(out))
EOF
}
serve() { # serve ENV... -- ARGS...: starts the server, waits for /health
    local env=()
    while [ "$1" != -- ]; do env+=("$1"); shift; done
    shift
    env "${env[@]}" build/akidb-embed serve --model "$GPU_MODEL" --device cuda:0 --port $PORT --log-level warn "$@" \
        >build/serve-gpu.log 2>&1 &
    sp=$!
    for _ in $(seq 300); do get "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "server did not start"; cat build/serve-gpu.log; return 1
}
{
    echo "# bench/gpu_serve.sh: card $CARD, commit $COMMIT, $DATE; model $GPU_MODEL, fp16 (the CUDA default)"
    echo "# akidb-embed loadgen, single-text requests (~10 tokens), open loop; latency from due time to response"
    # default; no overlap of batches (AKE_BATCHER_OVERLAP=0); idle spin; GPU waits by blocking sync
    for v in "-- " "AKE_BATCHER_OVERLAP=0 -- " "-- --idle-spin-us 100000" "AKE_CUDA_SYNC=block -- "; do
        echo "## lone request (rate 20/s, 4 s): $v"
        # shellcheck disable=SC2086
        serve $v || continue
        build/akidb-embed loadgen --url http://127.0.0.1:$PORT --rate 20 --duration 1 --warmup 1 >/dev/null
        snap >build/m0
        build/akidb-embed loadgen --url http://127.0.0.1:$PORT --rate 20 --duration 4 --warmup 0
        snap >build/m1
        means build/m0 build/m1
        if [ "${v#AKE_CUDA_SYNC}" = "$v" ]; then
            for r in 5000 20000 30000 40000; do
                echo "### rate $r/s"
                build/akidb-embed loadgen --url http://127.0.0.1:$PORT --rate $r --duration 4 --warmup 1 2>&1 | tail -n 2
            done
        fi
        kill "$sp"; wait "$sp"
    done
} 2>&1 | tee "$TXT"

AKE_COMMIT=$COMMIT timeout "${TEST_GPU_TIMEOUT:-420}" make GPU_MODEL="$GPU_MODEL" test-gpu
rc=$?
cp build/test-gpu.log "$RES/test-gpu-$DATE.log"
echo "test-gpu rc $rc"
exit $rc
