"""The checkers the deploy/ tests share (test_deploy_monitoring, test_deploy_k8s,
test_deploy_container): promtool, checkov, and the metric names a running server exports."""
import json
import os
import re
import shutil
import subprocess

import yaml

from conftest import REPO

CHECKOV = os.path.join(REPO, ".tools", "venv", "bin", "checkov")


def promtool(*args):
    exe = shutil.which("promtool")
    assert exe, "promtool not found: bash scripts/setup installs Debian's prometheus package"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)


def assert_promql_parses(exprs, tmp_path, group):
    """promtool parses every expression of exprs (as recording rules of one group); its message
    names the one that does not."""
    rules = {"groups": [{"name": group, "rules": [
        {"record": f"{group}:expr_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    f = tmp_path / f"{group}-rules.yml"
    f.write_text(yaml.safe_dump(rules))
    r = promtool("check", "rules", str(f))
    assert r.returncode == 0, r.stdout + r.stderr


def checkov(framework, files):
    """checkov's findings on files: (failed [(check id, file)], passed count, skipped check ids).
    Fails the test on a file checkov could not parse."""
    assert os.access(CHECKOV, os.X_OK), "checkov not found: bash scripts/setup installs it"
    args = [CHECKOV, "--framework", framework, "--skip-download", "-o", "json"]
    for f in files:
        args += ["-f", str(f)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    reports = json.loads(r.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert not any(rep["summary"]["parsing_errors"] for rep in reports), r.stderr
    failed = [(c["check_id"], c["file_path"]) for rep in reports for c in rep["results"]["failed_checks"]]
    passed = sum(rep["summary"]["passed"] for rep in reports)
    skipped = {c["check_id"] for rep in reports for c in rep["results"]["skipped_checks"]}
    return failed, passed, skipped


def exported_metrics(metrics_text):
    """{series name: its metric's type} of a /metrics page; a histogram's _bucket, _sum and
    _count series included."""
    out = {}
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", metrics_text, re.M):
        out[name] = kind
        if kind == "histogram":
            out.update({name + s: kind for s in ("_bucket", "_sum", "_count")})
    return out


def containerfile_stages(path):
    """{stage name: its instructions} of a Containerfile's `FROM ... AS name` stages, with line
    continuations joined."""
    text = open(path).read().replace("\\\n", " ")
    return dict(re.findall(r"^FROM \S+ AS (\w+)\n(.*?)(?=^FROM |\Z)", text, re.M | re.S))
