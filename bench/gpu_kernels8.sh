#!/usr/bin/env bash
# One GPU-machine call for the 8-bit (W8A8) building blocks: build, the kernel lab's 8-bit
# section (build/dev/cuda/kernels_bench fp16 8bit: FP8 and INT8 GEMM rates through our wrappers
# beside the fp16 rate of ake_cuda_gemm_run, and each quantizing kernel against its byte floor at
# MiniLM and bert-base B=128 S=128), then the whole `make test-gpu` (the kernel tests, the 8-bit
# checks among them, and the engines against the CPU engine) with HTTP_GPU=0 unless set.
#
#   bash bench/gpu_kernels8.sh          results under $OUT (device tool) or bench/results
# Through the device tool: `bash bench/gpu_carry.sh` here, then run it with carry [".carry/debs",
# ".carry/tok"] (in the working tree, or in /tmp/ake after `tar -xzf .carry/ake.tar.gz -C /tmp/ake`
# to build the committed tree; then also AKE_DEBS and TOKENIZER pointing back at .carry).
# Environment: GPU_MODEL (default: MiniLM-L6 synthesized here from the tokenizer in $TOKENIZER,
# default .carry/tok), AKE_COMMIT (the commit, when the tree has no .git), CUDA_ARCH (default 90),
# AKE_DEBS (see bench/gpu_env.sh). Output: kernels8-<date>.txt (card, commit, date and the lab's
# rows), test-gpu8-<date>.log (make test-gpu's log).
set -uo pipefail
cd "$(dirname "$0")/.."
RES=${OUT:-bench/results}
mkdir -p "$RES" build
source bench/gpu_env.sh || exit 1
export CUDA_ARCH=${CUDA_ARCH:-90}
TOKENIZER=${TOKENIZER:-.carry/tok}
export TOKENIZER
DATE=$(date -u +%Y-%m-%d)
COMMIT=${AKE_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
CARD=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -n1)
t0=$(date +%s)
make -j"$(nproc)" all dev-cuda build/tests/gpu/test_kernels build/tests/gpu/test_engine_gpu >build/make8.log 2>&1 ||
    { tail -n 40 build/make8.log; exit 1; }
echo "build: $(($(date +%s) - t0)) s"
{
    echo "# kernels_bench fp16 8bit"
    echo "card: $CARD"
    echo "commit: $COMMIT"
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "cuda: $(nvcc --version | tail -n 2 | head -n 1)"
    nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader
    build/dev/cuda/kernels_bench fp16 8bit
} 2>&1 | tee "$RES/kernels8-$DATE.txt"
echo "lab: $(($(date +%s) - t0)) s"
if [ -z "${GPU_MODEL:-}" ]; then
    GPU_MODEL=build/gpu-models/minilm-l6
    [ -f "$GPU_MODEL/model.safetensors" ] ||
        build/akidb-embed synth --arch minilm-l6 --seed 1 --out "$GPU_MODEL" --tokenizer-from "$TOKENIZER" >/dev/null || exit 1
fi
rc=0
HTTP_GPU=${HTTP_GPU:-0} AKE_COMMIT=$COMMIT make GPU_MODEL="$GPU_MODEL" test-gpu || rc=1
cp build/test-gpu.log "$RES/test-gpu8-$DATE.log"
grep -E '^(FAIL|info)|checks,' build/test-kernels.out
echo "total: $(($(date +%s) - t0)) s"
exit $rc
