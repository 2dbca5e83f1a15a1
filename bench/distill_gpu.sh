#!/usr/bin/env bash
# The distillation of all-MiniLM-L6-v2 into a 3-layer student on a GPU machine (issue 11), with
# the peers measured in the same job:
#   1. a short learning-rate sweep (SWEEP_STEPS updates per rate in LRS), picking the rate with
#      the best validation recall@10
#   2. the full run at that rate (STEPS updates of BATCH sentences, validation every 2,000)
#   3. PyTorch training the same student on the same corpus with the same batch and precision
#      (bench/peers/torch_distill.py: eager, and torch.compile when COMPILE=1)
#   4. embedding speed of the student and the teacher (akidb-embed bench, same card, same job)
#   5. the student against the teacher on the evaluation sentences, both on the GPU
# Needs the build (make CUDA_ARCH=90), the corpus (scripts/distill_corpus, or its tarball from
# bench/gpu_carry.sh unpacked into data/) and the teacher (the F16 MiniLM of bench/gpu_carry.sh).
# Small results go to OUT (trained-f16.safetensors, distillation.json, curve.tsv, JSON of every
# measurement, run.txt with card, commit and date); the model folders stay in build/distill-work.
#
#   bash bench/distill_gpu.sh [OUT]
#   PHASES="sweep full" bash bench/distill_gpu.sh OUT     only those parts (sweep full peer bench validate);
#                                                         LR=... skips the sweep's choice
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-build/distill-gpu}}
BIN=${BIN:-build/akidb-embed}
TEACHER=${TEACHER:-.carry/all-MiniLM-L6-v2-f16}
DATA=${DATA:-data/distill}
LAYERS=${LAYERS:-1,3,5} BATCH=${BATCH:-512} MAXLEN=${MAXLEN:-128} STEPS=${STEPS:-54000}
LRS=${LRS:-1e-3 2e-3} SWEEP_STEPS=${SWEEP_STEPS:-6000} PEER_STEPS=${PEER_STEPS:-300}
LOSS_ARGS=${LOSS_ARGS:-}   # e.g. "--contrastive 0.05 --temperature 0.05": given to our trainer and the peer alike
PYTHON=${PYTHON:-python3}
PHASES=${PHASES:-sweep full peer bench validate}
want() { [[ " $PHASES " == *" $1 "* ]]; }
WORK=build/distill-work
mkdir -p "$OUT" "$WORK"
{
    echo "card: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -n1)"
    echo "commit: ${AKE_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "teacher: $TEACHER; layers $LAYERS; batch $BATCH; max-len $MAXLEN; corpus $(wc -l <"$DATA/train.txt") sentences"
} | tee "$OUT/run.txt"
COMMON=(--teacher "$TEACHER" --layers "$LAYERS" --corpus "$DATA/train.txt" --valid "$DATA/valid.txt"
        --batch "$BATCH" --max-len "$MAXLEN" --device cuda:0 --no-plot $LOSS_ARGS)
recall() { "$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["final_validation"]["recall_at_10"])' "$1"; }

# 1. learning-rate sweep; the tokenized corpus of the first run is reused (its header names the corpus)
best_lr= best_recall=-1
want sweep || LRS=
for lr in $LRS; do
    dir=$WORK/sweep-$lr
    rm -rf "$dir"
    if [ -f "$WORK/tokens.bin" ]; then mkdir -p "$dir/checkpoint" && cp "$WORK/tokens.bin" "$dir/checkpoint/"; fi
    "$BIN" distill "${COMMON[@]}" --lr "$lr" --steps "$SWEEP_STEPS" --valid-every "$SWEEP_STEPS" --out "$dir" \
        2>"$dir.log" || { tail -5 "$dir.log"; exit 1; }
    cp -n "$dir/checkpoint/tokens.bin" "$WORK/tokens.bin" 2>/dev/null || true
    r=$(recall "$dir/distillation.json")
    echo "sweep: lr $lr, $SWEEP_STEPS steps: validation recall@10 $r" | tee -a "$OUT/run.txt"
    if "$PYTHON" -c "import sys; sys.exit(0 if $r > $best_recall else 1)"; then best_lr=$lr best_recall=$r; fi
done
LR=${LR:-$best_lr}
dir=$WORK/minilm-l3-distilled

# 2. the full run
if want full; then
echo "full run at lr $LR" | tee -a "$OUT/run.txt"
rm -rf "$dir"
mkdir -p "$dir/checkpoint"
[ ! -f "$WORK/tokens.bin" ] || cp "$WORK/tokens.bin" "$dir/checkpoint/"
start=$SECONDS
"$BIN" distill "${COMMON[@]}" --lr "$LR" --steps "$STEPS" --valid-every 2000 --checkpoint-every 5000 --out "$dir" \
    2>"$OUT/distill.log" || { tail -20 "$OUT/distill.log"; exit 1; }
echo "full run: $((SECONDS - start)) s wall" | tee -a "$OUT/run.txt"
grep -E "^validation" "$OUT/distill.log" | tee -a "$OUT/run.txt"
cp "$dir/distillation.json" "$dir/curve.tsv" "$dir/trained-f16.safetensors" "$OUT/"
fi

# 3. PyTorch training the same student
want peer && for compile in 0 ${COMPILE:+1}; do
    "$PYTHON" bench/peers/torch_distill.py --teacher "$TEACHER" --corpus "$DATA/train.txt" --layers "$LAYERS" \
        --batch "$BATCH" --max-len "$MAXLEN" --steps "$PEER_STEPS" --precision bf16 $LOSS_ARGS \
        $([ "$compile" = 1 ] && echo --compile) --out "$OUT/torch_distill$([ "$compile" = 1 ] && echo _compile).json" \
        2>&1 | tail -3 | tee -a "$OUT/run.txt" || echo "torch peer failed" | tee -a "$OUT/run.txt"
done
want peer && "$PYTHON" - "$OUT" "$dir" <<'PY' | tee -a "$OUT/run.txt"
import glob, json, sys
out, run = sys.argv[1], sys.argv[2]
d = json.load(open(f"{run}/distillation.json"))  # the full run's, this job's or an earlier one's
ours = d["train_tokens"] / d["train_seconds"]
print(f"training tokens/s: akidb-embed {ours:,.0f} (all {d['steps_done']} steps)")
for f in sorted(glob.glob(f"{out}/torch_distill*.json")):
    p = json.load(open(f))
    p = p[-1] if isinstance(p, list) else p
    print(f"training tokens/s: pytorch{' compiled' if p.get('compile') else ''} {p['tokens_per_s']:,.0f}: ratio {ours / p['tokens_per_s']:.2f}")
PY

# 4. embedding speed, student and teacher, same card and job
want bench && for m in student teacher; do
    model=$([ $m = student ] && echo "$dir" || echo "$TEACHER")
    "$BIN" bench --model "$model" --device cuda:0 --batch 1,32,128 --seq 32,128 --json "$OUT/bench-$m.json" \
        >"$OUT/bench-$m.txt" 2>&1
done
want bench && "$PYTHON" - "$OUT" <<'PY' | tee -a "$OUT/run.txt"
import json, sys
out = sys.argv[1]
rows = {m: json.load(open(f"{out}/bench-{m}.json")) for m in ("student", "teacher")}
def key(r): return (r.get("batch"), r.get("seq"), r.get("mixed", False))
t = {key(r): r for r in rows["teacher"]}
for r in rows["student"]:
    k = key(r)
    if k in t and "tokens_per_s" in r:
        print(f"embedding {k}: student {r['tokens_per_s']:,.0f} tokens/s, teacher {t[k]['tokens_per_s']:,.0f}: "
              f"{r['tokens_per_s'] / t[k]['tokens_per_s']:.2f}x")
PY

# 5. the student against the teacher on the evaluation sentences (GPU engines, fp16)
want validate && "$BIN" validate --model "$dir" --device cuda:0 --reference "$TEACHER" --reference-device cuda:0 \
    --reference-dtype fp16 \
    --corpus "$DATA/eval.txt" --queries 15000 --gate mean=0.95,min=0,recall=0.80 --json "$OUT/validate-gpu.json" \
    2>&1 | tail -6 | tee -a "$OUT/run.txt" || true
