#!/usr/bin/env bash
# HTTP serving benchmark on this machine's CPU: `akidb-embed serve` with its defaults, driven
# open-loop by `akidb-embed loadgen` at rising rates; one row per rate with achieved QPS and
# P50/P95/P99/max latency. The server and the load generator share the machine, as they
# would in a single-box deployment; the load generator is one thread.
#
# Usage: bash bench/serve_cpu.sh [--rates LIST] [--duration S] [--inputs K] [--words L] [--out FILE]
#   --rates LIST    comma-separated request rates (default 25,50,100,150,200,300,400,600)
#   --duration S    measured seconds per rate, after 2 s of warm-up (default 15)
#   --inputs K      texts per request (default 1: the plan's single-text baseline)
#   --words L       words per text, about L+2 tokens (default 8)
#   --out FILE      results JSON (default bench/results/serve_cpu-<UTC date>.json)
#   --server-args "FLAGS"  extra flags for `akidb-embed serve` (e.g. "--batch-policy 0:64")
set -euo pipefail
cd "$(dirname "$0")/.."

rates=25,50,100,150,200,300,400,600
duration=15
inputs=1
words=8
out=
server_args=
while (($#)); do
    case $1 in
        --rates) rates=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --inputs) inputs=$2; shift 2 ;;
        --words) words=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --server-args) server_args=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "serve_cpu.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
out=${out:-bench/results/serve_cpu-$(date -u +%F).json}

[ -f models/all-MiniLM-L6-v2/model.safetensors ] || bash scripts/setup
make -s all
tmp=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
# shellcheck disable=SC2086
./build/akidb-embed serve --port "$port" --log-level warn $server_args 2>"$tmp/server.log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$port/health" >/dev/null || { cat "$tmp/server.log" >&2; exit 1; }

echo "serve_cpu: load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
IFS=, read -ra list <<<"$rates"
for r in "${list[@]}"; do
    ./build/akidb-embed loadgen --url "http://127.0.0.1:$port" --rate "$r" --duration "$duration" --warmup 2 \
        --inputs-per-request "$inputs" --text-len "$words" --json "$tmp/rate-$r.json" | tail -1 >&2
    cut -d' ' -f1 /proc/loadavg >"$tmp/load-$r"
done
curl -s "http://127.0.0.1:$port/info" >"$tmp/info.json"

python3 - "$tmp" "$out" "$rates" "$server_args" <<'PY'
import json, os, platform, subprocess, sys, datetime
tmp, out, rates, server_args = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
info = json.load(open(os.path.join(tmp, "info.json")))
rows = []
for r in rates:
    row = json.load(open(os.path.join(tmp, f"rate-{r}.json")))
    row["loadavg_1m_after"] = float(open(os.path.join(tmp, f"load-{r}")).read())
    rows.append(row)
doc = {"benchmark": "serve_cpu", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
       "commit": commit + ("-dirty" if dirty else ""), "cpu": cpu, "cores": os.cpu_count(),
       "server": {k: info[k] for k in ("model_id", "device", "dtype", "max_batch_tokens", "max_batch_size",
                                       "max_wait_ms", "batch_policy", "tokenization_workers", "version")},
       "server_args": server_args,
       "baseline": {"source": "the plan's CPU baseline", "qps": 108, "p95_ms": 26, "inputs_per_request": 1},
       "rows": rows}
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
json.dump(doc, open(out, "w"), indent=1)
print(f"| offered QPS | achieved QPS | P50 ms | P95 ms | P99 ms | max ms | errors |")
print(f"|---:|---:|---:|---:|---:|---:|---:|")
for x in rows:
    print(f"| {x['rate']} | {x['achieved_qps']:.1f} | {x['p50_ms']:.1f} | {x['p95_ms']:.1f} | {x['p99_ms']:.1f} "
          f"| {x['max_ms']:.1f} | {x['http_errors'] + x['network_errors']} |")
print(f"\n{cpu}, {os.cpu_count()} cores, commit {doc['commit']}, {doc['date']}; written to {out}", file=sys.stderr)
PY
