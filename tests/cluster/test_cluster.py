"""make test-cluster: three akidb-embed replicas behind HAProxy (Debian 2.6) and a real Prometheus
(Debian 2.42) with the shipped scrape config and alert rules, on this machine (issue 12).

1. 60 s of open-loop load through HAProxy (loadgen) while one replica is killed with SIGKILL,
   another is sent SIGTERM (it drains), and the killed one is started again (it rejoins): zero
   failed requests. HAProxy replays a request that got no answer (the replica died under it:
   `empty-response`, `junk-response`), could not be sent (`conn-failure`: the replica is gone or
   has closed its listening socket while draining) or was answered 503 (a draining replica
   refuses requests that arrive on a kept-alive connection), on another replica (`option
   redispatch`). That is safe because an embedding request has no side effect: answering it
   twice gives the same vectors, and the replica that died or refused kept nothing of it.
2. Prometheus scrapes the replicas (deploy/prometheus/prometheus.yml, with the scrape and rule
   intervals shortened to 2 s for the test) and every expression of the Grafana dashboard and of
   the alert rules is evaluated through its HTTP API: each returns a series (panels whose
   description starts with GPU-only or Experiment-only excepted; an alert's expression is
   evaluated without its threshold), and the request-rate panel is within 10 % of loadgen's
   rate. Flagger's two checks (deploy/k8s/overlays/canary-flagger) and the autoscaler's metric
   (as prometheus-adapter queries it) are evaluated too, with the replicas labelled as the
   Prometheus Operator labels a Flagger canary's and its primary's pods.
3. Overload: one replica with few admission slots gets more concurrent requests than it admits
   for over a minute: it answers 429, and AkidbEmbedQueueSaturated is seen firing.
Every process, port and folder is the test's own (tmp_path) and gone after it.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest
import requests
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AKE_BIN = os.path.join(REPO, os.environ.get("AKE_BIN", "build/akidb-embed"))
MODEL = os.path.join(REPO, "models", "all-MiniLM-L6-v2")
LOAD_RATE, LOAD_SECONDS = 40, 60
STEP = 2  # Prometheus scrape and rule interval of the test, seconds
PODS = ["akidb-embed-primary-7d9f8b6c5-x2k4q", "akidb-embed-6c8b7d9f4-m7p3z", "akidb-embed-primary-7d9f8b6c5-r8w1n"]
FLAGGER_TEMPLATES = os.path.join(REPO, "deploy", "k8s", "overlays", "canary-flagger", "metrictemplates.yaml")
ADAPTER_VALUES = os.path.join(REPO, "deploy", "k8s", "prometheus-adapter", "values.yaml")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, pred, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if pred():
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


class Replica:
    def __init__(self, tmp, name, port, *extra):
        self.name, self.port, self.extra, self.tmp = name, port, extra, tmp
        self.proc = None
        self.start()

    def start(self):
        log = open(os.path.join(self.tmp, f"{self.name}.log"), "ab")
        cmd = [AKE_BIN, "serve", "--model", MODEL, "--host", "127.0.0.1", "--port", str(self.port),
               "--threads", "1", *self.extra]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp)
        wait_for(f"{self.name} /health", lambda: requests.get(
            f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200, 60)

    def stop(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)


@pytest.fixture
def cluster(tmp_path):
    for tool in ("haproxy", "prometheus"):
        assert shutil.which(tool), f"{tool} not found: bash scripts/setup installs it"
    tmp = str(tmp_path)
    procs, replicas = [], []
    try:
        ports = [free_port() for _ in range(3)]
        replicas = [Replica(tmp, f"r{i + 1}", p) for i, p in enumerate(ports)]
        lb_port, prom_port = free_port(), free_port()
        cfg = f"""global
    maxconn 2000
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response junk-response 503
frontend embed
    bind 127.0.0.1:{lb_port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    default-server inter 300ms fall 2 rise 2
""" + "".join(f"    server {r.name} 127.0.0.1:{r.port} check\n" for r in replicas)
        with open(os.path.join(tmp, "haproxy.cfg"), "w") as f:
            f.write(cfg)
        procs.append(subprocess.Popen(["haproxy", "-db", "-f", os.path.join(tmp, "haproxy.cfg")],
                                      stdout=open(os.path.join(tmp, "haproxy.log"), "wb"), stderr=subprocess.STDOUT))
        # the shipped Prometheus files, the intervals shortened, the replicas as file targets
        prom = os.path.join(tmp, "prometheus")
        shutil.copytree(os.path.join(REPO, "deploy", "prometheus"), prom)
        conf = yaml.safe_load(open(os.path.join(prom, "prometheus.yml")))
        conf["global"].update(scrape_interval=f"{STEP}s", evaluation_interval=f"{STEP}s")
        yaml.safe_dump(conf, open(os.path.join(prom, "prometheus.yml"), "w"))
        os.unlink(os.path.join(prom, "targets", "example.json"))
        # labelled as the Prometheus Operator labels pods, r2 as a Flagger canary's pod and the
        # others as its primary's, so that Flagger's queries can be evaluated here too
        json.dump([{"targets": [f"127.0.0.1:{r.port}"], "labels": {"namespace": "akidb-embed", "pod": pod}}
                   for r, pod in zip(replicas, PODS)],
                  open(os.path.join(prom, "targets", "replicas.json"), "w"))
        procs.append(subprocess.Popen(
            ["prometheus", f"--config.file={prom}/prometheus.yml", f"--storage.tsdb.path={tmp}/tsdb",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=open(os.path.join(tmp, "prometheus.log"), "wb"), stderr=subprocess.STDOUT))
        lb, api = f"http://127.0.0.1:{lb_port}", f"http://127.0.0.1:{prom_port}/api/v1"
        wait_for("haproxy", lambda: requests.post(lb + "/embed", json={"inputs": "x"}, timeout=5).ok, 30)
        wait_for("prometheus targets up", lambda: len([
            t for t in requests.get(api + "/targets", timeout=5).json()["data"]["activeTargets"]
            if t["health"] == "up"]) == 3, 60)
        yield {"replicas": replicas, "lb": lb, "api": api, "tmp": tmp}
    finally:
        for p in procs:
            p.terminate()
        for r in replicas:
            r.stop()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def query(api, expr):
    r = requests.get(api + "/query", params={"query": expr}, timeout=10).json()
    assert r["status"] == "success", (expr, r)
    return r["data"]["result"]


def without_threshold(expr):
    """An alert's expression with its final comparison removed: its series exist under load even
    when the alert is quiet."""
    return re.sub(r"\s*(>|==|<)\s*[0-9.]+\s*$", "", expr.strip())


def test_replicas_fail_and_drain_without_a_failed_request_and_prometheus_sees_them(cluster):
    replicas, lb, api, tmp = cluster["replicas"], cluster["lb"], cluster["api"], cluster["tmp"]
    out = os.path.join(tmp, "load.json")
    t0 = time.time()  # loadgen measures [t0 + 1, t0 + 1 + LOAD_SECONDS] (after its 1 s warm-up)
    load = subprocess.Popen([AKE_BIN, "loadgen", "--url", lb, "--rate", str(LOAD_RATE), "--duration",
                             str(LOAD_SECONDS), "--threads", "2", "--json", out],
                            stdout=open(os.path.join(tmp, "loadgen.log"), "wb"), stderr=subprocess.STDOUT)
    # a few requests the server must refuse (400), so the errors panel has a series
    for _ in range(5):
        assert requests.post(lb + "/embed", data="{", timeout=10).status_code == 400
    time.sleep(12)
    replicas[0].stop(signal.SIGKILL)       # dies under load
    time.sleep(12)
    replicas[1].stop(signal.SIGTERM)       # drains and exits
    assert replicas[1].proc.returncode == 0, open(os.path.join(tmp, "r2.log")).read()[-2000:]
    time.sleep(8)
    replicas[0].start()                    # rejoins
    wait_for("r1 back in haproxy", lambda: requests.get(
        f"http://127.0.0.1:{replicas[0].port}/metrics", timeout=2).text.count("ake_requests_total{endpoint=\"embed\"") > 0,
        LOAD_SECONDS)
    assert load.wait(timeout=LOAD_SECONDS + 60) == 0, open(os.path.join(tmp, "loadgen.log")).read()
    res = json.load(open(out))
    res = res[-1] if isinstance(res, list) else res
    assert res["http_errors"] == 0 and res["network_errors"] == 0, res
    assert res["ok"] >= 0.95 * LOAD_RATE * LOAD_SECONDS, res
    replicas[1].start()

    # every expression of the dashboard and of the alerts, against the live Prometheus
    time.sleep(3 * STEP)
    dash = json.load(open(os.path.join(REPO, "deploy", "grafana", "akidb-embed.json")))
    empty = []
    for p in dash["panels"]:
        if p["description"].startswith(("GPU-only", "Experiment-only")):
            continue
        for t in p["targets"]:
            e = t["expr"].replace("$instance", ".*").replace("$model", ".*").replace("$__rate_interval", "1m")
            # the 400s and the load ended up to a minute ago: look back over the whole test
            if not query(api, e) and not query(api, e.replace("[1m]", "[5m]")):
                empty.append((p["title"], e))
    rules = yaml.safe_load(open(os.path.join(REPO, "deploy", "prometheus", "rules", "akidb-embed.yml")))
    for g in rules["groups"]:
        for r in g["rules"]:
            e = without_threshold(r["expr"]).replace("[1m]", "[5m]")
            if not query(api, e):
                empty.append((r["alert"], e))
    assert not empty, f"expressions with no series: {empty}"
    # Flagger's two checks (deploy/k8s canary-flagger) as Flagger fills them in: one number each
    for t in yaml.safe_load_all(open(FLAGGER_TEMPLATES)):
        e = t["spec"]["query"].replace("{{ namespace }}", "akidb-embed").replace("{{ target }}", "akidb-embed")
        (v,) = query(api, e.replace("{{ interval }}", "5m"))
        value = float(v["value"][1])
        assert -1 <= value <= 1, (t["metadata"]["name"], value)  # finite: both tracks have requests
    # the autoscaler's metric as prometheus-adapter asks for it: one series per pod
    rule = yaml.safe_load(open(ADAPTER_VALUES))["rules"]["custom"][0]
    e = rule["metricsQuery"].replace("<<.Series>>", rule["seriesQuery"].split("{")[0]).replace(
        "<<.LabelMatchers>>", 'namespace="akidb-embed",pod=~"akidb-embed-.*"').replace("<<.GroupBy>>", "pod")
    assert sorted(x["metric"]["pod"] for x in query(api, e)) == sorted(PODS)
    # the request-rate panel (its own expression) against loadgen's rate, inside the load's window
    panel = next(p for p in dash["panels"] if p["title"].startswith("Requests per second by endpoint"))
    e = panel["targets"][0]["expr"].replace("$instance", ".*").replace("$__rate_interval", "45s")
    r = requests.get(api + "/query", params={"query": e, "time": t0 + LOAD_SECONDS - 2}, timeout=10).json()
    panel_rate = sum(float(x["value"][1]) for x in r["data"]["result"] if x["metric"].get("endpoint") == "embed")
    assert abs(panel_rate - res["achieved_qps"]) <= 0.1 * res["achieved_qps"], (panel_rate, res["achieved_qps"])


def test_overload_fires_the_saturation_alert(cluster):
    replicas, api = cluster["replicas"], cluster["api"]
    # one replica admits 2 requests at once; 16 concurrent clients keep it over that
    replicas[2].stop(signal.SIGTERM)
    replicas[2].extra = ("--max-concurrent-requests", "2")
    replicas[2].start()
    url = f"http://127.0.0.1:{replicas[2].port}/embed"
    stop, refused = threading.Event(), []

    def client():
        s = requests.Session()
        while not stop.is_set():
            r = s.post(url, json={"inputs": ["an overloaded replica refuses what it cannot queue"] * 8}, timeout=30)
            if r.status_code == 429:
                refused.append(1)

    def firing():
        alerts = requests.get(api + "/alerts", timeout=5).json()["data"]["alerts"]
        return any(a["labels"]["alertname"] == "AkidbEmbedQueueSaturated" and a["state"] == "firing"
                   and a["labels"]["instance"] == f"127.0.0.1:{replicas[2].port}" for a in alerts)

    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    try:
        wait_for("AkidbEmbedQueueSaturated firing", firing, 150)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert refused
