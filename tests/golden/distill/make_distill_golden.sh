#!/usr/bin/env bash
# Regenerates tests/golden/distill/ (teacher/, steps.json, grads0_*, student_final_mse) with torch in .venv-golden; see make_distill_golden.py. CI never runs this.
set -euo pipefail; cd "$(dirname "$0")/../../.."; export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1; exec "$(bash tests/golden/golden_venv.sh)" tests/golden/distill/make_distill_golden.py "$@"
