#!/usr/bin/env bash
# The model registry's benchmark (src/serve/registry.h), one server run per part:
#   1. time to load and warm up each of the plan's five models: at start (first read of the
#      files) and again through the admin API (a reload, files in the page cache);
#   2. P99 latency of a steady open-loop load (our loadgen, OpenAI requests naming the model)
#      without swaps, then with a hot swap between two versions every second, same server.
# DEVICE=cpu (default) or cuda:0. MODELS=real (default: scripts/models, the two real models and
# three synthesized configs) or synth (all five synthesized: for GPU machines, which receive no
# model files; load and warm-up times do not depend on the weights' values). The swapped model
# has version 1 = the MiniLM-L6 of the repository and version 2 = its 3-layer model.
# RATE (requests/s) and DURATION (s) of the load: defaults 100 and 20 on the CPU, 2000 and 20 on a GPU.
# Writes $OUT/registry-<device>.{json,md} (default OUT=bench/results, names with date and commit).
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICE=${DEVICE:-cpu}
MODELS=${MODELS:-real}
case $DEVICE in cuda*) RATE=${RATE:-2000} ;; *) RATE=${RATE:-100} ;; esac
DURATION=${DURATION:-20}
BIN=${AKE_BIN:-build/akidb-embed}
COMMIT=${AKE_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
OUT=${OUT:-bench/results}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
log() { printf 'registry bench: %s\n' "$*" >&2; }
mkdir -p "$OUT"

if [ "$MODELS" = real ]; then
    bash scripts/models
    REPO=$PWD/models/repository
    SMALL=$REPO/all-MiniLM-L6-v2/1 L3=$REPO/paraphrase-MiniLM-L3-v2/1
else
    REPO=$WORK/repository
    TOK=${TOK:-.carry/tok}
    for spec in all-MiniLM-L6-v2:minilm-l6 paraphrase-MiniLM-L3-v2:minilm-l3 bert-base:bert-base \
                bge-small:bge-small uae-large:bert-large; do
        "$BIN" synth --arch "${spec#*:}" --seed 1 --dtype f16 --tokenizer-from "$TOK" --out "$REPO/${spec%%:*}/1" >/dev/null
    done
    SMALL=$REPO/all-MiniLM-L6-v2/1 L3=$REPO/paraphrase-MiniLM-L3-v2/1
fi
rm -f "$REPO/.akidb-state.json"

# start_server LOG ARGS...: sets PORT, ADMIN (URLs) once the server listens
start_server() {
    local logf=$1
    shift
    "$BIN" serve --port 0 --admin-port 0 --device "$DEVICE" "$@" >"$logf" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 1200); do
        if grep -q "admin API on" "$logf"; then break; fi
        kill -0 $SERVER_PID 2>/dev/null || { cat "$logf" >&2; exit 1; }
        sleep 0.1
    done
    PORT=http://127.0.0.1:$(grep -o 'on http://127.0.0.1:[0-9]*;' "$logf" | head -1 | grep -o '[0-9]*;' | tr -d ';')
    ADMIN=$(grep -o 'admin API on http://127.0.0.1:[0-9]*' "$logf" | head -1 | sed 's/admin API on //')
}

# HTTP through Python's urllib, not curl: GPU images carry a curl that our LD_LIBRARY_PATH breaks.
python3=$(command -v python3)
json_get() { "$python3" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
get() { "$python3" -c 'import sys, urllib.request as u; sys.stdout.write(u.urlopen(sys.argv[1], timeout=60).read().decode())' "$1"; }
post() { # post URL [JSON]: fails on an HTTP error
    "$python3" -c 'import sys, urllib.request as u
r = u.Request(sys.argv[1], data=sys.argv[2].encode(), method="POST", headers={"Content-Type": "application/json"})
sys.stdout.write(u.urlopen(r, timeout=600).read().decode())' "$1" "${2:-{\}}"
}

# ---- 1. load and warm-up times
start_server "$WORK/load.log" --model-repository "$REPO" --default-model all-MiniLM-L6-v2
start_ms=$(get "$ADMIN/admin/models" | json_get '";".join("%s=%s=%s" % (m["model_id"], m["load_ms"], m["weight_bytes"]) for m in d["loaded"])')
reload=""
for name in all-MiniLM-L6-v2 paraphrase-MiniLM-L3-v2 bert-base bge-small uae-large; do
    post "$ADMIN/admin/models/$name/unload" >/dev/null
    sleep 0.5
    t0=$(date +%s.%N)
    post "$ADMIN/admin/models/$name/load" '{"version":"1"}' >/dev/null
    t1=$(date +%s.%N)
    reload="$reload;$name=$("$python3" -c "print(round(($t1 - $t0) * 1000, 1))")"
done
kill -TERM $SERVER_PID
wait $SERVER_PID || true

# ---- 2. P99 with and without swaps
SWAP=$WORK/swap
mkdir -p "$SWAP/minilm"
ln -s "$SMALL" "$SWAP/minilm/1"
ln -s "$L3" "$SWAP/minilm/2"
start_server "$WORK/swap.log" --model-repository "$SWAP" --repository-poll-s 0
lg() { "$BIN" loadgen --url "$PORT" --api openai --model minilm --rate "$RATE" --duration "$DURATION" --warmup 2 --json "$1" >/dev/null; }
lg "$WORK/steady.json"
swaps=0
(
    v=1
    while true; do
        post "$ADMIN/admin/models/minilm/load" "{\"version\":\"$v\"}" >/dev/null || exit 1
        v=$((3 - v))
        sleep 1
    done
) &
SWAPPER=$!
lg "$WORK/swapping.json"
kill $SWAPPER 2>/dev/null || true
wait $SWAPPER 2>/dev/null || true
swaps=$(grep -c "minilm version [12]: serving" "$WORK/swap.log" || true)
kill -TERM $SERVER_PID
wait $SERVER_PID || true

card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
[ -n "$card" ] && [ "$DEVICE" != cpu ] || card="cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
tag=registry-${DEVICE//:/}-$(date +%F)-$COMMIT
"$python3" - "$WORK" "$OUT/$tag" "$start_ms" "$reload" "$swaps" "$card" "$COMMIT" "$DEVICE" "$MODELS" "$RATE" <<'EOF'
import json, sys
work, out, start_ms, reload, swaps, card, commit, device, models, rate = sys.argv[1:]
start = {k: (float(ms), int(b)) for k, ms, b in (x.split("=") for x in start_ms.split(";") if x)}
again = {k: float(ms) for k, ms in (x.split("=") for x in reload.split(";") if x)}
steady = json.load(open(f"{work}/steady.json"))
swapping = json.load(open(f"{work}/swapping.json"))
res = {"card": card, "commit": commit, "device": device, "models": models, "rate": float(rate),
       "load_ms_at_start": {k: v[0] for k, v in start.items()}, "weight_bytes": {k: v[1] for k, v in start.items()},
       "reload_ms_admin": again, "steady": steady, "swapping": swapping, "swaps_during_load": int(swaps)}
json.dump(res, open(out + ".json", "w"), indent=1)
lines = [f"# Model registry on {card} (device {device}, commit {commit}, models: {models})", "",
         "| model | weights MB | load + warm-up at start ms | reload through the admin API ms |", "|---|---:|---:|---:|"]
for k in start:
    lines.append(f"| {k} | {start[k][1] / 1e6:.1f} | {start[k][0]:.0f} | {again.get(k, float('nan')):.0f} |")
lines += ["", f"Steady load, {rate} requests/s of one text (OpenAI API), the same server:", "",
          "| | sent | ok | errors | achieved req/s | P50 ms | P95 ms | P99 ms | max ms |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
for name, r in (("no swap", steady), (f"{swaps} swaps (one per second)", swapping)):
    errors = r["http_errors"] + r["network_errors"]
    lines.append(f"| {name} | {r['sent']} | {r['ok']} | {errors} | {r['achieved_qps']:.0f} | {r['p50_ms']:.2f} | "
                 f"{r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.2f} |")
open(out + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
