#!/usr/bin/env bash
# Run HERE: writes .carry/gpu-overlay.env, the container environment of deploy/k8s/overlays/gpu as
# kubectl 1.20 renders it (one NAME=VALUE per line), for bench/gpu_overlay_check.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .carry
.tools/kubectl kustomize deploy/k8s/overlays/gpu | .venv/bin/python -c '
import sys, yaml
(d,) = [d for d in yaml.safe_load_all(sys.stdin) if d["kind"] == "Deployment"]
for e in d["spec"]["template"]["spec"]["containers"][0]["env"]:
    print(e["name"] + "=" + e["value"])' >.carry/gpu-overlay.env
cat .carry/gpu-overlay.env
