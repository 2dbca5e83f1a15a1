"""`akidb-embed ab decide` on hand-made snapshots whose answer is known: the Mann-Whitney U, its
one-sided p-value and the percentiles equal scipy's and numpy's on the same samples, and each outcome
of the rule (serve/rollout.h) comes out where it should. Bad files are refused with a message."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / os.environ.get("AKE_BIN", "build/akidb-embed")

PLAN = {"name": "t", "model": "m", "arms": [{"version": "1", "role": "control"}, {"version": "2", "role": "canary"}],
        "shadow_fraction": 0.05,
        "rollout": {"steps": [5, 25, 50, 100], "min_hold_s": 60, "min_samples": 1000, "min_canary_samples": 100,
                    "min_agreement_samples": 50}}  # the plan's gates: 0.6, 0.05, 0.99


def snapshot(control_ms, canary_ms, step=0, held_s=61.0, errors=(0, 0), agreement=None):
    return {"experiment": "t", "step": step, "held_s": held_s, "arms": [
        {"version": "1", "role": "control", "requests": len(control_ms), "errors": errors[0],
         "latency_ms": [float(x) for x in control_ms], "agreement": []},
        {"version": "2", "role": "canary", "requests": len(canary_ms), "errors": errors[1],
         "latency_ms": [float(x) for x in canary_ms],
         "agreement": [0.999] * 80 if agreement is None else agreement}]}


def decide(tmp_path, snap, plan=PLAN):
    (tmp_path / "s.json").write_text(json.dumps(snap))
    (tmp_path / "p.json").write_text(json.dumps(plan))
    r = subprocess.run([BIN, "ab", "decide", "--metrics", tmp_path / "s.json", "--plan", tmp_path / "p.json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("seed", range(4))
def test_statistics_equal_scipy(tmp_path, seed):
    rng = np.random.default_rng(seed)
    control = rng.lognormal(np.log(26), 0.3, 1500)
    canary = rng.lognormal(np.log(26 * (0.3 + 0.3 * seed)), 0.3, 150)
    if seed == 3:  # ties: latencies rounded to whole milliseconds
        control, canary = np.round(control), np.round(canary)
    d = decide(tmp_path, snapshot(control, canary, step=2))  # 50 %: equal load, the full latency gate
    u, p = scipy.stats.mannwhitneyu(canary, control, alternative="less", method="asymptotic")
    assert d["mann_whitney_u"] == pytest.approx(u, rel=1e-12)
    assert d["p_value"] == pytest.approx(p, rel=1e-9, abs=1e-300)
    assert d["effect_size"] == pytest.approx(1 - u / (len(canary) * len(control)), rel=1e-12)
    for q, k in ((50, "p50"), (95, "p95")):
        assert d[f"{k}_control_ms"] == pytest.approx(np.percentile(control, q), rel=1e-12)
        assert d[f"{k}_canary_ms"] == pytest.approx(np.percentile(canary, q), rel=1e-12)
    improvement = 1 - np.percentile(canary, 95) / np.percentile(control, 95)
    assert d["latency_improvement"] == pytest.approx(improvement, rel=1e-9)
    # the plan's rule: more than 60 % faster at P95 promotes, less rolls back
    assert d["outcome"] == ("promote" if improvement >= 0.6 else "rollback"), d


def test_each_outcome(tmp_path):
    rng = np.random.default_rng(7)
    control, fast = rng.normal(26, 2, 1200), rng.normal(8, 1, 200)
    assert decide(tmp_path, snapshot(control, fast))["outcome"] == "next_step"
    assert decide(tmp_path, snapshot(control, fast, step=2))["outcome"] == "promote"
    d = decide(tmp_path, snapshot(control, fast, held_s=30))
    assert d["outcome"] == "wait" and "30.0 of 60.0 s held" in d["reason"]
    d = decide(tmp_path, snapshot(control, fast[:50]))
    assert d["outcome"] == "wait" and "canary requests" in d["reason"]
    d = decide(tmp_path, snapshot(control, fast, errors=(12, 14)))  # 7 % against 1 %
    assert d["outcome"] == "rollback" and "error rate" in d["reason"]
    assert d["error_rate_increase"] == pytest.approx(14 / 200 - 12 / 1200)
    d = decide(tmp_path, snapshot(control, fast, agreement=[0.41] * 80))
    assert d["outcome"] == "rollback" and "agreement" in d["reason"] and d["agreement_mean"] == pytest.approx(0.41)
    # 8 % faster: enough below equal load (only a slower canary rolls back there), not at 50 %
    close = rng.normal(24, 2, 200)
    assert decide(tmp_path, snapshot(control, close))["outcome"] == "next_step"
    d = decide(tmp_path, snapshot(control, close, step=2))
    assert d["outcome"] == "rollback" and "P95 latency" in d["reason"]
    d = decide(tmp_path, snapshot(control, rng.normal(30, 2, 200)))
    assert d["outcome"] == "rollback" and "slower even with the shorter queue" in d["reason"]


def test_bad_files_refused(tmp_path):
    (tmp_path / "s.json").write_text('{"arms": [}')
    r = subprocess.run([BIN, "ab", "decide", "--metrics", tmp_path / "s.json", "--plan", tmp_path / "s.json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "s.json:1:" in r.stderr
    (tmp_path / "p.json").write_text(json.dumps({**PLAN, "rollout": {"steps": [50, 5]}}))
    (tmp_path / "s.json").write_text(json.dumps(snapshot([1], [1])))
    r = subprocess.run([BIN, "ab", "decide", "--metrics", tmp_path / "s.json", "--plan", tmp_path / "p.json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "increasing" in r.stderr
    r = subprocess.run([BIN, "ab", "decide", "--metrics", tmp_path / "s.json"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "give --plan" in r.stderr
    (tmp_path / "p.json").write_text(json.dumps({**PLAN, "arms": [{"version": "1", "role": "control"},
                                                                  {"version": "7", "role": "canary"}]}))
    r = subprocess.run([BIN, "ab", "decide", "--metrics", tmp_path / "s.json", "--plan", tmp_path / "p.json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "canary is version 2, the plan's is 7" in r.stderr
    (tmp_path / "s.json").write_text(json.dumps(snapshot([-1.0], [1])))
    r = subprocess.run([BIN, "ab", "decide", "--metrics", tmp_path / "s.json", "--plan", tmp_path / "p.json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "latency_ms`[0] must be a number in [0," in r.stderr
    r = subprocess.run([BIN, "ab", "decide", "--metrics", tmp_path], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "not a regular file" in r.stderr
