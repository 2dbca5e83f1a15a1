"""The monitoring files we ship (deploy/prometheus, deploy/grafana) against the real tools and the
real server: promtool (Debian `prometheus`, installed by scripts/setup) checks the scrape config
and the alert rules and runs their unit tests (deploy/prometheus/rules/akidb-embed.test.yml:
each alert fires on the series that should fire it, and not before); every PromQL expression of
the Grafana dashboard parses; and every ake_* metric any of them names is one the server exports
(a renamed metric would leave a panel or an alert silently empty)."""
import json
import os
import re

import pytest
import requests
import yaml

from conftest import REPO
from deploy_tools import assert_promql_parses, exported_metrics, promtool

PROM = os.path.join(REPO, "deploy", "prometheus")
RULES = os.path.join(PROM, "rules", "akidb-embed.yml")
DASHBOARD = os.path.join(REPO, "deploy", "grafana", "akidb-embed.json")
# Grafana's variables, as the dashboard's "All" choice and a typical interval expand them
GRAFANA_VARS = {"$instance": ".*", "$model": ".*", "$__rate_interval": "1m"}


def dashboard_exprs():
    d = json.load(open(DASHBOARD))
    out = []
    for p in d["panels"]:
        for t in p["targets"]:
            e = t["expr"]
            for k, v in GRAFANA_VARS.items():
                e = e.replace(k, v)
            out.append((p["title"], t["refId"], e))
    return out


def rule_exprs():
    return [r["expr"] for g in yaml.safe_load(open(RULES))["groups"] for r in g["rules"]]


def test_promtool_checks_config_rules_and_their_unit_tests():
    r = promtool("check", "config", os.path.join(PROM, "prometheus.yml"))
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    r = promtool("check", "rules", RULES)
    assert r.returncode == 0 and "SUCCESS: 5 rules found" in r.stdout, r.stdout + r.stderr
    r = promtool("test", "rules", os.path.join(PROM, "rules", "akidb-embed.test.yml"))
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def test_every_dashboard_expression_parses(tmp_path):
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    assert_promql_parses([e for _, _, e in exprs], tmp_path, "dashboard")


def test_every_metric_named_is_exported(server):
    requests.post(server.url + "/embed", json={"inputs": ["monitoring"]}, timeout=30).raise_for_status()
    exported = set(exported_metrics(requests.get(server.url + "/metrics", timeout=30).text))
    named = set()
    for e in [e for _, _, e in dashboard_exprs()] + rule_exprs():
        named.update(re.findall(r"\bake_[a-z0-9_]+", e))
    assert len(named) >= 15
    missing = sorted(named - exported)
    assert not missing, f"named by the dashboard or the alerts but not exported: {missing}"


@pytest.mark.parametrize("what", ["panels", "alerts"])
def test_descriptions_say_what_is_empty_when(what):
    """Panels that are empty on a CPU-only or experiment-less deployment say so (the cluster
    test excepts exactly those); every alert has a summary."""
    if what == "panels":
        for p in json.load(open(DASHBOARD))["panels"]:
            if any("cuda" in t["expr"] for t in p["targets"]):
                assert p["description"].startswith("GPU-only"), p["title"]
            if any("ake_experiment_" in t["expr"] for t in p["targets"]):
                assert p["description"].startswith("Experiment-only"), p["title"]
    else:
        for g in yaml.safe_load(open(RULES))["groups"]:
            for r in g["rules"]:
                assert r["annotations"]["summary"] and r["labels"]["severity"] in ("page", "ticket"), r["alert"]
