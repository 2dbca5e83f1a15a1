#!/usr/bin/env bash
# A/B experiments on real models (src/serve/router.h), one server, our loadgen at a steady open-loop
# rate (default 200 req/s, one 8-word text per request, no `user`: random arms), each experiment in
# turn with the plan's holds and sample counts (min_hold_s 60, min_samples 10000):
#   1. fp32-a-a: version 4 = the same FP32 all-MiniLM-L6-v2 as control (an A/A test), steps 5, 50:
#      what the latency comparison says when nothing differs, below and at equal load;
#   2. minilm-int8-defaults: version 2 = the same folder as dynamic INT8, every gate the plan's;
#   3. minilm-int8: the same canary with latency_improvement_min 0.3 (reached: promoted);
#   4. l3-posing: paraphrase-MiniLM-L3-v2 posing as version 3 of the promoted model: rolled back.
# About 12 minutes. Writes $OUT/ab-cpu-<date>-<commit>/: each experiment's final state with its
# decision log (<name>.json), loadgen's report (<name>-loadgen.txt), the server log, /metrics'
# ake_experiment_* lines and /v1/models at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-200}
BIN=${AKE_BIN:-build/akidb-embed}
COMMIT=${AKE_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
OUT=${OUT:-bench/results}/ab-cpu-$(date -u +%F)-$COMMIT
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
log() { printf 'ab bench: %s\n' "$*" >&2; }
mkdir -p "$OUT"
bash scripts/models >/dev/null # paraphrase-MiniLM-L3-v2, imported

MODEL=$PWD/models/all-MiniLM-L6-v2
M=$WORK/repo/minilm
mkdir -p "$M/2" "$M/4"
ln -s "$MODEL" "$M/1"
for f in "$MODEL"/*; do ln -s "$f" "$M/2/"; ln -s "$f" "$M/4/"; done
echo '{"dtype": "int8"}' >"$M/2/akidb-model.json"
ln -s "$PWD/models/repository/paraphrase-MiniLM-L3-v2/1" "$M/3"
echo '{"version_policy": {"specific": ["1"]}}' >"$M/akidb-model.json"

experiment() { # name control canary steps gates
    printf '{"name": "%s", "model": "minilm", "arms": [{"version": "%s", "role": "control"}, {"version": "%s", "role": "canary"}], "shadow_fraction": 0.05, "rollout": {"steps": %s, "min_hold_s": 60, "min_samples": 10000, "gates": %s}}' "$@"
}

PORT=18480 ADMIN=18481
"$BIN" serve --model-repository "$WORK/repo" --port $PORT --admin-port $ADMIN >"$OUT/serve.log" 2>&1 &
for _ in $(seq 100); do curl -sf localhost:$PORT/health >/dev/null && break; sleep 0.2; done

run() { # name seconds plan
    log "$1 ($2 s at $RATE req/s)"
    curl -sf -X POST localhost:$ADMIN/admin/experiments -d "$3" >/dev/null
    "$BIN" loadgen --url http://127.0.0.1:$PORT --rate "$RATE" --duration "$2" --warmup 1 >"$OUT/$1-loadgen.txt" 2>&1
    curl -sf localhost:$ADMIN/admin/experiments/$1 >"$OUT/$1.json"
}
run fp32-a-a 135 "$(experiment fp32-a-a 1 4 '[5, 50, 100]' '{}')"
curl -sf -X DELETE localhost:$ADMIN/admin/experiments/fp32-a-a >/dev/null
run minilm-int8-defaults 200 "$(experiment minilm-int8-defaults 1 2 '[5, 25, 50, 100]' '{}')"
run minilm-int8 200 "$(experiment minilm-int8 1 2 '[5, 25, 50, 100]' '{"latency_improvement_min": 0.3}')"
run l3-posing 70 "$(experiment l3-posing 2 3 '[5, 25, 50, 100]' '{}')"
curl -sf localhost:$PORT/metrics | grep '^ake_experiment' >"$OUT/metrics.txt"
curl -sf localhost:$PORT/v1/models >"$OUT/models.json"
python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
rows = ["| experiment | event | canary % | n control / canary | P95 control / canary ms | improvement | p | agreement | reason |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|"]
for name in ["fp32-a-a", "minilm-int8-defaults", "minilm-int8", "l3-posing"]:
    x = json.loads((out / f"{name}.json").read_text())
    for e in x["log"]:
        d = e.get("decision")
        if d:
            rows.append(f"| {name} | {e['event']} | {d['step_percent']:g} | {d['n_control']} / {d['n_canary']} | "
                        f"{d['p95_control_ms']:.1f} / {d['p95_canary_ms']:.1f} | {d['latency_improvement']:.3f} | "
                        f"{d['p_value']:.2g} | {d['agreement_mean']:.4f} | {d['reason'].split(':')[0]} |")
(out / "decisions.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PY
log "results in $OUT"
