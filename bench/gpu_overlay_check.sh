#!/usr/bin/env bash
# Run ON the GPU machine (device tool), carrying .carry/ake.tar.gz, .carry/debs, .carry/tok and
# .carry/gpu-overlay.env (made here by `bash bench/gpu_carry.sh` and
# `bash bench/gpu_overlay_env.sh`): builds the committed tree, then starts `akidb-embed serve`
# with exactly the environment of deploy/k8s/overlays/gpu's container (AKE_DEVICE=cuda:0,
# AKE_DTYPE=fp16, the threads) on a synthesized MiniLM-L6 (the model path is the only override:
# the image's baked folder does not exist here), checks /health and that its vectors agree with
# the CPU engine's (cosine > 0.999, FP16 against FP32), and SIGTERM drains it to exit 0.
# Writes $OUT/gpu-overlay.log.
set -euo pipefail
log=${OUT:-/tmp}/gpu-overlay.log
exec > >(tee "$log") 2>&1
here=$PWD
mkdir -p /tmp/ake && tar -xzf .carry/ake.tar.gz -C /tmp/ake
AKE_DEBS=$here/.carry/debs; source "$here/bench/gpu_env.sh"
cd /tmp/ake
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
make -j"$(nproc)" build/akidb-embed >/tmp/build.log 2>&1 || { tail -40 /tmp/build.log; exit 1; }
mkdir -p /tmp/tok-model && cp -r "$here/.carry/tok/." /tmp/tok-model/
build/akidb-embed synth --arch minilm-l6 --seed 7 --out /tmp/synth --tokenizer-from /tmp/tok-model
echo "environment of the gpu overlay's container:"; cat "$here/.carry/gpu-overlay.env"
mapfile -t overlay_env <"$here/.carry/gpu-overlay.env"
env -i PATH="$PATH" LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}" "${overlay_env[@]}" AKE_PORT=18080 \
    build/akidb-embed serve --model synth=/tmp/synth >/tmp/serve.log 2>&1 &
pid=$!
# HTTP through python3's urllib: the carried Debian libraries (LD_LIBRARY_PATH) break the image's curl
http() { env -u LD_LIBRARY_PATH python3 -c 'import sys, urllib.request as u
body = sys.argv[2].encode() if len(sys.argv) > 2 else None
r = u.urlopen(u.Request("http://127.0.0.1:18080" + sys.argv[1], body, {"content-type": "application/json"}), timeout=30)
sys.stdout.write(r.read().decode())' "$@"; }
for _ in $(seq 600); do http /health >/dev/null 2>&1 && break; sleep 0.1; done
http /health; echo
head -5 /tmp/serve.log
http /info | python3 -c 'import json,sys; i=json.load(sys.stdin); print("info:", i)'
texts='["the gpu overlay serves", "a second sentence, somewhat longer than the first one"]'
http /embed "{\"inputs\": $texts}" >/tmp/gpu.json
python3 -c "import json; [print(json.dumps(t)) for t in json.loads('$texts')]" |
    build/akidb-embed embed --model /tmp/synth --jsonl --device cpu >/tmp/cpu.jsonl
python3 - <<'PY'
import json, math
gpu = json.load(open("/tmp/gpu.json"))
cpu = [json.loads(l) for l in open("/tmp/cpu.jsonl")]
for g, c in zip(gpu, cpu):
    cos = sum(a * b for a, b in zip(g, c)) / math.sqrt(sum(a * a for a in g) * sum(b * b for b in c))
    print(f"cosine gpu (overlay env) vs cpu fp32: {cos:.6f}")
    assert cos > 0.999, cos
PY
kill -TERM $pid; wait $pid; echo "serve exit code: $?"
grep -i "cuda\|SIGTERM" /tmp/serve.log | head -5
echo "GPU OVERLAY CHECK: PASS"
