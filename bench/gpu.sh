#!/usr/bin/env bash
# One GPU-machine call: build, `make test-gpu`, the kernel lab timer, akidb-embed bench and the
# PyTorch peer (bench/peers/torch_baseline.py --graphs) over the same grid on the same card,
# one table with both and the ratio, and the rows as JSON with card, commit and date.
#
#   bash bench/gpu.sh                       # everything; results under $OUT or bench/results
#   GPU_TESTS=0 bash bench/gpu.sh           # benchmark only
# Environment: GPU_MODEL (the real all-MiniLM-L6-v2, F32 or F16; default models/all-MiniLM-L6-v2;
# when absent, make test-gpu runs on a synthesized minilm-l6 instead and says so), TOKENIZER (a
# folder with MiniLM's tokenizer files for synthesized models; default GPU_MODEL), AKE_COMMIT (the commit, when the tree has no .git), CUDA_ARCH (default 90 here: one target
# compiles faster; the Makefile's default is the fat binary 80 86 89 90).
#
# Grid: MiniLM-L6, bge-small, bert-base, bert-large (random weights of the real configs,
# `akidb-embed synth`, seed 1) x batch 1/32/128 x seq 32/128/512, plus one mixed-length batch
# (the token lengths of the first 32 golden texts; PyTorch pads it to the longest and masks).
set -uo pipefail
cd "$(dirname "$0")/.."
RES=${OUT:-bench/results}
mkdir -p "$RES" build
source bench/gpu_env.sh || exit 1
export CUDA_ARCH=${CUDA_ARCH:-90}
GPU_MODEL=${GPU_MODEL:-models/all-MiniLM-L6-v2}
TOKENIZER=${TOKENIZER:-$GPU_MODEL}
export TOKENIZER
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1)
COMMIT=${AKE_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
DATE=$(date -u +%Y-%m-%d)
GRID=(--batch 1,32,128 --seq 32,128,512)
MIXED=3,12,256,173,4,39,2,7,3,13,12,13,3,3,3,8,256,39,4,35,2,9,3,5,27,22,3,3,5,11,256,117
MODELS=(minilm-l6 bge-small bert-base bert-large)
echo "card $CARD, commit $COMMIT, $DATE"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv

make -j"$(nproc)" all dev-cuda || exit 1
for arch in "${MODELS[@]}"; do
    [ -f "build/gpu-models/$arch/model.safetensors" ] ||
        build/akidb-embed synth --arch "$arch" --seed 1 --out "build/gpu-models/$arch" --tokenizer-from "$TOKENIZER" \
            || exit 1
done
if [ ! -f "$GPU_MODEL/model.safetensors" ]; then
    echo "gpu.sh: $GPU_MODEL not here: make test-gpu runs on the synthesized minilm-l6 instead"
    GPU_MODEL=build/gpu-models/minilm-l6
fi
tests=skipped
if [ "${GPU_TESTS:-1}" = 1 ]; then
    if make GPU_MODEL="$GPU_MODEL" test-gpu; then tests=PASS; else tests=FAIL; fi
    cp build/test-gpu.log "$RES/test-gpu-$DATE.log"
fi


{
    echo "## kernel lab (dev/cuda/kernels_bench), fp16"
    build/dev/cuda/kernels_bench fp16
    echo "## attention v1 (AKE_CUDA_ATTN=1), same shapes"
    AKE_CUDA_ATTN=1 build/dev/cuda/kernels_bench fp16 attention | grep attn_v1
    echo "## variants (akidb-embed bench, fp16 unless named)"
    for v in "bf16" "AKE_CUDA_GRAPHS=0" "AKE_CUDA_GELU=tanh" "AKE_CUDA_GEMM_TUNE=0"; do
        for arch in minilm-l6 bert-base; do
            if [ "$v" = bf16 ]; then env=(); dt=bf16; else env=("$v"); dt=fp16; fi
            echo "### $arch $v"
            env "${env[@]}" build/akidb-embed bench --model "build/gpu-models/$arch" --device cuda:0 --dtype $dt \
                --batch 1,128 --seq 32,128 --mixed none --iters 30
        done
    done
} 2>&1 | tee build/gpu-notes.txt
cp build/gpu-notes.txt "$RES/gpu-notes-$DATE.txt"

if [ "${GPU_SERVE:-1}" = 1 ]; then
    {
        echo "## server on the GPU end to end: akidb-embed serve --device cuda:0 (fp16, the CUDA default; MiniLM-L6 shapes),"
        echo "## akidb-embed loadgen, single-text requests (~10 tokens), open loop, 5 s per rate"
        build/akidb-embed serve --model build/gpu-models/minilm-l6 --device cuda:0 --port 18080 \
            --log-level warn >build/serve-gpu.log 2>&1 &
        sp=$!
        for _ in $(seq 150); do
            python3 -c "import requests; requests.get('http://127.0.0.1:18080/health', timeout=1).raise_for_status()" \
                2>/dev/null && break
            sleep 0.2
        done
        echo "### a lone request at a time (rate 20/s)"
        build/akidb-embed loadgen --url http://127.0.0.1:18080 --rate 20 --duration 5 --warmup 1
        for r in 5000 10000 20000 30000 40000; do
            echo "### rate $r/s"
            build/akidb-embed loadgen --url http://127.0.0.1:18080 --rate $r --duration 5 --warmup 1
        done
        kill "$sp" 2>/dev/null; wait "$sp" 2>/dev/null
        head -n 5 build/serve-gpu.log
    } 2>&1 | tee -a build/gpu-notes.txt
    cp build/gpu-notes.txt "$RES/gpu-notes-$DATE.txt"
fi

ours=()
for arch in "${MODELS[@]}"; do
    build/akidb-embed bench --model "build/gpu-models/$arch" --device cuda:0 --dtype fp16 "${GRID[@]}" --mixed "$MIXED" \
        --iters 50 --json "build/ours-$arch.json" || exit 1
    ours+=("build/ours-$arch.json")
done
PYTHONUNBUFFERED=1 python3 bench/peers/torch_baseline.py --models "$(IFS=,; echo "${MODELS[*]}")" "${GRID[@]}" \
    --mixed "$MIXED" --dtype float16 --graphs --out build/torch.json || echo "torch peer failed"
peer=(); [ -f build/torch.json ] && peer=(--peer build/torch.json)
python3 bench/gpu_table.py --ours "${ours[@]}" "${peer[@]}" --card "$CARD" --commit "$COMMIT" --date "$DATE" \
    --out "$RES/gpu-$DATE.json" | tee "$RES/gpu-table-$DATE.md"
echo "test-gpu: $tests"
[ "$tests" != FAIL ]
