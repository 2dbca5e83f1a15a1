#!/usr/bin/env bash
# Creates or updates .venv-golden/, the Python venv of the reference implementations
# (torch, sentence-transformers, transformers, onnx, onnxruntime). It is separate from .venv
# because CI never needs torch: only tests/golden/make_embedding_golden.sh and
# bench/cpu_peers.sh use it. Idempotent: does nothing when the stamp matches the pinned list.
#
# torch comes from PyPI, whose Linux wheel pulls the CUDA runtime packages (a few GB) even though
# only the CPU is used here: no CPU-only torch wheel is published on PyPI, and the PyTorch wheel
# index is not reachable from the development machines.
#
# Usage: bash tests/golden/golden_venv.sh      (from anywhere; prints the venv's python path)
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=.venv-golden
PY_PACKAGES=(torch==2.15.0 sentence-transformers==6.2.0 transformers==5.24.0
             numpy==2.1.3 onnx==1.23.2 onnxscript==0.7.2 onnxruntime==1.32.0)

stamp=$VENV/.akidb-requirements
want="${PY_PACKAGES[*]}"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    printf 'golden_venv: installing into %s: %s\n' "$VENV" "$want" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
    printf '%s' "$want" >"$stamp"
fi
printf '%s\n' "$PWD/$VENV/bin/python"
