#!/usr/bin/env bash
# `akidb-embed loadgen` against wrk on the same server in one run: is the highest rate loadgen
# achieves at least 90 % of wrk's? wrk is closed loop at full speed (each connection sends its
# next request when the last one is answered), with bench/wrk_post.lua POSTing the TEI /embed
# body loadgen sends (`loadgen --print-body`); wrk runs before and after loadgen and the higher
# of its two rates is the reference. loadgen is open loop at rising rates (fractions of wrk's
# rate, 0.5 up to 2), stopping once its achieved rate stops rising (two rates in a row without
# a new best by 1 %: one noisy run on a shared machine is no plateau) or errors appear or it
# reports falling behind its own schedule; its maximum is the highest achieved rate of a run
# without errors. Both get the same threads and connections, so past the server's capacity
# loadgen holds as many requests in the server as wrk does (the rest wait in loadgen, their
# latency running): the server works in the same regime, deep queue and full batches, for both.
#
# Usage: bash bench/loadgen_vs_wrk.sh [options]
#   --url URL          use the server at URL (base, e.g. http://127.0.0.1:8080) instead of starting one
#   --device DEV       device of the server started here (default cpu; cuda:0 on a GPU machine, where
#                      bench/gpu_env.sh is sourced first for the carried libraries and wrk)
#   --model DIR        its model (default models/all-MiniLM-L6-v2)
#   --server-args "F"  more flags for `akidb-embed serve`
#   --threads N        wrk -t and loadgen --threads (default: online cores / 2, at least 1)
#   --connections C    wrk -c and loadgen --max-connections (default 256)
#   --wrk-duration S   seconds of each wrk run (default 10)
#   --duration S       measured seconds per loadgen rate, after 1 s of warm-up (default 8)
#   --words L          words per text, one text per request (default 8, ~10 tokens)
#   --endpoint PATH    /embed (default) or /tokenize, which takes the same body and answers without
#                      the engine: the server's HTTP layer alone, to see the generators' own ceilings
#   --out FILE         results JSON (default <results>/loadgen_vs_wrk[-tokenize]-<UTC date>-<host kind>-<commit>.json,
#                      <results> being $OUT under the device tool, else bench/results)
# Environment: AKE_COMMIT names the commit where the tree has no .git (the device tool's copy).
# On a GPU machine through the device tool (`bash bench/gpu_carry.sh` here first; carry
# [".carry/debs", ".carry/tok"]; the weights do not matter to this benchmark, so MiniLM-L6 is
# synthesized from the carried tokenizer):
#   source bench/gpu_env.sh && CUDA_ARCH=90 make -j16 all >/dev/null &&
#   build/akidb-embed synth --arch minilm-l6 --seed 1 --out build/gpu-models/minilm-l6 --tokenizer-from .carry/tok &&
#   AKE_COMMIT=<commit> bash bench/loadgen_vs_wrk.sh --device cuda:0 --model build/gpu-models/minilm-l6
# Exit status: 0 when the ratio is >= 0.9, 1 when below, 2 on a usage or setup error.
set -euo pipefail
cd "$(dirname "$0")/.."

url=
device=cpu
model=models/all-MiniLM-L6-v2
server_args=
cores=$(nproc)
threads=$((cores / 2 > 0 ? cores / 2 : 1))
connections=256
wrk_duration=10
duration=8
words=8
endpoint=/embed
out=
while (($#)); do
    case $1 in
        --url) url=$2; shift 2 ;;
        --device) device=$2; shift 2 ;;
        --model) model=$2; shift 2 ;;
        --server-args) server_args=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --connections) connections=$2; shift 2 ;;
        --wrk-duration) wrk_duration=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --words) words=$2; shift 2 ;;
        --endpoint) endpoint=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "loadgen_vs_wrk.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

if [ "${device#cuda}" != "$device" ]; then
    source bench/gpu_env.sh || exit 2
    export CUDA_ARCH=${CUDA_ARCH:-90}
fi
command -v wrk >/dev/null || { echo "loadgen_vs_wrk.sh: wrk not found (apt-get install wrk)" >&2; exit 2; }
make -s -j"$cores" all >/dev/null || exit 2
BIN=build/akidb-embed

commit=${AKE_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || commit=$commit-dirty
gpu=
if [ "${device#cuda}" != "$device" ]; then
    gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1)
    kind=$(echo "$gpu" | tr 'A-Z' 'a-z' | sed -e 's/^nvidia //' -e 's/[^a-z0-9]\+/-/g' -e 's/-$//')-${cores}c
else
    kind=cpu-${cores}c
fi
case $endpoint in
    /embed) name=loadgen_vs_wrk ;;
    /tokenize) name=loadgen_vs_wrk-tokenize ;;
    *) echo "loadgen_vs_wrk.sh: --endpoint is /embed or /tokenize" >&2; exit 2 ;;
esac
out=${out:-${OUT:-bench/results}/$name-$(date -u +%F)-$kind-$commit.json}

tmp=$(mktemp -d)
server=
cleanup() {
    [ -z "$server" ] || { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; }
    rm -rf "$tmp"
}
trap cleanup EXIT
# curl the command breaks under the GPU machine's LD_LIBRARY_PATH (the carried libraries): python's urllib does not.
healthy() { python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/health', timeout=2)" "$1" 2>/dev/null; }
if [ -z "$url" ]; then
    port=$((20000 + RANDOM % 20000))
    url=http://127.0.0.1:$port
    # shellcheck disable=SC2086
    $BIN serve --port "$port" --model "$model" --device "$device" --log-level warn $server_args 2>"$tmp/server.log" &
    server=$!
    for _ in $(seq 600); do healthy "$url" && break; kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
fi
healthy "$url" || { echo "loadgen_vs_wrk.sh: no healthy server at $url" >&2; cat "$tmp/server.log" >&2 2>/dev/null; exit 2; }
url=${url%/}

$BIN loadgen --print-body --text-len "$words" >"$tmp/body.json"
echo "loadgen_vs_wrk: $url$endpoint ($device), $kind, commit $commit; threads $threads, connections $connections;" \
     "body $(cat "$tmp/body.json"); load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

field() { python3 -c "import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
run_wrk() { # run_wrk NAME: one closed-loop run; its totals in $tmp/NAME.json, its rate of 200s on stdout
    wrk -t "$threads" -c "$connections" -d "$wrk_duration" -s bench/wrk_post.lua "$url$endpoint" -- "$tmp/body.json" \
        >"$tmp/$1.txt"
    # a response of status > 399 counts among wrk's requests, so those come off; a socket error
    # never counts, and a request past wrk's timeout counts once it is answered
    python3 - "$tmp/$1.txt" "$tmp/$1.json" <<'PY'
import json, sys
w = json.loads([l for l in open(sys.argv[1]) if l.startswith("{")][-1])
w["good_qps"] = round((w["requests"] - w["errors_status"]) / w["duration_s"], 1)
json.dump(w, open(sys.argv[2], "w"))
print(w["good_qps"])
PY
}

# wrk warms the server's connections and batching path as well; the first 2 s are not counted
wrk -t "$threads" -c "$connections" -d 2 -s bench/wrk_post.lua "$url$endpoint" -- "$tmp/body.json" >/dev/null
wrk1=$(run_wrk wrk1)
echo "wrk (before loadgen): $wrk1 requests/s" >&2

# loadgen at rising rates, as fractions of wrk's rate
best=0
flat=0
for f in 0.5 0.7 0.85 1.0 1.1 1.25 1.5 2.0; do
    r=$(python3 -c "import sys; print(max(1, round(float(sys.argv[1]) * float(sys.argv[2]))))" "$f" "$wrk1")
    $BIN loadgen --url "$url$endpoint" --rate "$r" --duration "$duration" --warmup 1 --threads "$threads" \
        --max-connections "$connections" --text-len "$words" --json "$tmp/lg-$r.json" 2>"$tmp/lg-$r.err" |
        tail -n1 >&2
    cat "$tmp/lg-$r.err" >&2
    echo "$r" >>"$tmp/rates"
    q=$(field "$tmp/lg-$r.json" achieved_qps)
    errs=$(python3 -c "import json, sys; d = json.load(open(sys.argv[1])); print(d['http_errors'] + d['network_errors'])" \
        "$tmp/lg-$r.json")
    [ "$errs" = 0 ] || { echo "loadgen: errors at rate $r: stop" >&2; break; }
    rising=$(python3 -c "import sys; print(int(float(sys.argv[1]) > 1.01 * float(sys.argv[2])))" "$q" "$best")
    python3 -c "import sys; sys.exit(float(sys.argv[1]) <= float(sys.argv[2]))" "$q" "$best" && best=$q
    if [ "$rising" = 1 ]; then flat=0; else flat=$((flat + 1)); fi
    [ "$(field "$tmp/lg-$r.json" generator_behind)" = False ] || { echo "loadgen: fell behind at rate $r: stop" >&2; break; }
    [ "$flat" -lt 2 ] || { echo "loadgen: achieved rate stopped rising at rate $r: stop" >&2; break; }
done

wrk2=$(run_wrk wrk2)
echo "wrk (after loadgen): $wrk2 requests/s" >&2
python3 -c "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1] + '/info', timeout=5).read().decode())" \
    "$url" >"$tmp/info.json" 2>/dev/null || echo '{}' >"$tmp/info.json"

python3 - "$tmp" "$out" "$kind" "$commit" "$gpu" "$device" "$threads" "$connections" "$wrk_duration" "$duration" \
    "$words" "$server_args" "${server:+started}" "$endpoint" <<'PY'
import datetime, json, os, platform, sys
(tmp, out, kind, commit, gpu, device, threads, connections, wrk_duration, duration, words, server_args,
 started, endpoint) = sys.argv[1:]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
wrk = [json.load(open(os.path.join(tmp, n + ".json"))) for n in ("wrk1", "wrk2")]
rows = [json.load(open(os.path.join(tmp, f"lg-{r.strip()}.json"))) for r in open(os.path.join(tmp, "rates"))]
clean = [r for r in rows if r["http_errors"] + r["network_errors"] == 0]
top = max(clean, key=lambda r: r["achieved_qps"]) if clean else None
wrk_max = max(w["good_qps"] for w in wrk)
lg_max = top["achieved_qps"] if top else 0.0
ratio = lg_max / wrk_max if wrk_max else 0.0
info = json.load(open(os.path.join(tmp, "info.json")))
doc = {"benchmark": "loadgen_vs_wrk",
       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
       "commit": commit, "host_kind": kind, "cpu": cpu, "cores": os.cpu_count(), "gpu": gpu or None,
       "server": {"device": device, "started_by_script": bool(started), "server_args": server_args,
                  **{k: info[k] for k in ("model_id", "dtype", "max_batch_size", "batch_policy", "version") if k in info}},
       "request": {"api": "tei", "endpoint": endpoint, "texts": 1, "words": int(words)},
       "threads": int(threads), "connections": int(connections),
       "wrk": {"duration_s": int(wrk_duration), "runs": wrk, "max_qps": wrk_max},
       "loadgen": {"duration_s": int(duration), "warmup_s": 1, "rows": rows, "max_qps": lg_max,
                   "max_at_rate": top["rate"] if top else None,
                   "send_lag_mean_ms_at_max": top["send_lag_mean_ms"] if top else None,
                   "send_lag_p99_ms_at_max": top["send_lag_p99_ms"] if top else None},
       "ratio": round(ratio, 4), "pass": ratio >= 0.9}
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
json.dump(doc, open(out, "w"), indent=1)
print("| offered | achieved | P50 ms | P99 ms | errors | send lag mean / P99 ms | behind |")
print("|---:|---:|---:|---:|---:|---:|---|")
for r in rows:
    print(f"| {r['rate']} | {r['achieved_qps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
          f"| {r['http_errors'] + r['network_errors']} | {r['send_lag_mean_ms']:.3f} / {r['send_lag_p99_ms']:.3f} "
          f"| {'yes' if r['generator_behind'] else 'no'} |")
print(f"\nwrk max {wrk_max:.0f} requests/s (runs: {', '.join(str(w['good_qps']) for w in wrk)}); "
      f"loadgen max {lg_max:.0f} requests/s (offered {top['rate'] if top else '-'}); ratio {ratio:.3f} "
      f"({'PASS' if ratio >= 0.9 else 'FAIL'}: >= 0.9); threads {threads}, connections {connections}")
print(f"{kind}, commit {commit}; written to {out}", file=sys.stderr)
sys.exit(0 if ratio >= 0.9 else 1)
PY
