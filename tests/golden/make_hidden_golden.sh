#!/usr/bin/env bash
# Regenerates tests/golden/hidden_all-MiniLM-L6-v2.{bin,meta.json} (last hidden states from HF
# transformers on torch, CPU) in the reference venv .venv-golden/. Offline: the model comes from
# models/all-MiniLM-L6-v2 (bash scripts/setup fetches it). CI never runs this; commit what it writes.
#
# Usage: bash tests/golden/make_hidden_golden.sh [--model DIR] [--out-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f models/all-MiniLM-L6-v2/model.safetensors ] || bash scripts/setup
PY=$(bash tests/golden/golden_venv.sh)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$PY" tests/golden/make_hidden_golden.py "$@"
