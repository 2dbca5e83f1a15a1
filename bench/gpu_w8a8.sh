#!/usr/bin/env bash
# One GPU-machine call for the W8A8 engines (issue 7): build, then akidb-embed bench in fp16,
# int8 and fp8 over the issue's cells on synthesized MiniLM-L6 / bert-base / bert-large (the
# real configs, random weights, seed 1: dynamic quantization at load), and, unless PEER=0,
# PyTorch's strongest mode on the same cells in the same call (torch.compile max-autotune in a
# CUDA graph, ../shared/bench/torch_compile_peer.py, carried as .carry/peers/). Rows to
# $OUT (or bench/results) as JSON and one markdown table with card, commit and date.
#
#   bash bench/gpu_w8a8.sh           # on the GPU machine; AKE_COMMIT names the commit measured
# Environment: TESTS=1 also runs make test-gpu first (GPU_MODEL, GPU_GATE as tests/gpu/run.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
RES=${OUT:-bench/results}
mkdir -p "$RES" build
source bench/gpu_env.sh || exit 1
export CUDA_ARCH=${CUDA_ARCH:-90}
TOKENIZER=${TOKENIZER:-.carry/tok}
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1)
COMMIT=${AKE_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
DATE=$(date -u +%Y-%m-%d)
echo "card $CARD, commit $COMMIT, $DATE"
make -j"$(nproc)" all build/tests/gpu/test_kernels build/tests/gpu/test_engine_gpu >build/make.log 2>&1 ||
    { tail -n 30 build/make.log; exit 1; }
for arch in minilm-l6 bert-base bert-large; do
    [ -f "build/gpu-models/$arch/model.safetensors" ] ||
        build/akidb-embed synth --arch "$arch" --seed 1 --out "build/gpu-models/$arch" --tokenizer-from "$TOKENIZER" \
            >/dev/null || exit 1
done
tests=skipped
if [ "${TESTS:-0}" = 1 ]; then
    if make GPU_MODEL="${GPU_MODEL:-build/gpu-models/minilm-l6}" TOKENIZER="$TOKENIZER" test-gpu; then tests=PASS; else tests=FAIL; fi
    cp build/test-gpu.log "$RES/test-gpu-$DATE-$COMMIT.log"
fi

# the issue's cells: MiniLM B=1 S=32 and B=128 S=128, bert-base B=128 S=128, bert-large B=32 S=512
cells=(minilm-l6:1:32 minilm-l6:128:128 bert-base:128:128 bert-large:32:512)
rows=()
for c in "${cells[@]}"; do
    IFS=: read -r arch b s <<<"$c"
    for dt in fp16 int8 fp8; do
        f=build/w8a8-$arch-$b-$s-$dt.json
        build/akidb-embed bench --model "build/gpu-models/$arch" --device cuda:0 --dtype $dt --batch "$b" --seq "$s" \
            --mixed none --iters 50 --json "$f" >/dev/null 2>build/bench-err.txt || { cat build/bench-err.txt; continue; }
        rows+=("$f")
    done
done
if [ "${PEER:-1}" = 1 ]; then
    PYTHONUNBUFFERED=1 python3 .carry/peers/torch_compile_peer.py --cells "$(IFS=,; echo "${cells[*]}")" \
        --out build/torch_compile.json >build/torch_compile.log 2>&1 || tail -n 5 build/torch_compile.log
fi
python3 - "$CARD" "$COMMIT" "$DATE" "$RES/gpu-w8a8-$DATE-$COMMIT" "${rows[@]}" <<'EOF'
import json, os, sys
card, commit, date, stem, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
ours = {}
for f in files:
    for r in json.load(open(f)):
        ours[(r["model"], r["batch"], r["seq"], r["dtype"])] = r
peer = {}  # PyTorch's modes per cell: eager, cuda-graph, compile, compile+graph
if os.path.exists("build/torch_compile.json"):
    for p in json.load(open("build/torch_compile.json")):
        peer.setdefault((p["model"], p["batch"], p["seq"]), {})[p["impl"].replace("pytorch-", "")] = p["ms"]
out = {"card": card, "commit": commit, "date": date, "ours": list(ours.values()),
       "peer": [dict(model=k[0], batch=k[1], seq=k[2], **v) for k, v in peer.items()]}
json.dump(out, open(stem + ".json", "w"), indent=1)
lines = [f"# W8A8 engines vs fp16 and PyTorch's best, {card}, commit {commit}, {date}", "",
         "| cell | fp16 ms | int8 ms | fp8 ms | torch.compile+graph ms | fp16 Mtok/s | int8 Mtok/s | fp8 Mtok/s | torch Mtok/s |",
         "|---|---|---|---|---|---|---|---|---|"]
cells = sorted({k[:3] for k in ours}, key=lambda k: (k[0], k[1], k[2]))
for arch, b, s in cells:
    ms = [ours.get((arch, b, s, dt), {}).get("ms") for dt in ("fp16", "int8", "fp8")]
    p = peer.get((arch, b, s), {})
    pm = p.get("compile+graph") or p.get("cuda-graph")
    tok = b * s
    fmt = lambda v: f"{v:.3f}" if v else "-"
    rate = lambda v: f"{tok / v / 1e3:.2f}" if v else "-"
    lines.append(f"| {arch} B={b} S={s} | " + " | ".join(fmt(v) for v in ms + [pm]) + " | "
                 + " | ".join(rate(v) for v in ms + [pm]) + " |")
open(stem + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
echo "test-gpu: $tests"
[ "$tests" != FAIL ]
