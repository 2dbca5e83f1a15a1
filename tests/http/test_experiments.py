"""A/B experiments inside the server (src/serve/router.h, src/serve/rollout.h): the traffic split and
its stickiness, weights changed at run time, restarts, a real INT8 canary promoted through every step
and a disagreeing canary rolled back at the first gate, both under 64 clients without a failed
request, and the same decision offline (`akidb-embed ab decide`, checked against scipy).

The models are real: version 1 is all-MiniLM-L6-v2 in FP32, version 2 the same folder run as dynamic
INT8 (akidb-model.json {"dtype": "int8"}), version 3 paraphrase-MiniLM-L3-v2 imported from its ONNX
export, posing as a new version of all-MiniLM-L6-v2. Holds, sample counts and the latency threshold
are small so that a step takes seconds; the plan's defaults are tested in tests/unit/test_rollout.c
and the README gives what a real INT8 canary measured against them."""
import http.client
import json
import os
import random
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
import requests
import scipy.stats

from conftest import AKE_BIN, MODEL_DIR, ON_GPU, REPO, SANITIZED, Server

pytestmark = pytest.mark.skipif(ON_GPU, reason="CPU INT8 canary")
heavy = pytest.mark.skipif(SANITIZED, reason="timing-heavy; test_experiment_smoke covers the sanitized build")

TEXTS = ["hello", "The quick brown fox jumps over the lazy dog.", "vectors for every text", "embeddings at scale",
         "a canary answers five percent", "zero failed requests", "Ünïcödé àccents", "promote or roll back"]


@pytest.fixture(scope="module")
def l3_dir(tmp_path_factory):
    """The real paraphrase-MiniLM-L3-v2, imported from its ONNX export as scripts/models does."""
    out = tmp_path_factory.mktemp("l3") / "paraphrase-MiniLM-L3-v2"
    r = subprocess.run([AKE_BIN, "import-onnx", "models/paraphrase-MiniLM-L3-v2.onnx", "--tokenizer-from", MODEL_DIR,
                        "--pooling", "mean", "--max-seq-length", "128", "--out", str(out)], capture_output=True,
                       timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr.decode()
    return str(out)


def make_repo(tmp_path, l3_dir=None):
    """repo/minilm/1 (FP32), 2 (the same weights as INT8) and optionally 3 (the 3-layer model). The
    policy loads only version 1 at start: an experiment loads its arms."""
    m = tmp_path / "repo" / "minilm"
    m.mkdir(parents=True)
    os.symlink(MODEL_DIR, m / "1")
    (m / "2").mkdir()
    for f in os.listdir(MODEL_DIR):
        os.symlink(os.path.join(MODEL_DIR, f), m / "2" / f)
    (m / "2" / "akidb-model.json").write_text('{"dtype": "int8"}')
    if l3_dir:
        os.symlink(l3_dir, m / "3")
    (m / "akidb-model.json").write_text('{"version_policy": {"specific": ["1"]}}')
    return tmp_path / "repo"


def plan(name, control, canary, rollout=None, **extra):
    p = {"name": name, "model": "minilm",
         "arms": [{"version": control, "role": "control", "weight": 95},
                  {"version": canary, "role": "canary", "weight": 5}], **extra}
    if rollout is not None:
        p["rollout"] = rollout
    return p


def admin(srv, method, path, body=None):
    return requests.request(method, srv.admin_url + path, json=body, timeout=120)


def experiment(srv, name):
    r = admin(srv, "GET", f"/admin/experiments/{name}")
    assert r.status_code == 200, r.text
    return r.json()


def versions(srv):
    m = requests.get(srv.url + "/v1/models", timeout=10).json()["data"][0]
    return m["serving_version"], {v["version"]: v["state"] for v in m["versions"]}


class Load:
    """64 clients sending /v1/embeddings (1-3 texts, a random user each) until stopped; every
    answer is checked, every failure kept."""

    def __init__(self, srv, clients=64):
        self.srv, self.stop_ev = srv, threading.Event()
        self.failures, self.by_version, self.lock = [], {}, threading.Lock()
        self.threads = [threading.Thread(target=self._client, args=(i,)) for i in range(clients)]
        for t in self.threads:
            t.start()

    def _client(self, seed):
        rng = random.Random(seed)
        with requests.Session() as s:
            while not self.stop_ev.is_set():
                texts = rng.sample(TEXTS, rng.randint(1, 3))
                try:
                    r = s.post(self.srv.url + "/v1/embeddings", timeout=60,
                               json={"input": texts, "model": "minilm", "user": f"u{rng.randrange(10**9)}"})
                    assert r.status_code == 200, f"{r.status_code} {r.text[:200]}"
                    assert len(r.json()["data"]) == len(texts)
                    v = r.headers["X-Model-Version"]
                    with self.lock:
                        self.by_version[v] = self.by_version.get(v, 0) + 1
                except Exception as e:  # noqa: BLE001 - every failure is collected and reported
                    with self.lock:
                        self.failures.append(repr(e)[:300])

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join()
        assert not self.failures, f"{len(self.failures)} failed requests, first: {self.failures[:3]}"
        return self.by_version


def wait_status(srv, name, status, timeout):
    deadline = time.time() + timeout
    while True:
        x = experiment(srv, name)
        if x["status"] == status:
            return x
        assert x["status"] == "running" and time.time() < deadline, json.dumps(x)[:3000]
        time.sleep(0.2)


@heavy
def test_split_sticky_weights_restart_and_rollback(make_server, tmp_path):
    repo = make_repo(tmp_path)
    srv = Server(tmp_path / "killed.log", "--model-repository", str(repo), "--admin-port", "0", "--max-wait-ms", "2")
    r = admin(srv, "POST", "/admin/experiments", plan("split", "1", "2"))
    assert r.status_code == 201, r.text
    assert versions(srv) == ("1", {"1": "ready", "2": "ready"})
    # 10,000 users drawn with a fixed seed, one request each, at 95/5: the canary's share lies in the
    # binomial 99.9 % interval [428, 572]; the hash is fixed, so this cannot fail by chance
    rng = random.Random(20261129)
    users = [f"user-{rng.randrange(10**12)}" for _ in range(10000)]
    arm_of = {}

    def tokenize(batch):  # http.client: a third of requests' time per call
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        for u in batch:
            c.request("POST", "/tokenize", b'{"inputs":"hi","model":"minilm"}',
                      {"X-User": u, "Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            assert r.status == 200
            arm_of[u] = r.getheader("X-Model-Version")
        c.close()

    threads = [threading.Thread(target=tokenize, args=(users[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    canary = sum(v == "2" for v in arm_of.values())
    assert 428 <= canary <= 572, canary
    # sticky: the same users get the same arm again, on /embed and through the OpenAI `user` field too
    with requests.Session() as s:
        for u in users[:150]:
            r = s.post(srv.url + "/embed", json={"inputs": "hello", "model": "minilm"}, headers={"X-User": u})
            assert r.headers["X-Model-Version"] == arm_of[u], u
        for u in users[150:300]:
            r = s.post(srv.url + "/v1/embeddings", json={"input": "hello", "user": u, "model": "minilm"})
            assert r.headers["X-Model-Version"] == arm_of[u], u
        # a version named explicitly is outside the experiment
        r = s.post(srv.url + "/v1/embeddings", json={"input": "hello", "user": users[0], "model": "minilm@2"})
        assert r.headers["X-Model-Version"] == "2"
    # weights changed at run time: a request already routed keeps its arm, new ones follow
    slow_user = next(u for u in users if arm_of[u] == "1")
    slow = {}

    def slow_request():
        r = requests.post(srv.url + "/embed", json={"inputs": [f"text number {i}" * 12 for i in range(256)],
                                                    "model": "minilm"}, headers={"X-User": slow_user}, timeout=120)
        slow["version"], slow["status"] = r.headers.get("X-Model-Version"), r.status_code

    t = threading.Thread(target=slow_request)
    t.start()
    time.sleep(0.3)
    r = admin(srv, "PATCH", "/admin/experiments/split", {"arms": [{"version": "1", "weight": 0},
                                                                   {"version": "2", "weight": 100}]})
    assert r.status_code == 200, r.text
    r = requests.post(srv.url + "/embed", json={"inputs": "hi", "model": "minilm"}, headers={"X-User": slow_user})
    assert r.headers["X-Model-Version"] == "2"
    t.join()
    assert slow == {"version": "1", "status": 200}
    # 50/50, then the canary users at 5 % are still canary users (its buckets grow from one end)
    r = admin(srv, "PATCH", "/admin/experiments/split", {"arms": [{"version": "1", "weight": 50},
                                                                   {"version": "2", "weight": 50}]})
    assert r.status_code == 200
    with requests.Session() as s:
        for u in [u for u in users[:2000] if arm_of[u] == "2"]:
            r = s.post(srv.url + "/tokenize", json={"inputs": "hi"}, headers={"X-User": u})
            assert r.headers["X-Model-Version"] == "2"  # minilm is the default model: routed too
    # the arms are held: unloading one is refused while the experiment runs
    r = requests.post(srv.admin_url + "/admin/models/minilm/unload", json={"version": "2"})
    assert r.status_code == 409 and "experiment" in r.json()["error"]
    # kill -9 and restart: the experiment resumes with its weights from the state file
    assert srv.stop(signal.SIGKILL) == -signal.SIGKILL
    srv = make_server("--model-repository", str(repo), "--admin-port", "0", "--max-wait-ms", "2")
    x = experiment(srv, "split")
    assert x["status"] == "running" and [a["weight"] for a in x["arms"]] == [50, 50], x
    assert [e["event"] for e in x["log"]] == ["start", "weights", "weights", "resumed"]
    # rollback at once, under 64 clients: no request fails, new requests all go to control
    load = Load(srv)
    time.sleep(2)
    r = admin(srv, "POST", "/admin/experiments/split/rollback")
    assert r.status_code == 200 and r.json()["status"] == "rolled_back", r.text
    after = {}
    with requests.Session() as s:
        for i in range(50):
            v = s.post(srv.url + "/embed", json={"inputs": "x"}, headers={"X-User": f"after-{i}"}).headers[
                "X-Model-Version"]
            after[v] = after.get(v, 0) + 1
    counts = load.stop()
    assert after == {"1": 50}
    assert counts.get("1", 0) > 20 and counts.get("2", 0) > 20, counts
    deadline = time.time() + 30  # the canary drains and is unloaded; it stays off (skipped)
    while versions(srv) != ("1", {"1": "ready", "2": "skipped"}):
        assert time.time() < deadline, versions(srv)
        time.sleep(0.1)
    assert admin(srv, "POST", "/admin/experiments/split/rollback").status_code == 409


def snapshot_checks(srv, name, tmp_path):
    """The snapshot's decision equals `ab decide` on the same file, and its U and p equal scipy's."""
    r = admin(srv, "GET", f"/admin/experiments/{name}/snapshot")
    assert r.status_code == 200, r.text
    snap = r.json()
    path = tmp_path / f"{name}-snapshot.json"
    path.write_text(r.text)
    out = subprocess.run([AKE_BIN, "ab", "decide", "--metrics", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == snap["decision"]
    arms = {a["role"]: a for a in snap["arms"]}
    if arms["canary"]["latency_ms"] and arms["control"]["latency_ms"]:
        u, p = scipy.stats.mannwhitneyu(arms["canary"]["latency_ms"], arms["control"]["latency_ms"],
                                        alternative="less", method="asymptotic")
        assert snap["decision"]["mann_whitney_u"] == pytest.approx(u, rel=1e-12)
        assert snap["decision"]["p_value"] == pytest.approx(p, rel=1e-9, abs=1e-300)
        assert snap["decision"]["p95_canary_ms"] == pytest.approx(np.percentile(arms["canary"]["latency_ms"], 95))
    return snap


# Short steps: 1.5 s held, 300 requests (40 of them the canary's), 40 shadow comparisons.
FAST = {"steps": [5, 25, 50, 100], "min_hold_s": 1.5, "min_samples": 300, "min_canary_samples": 40,
        "min_agreement_samples": 40}


@heavy
def test_int8_canary_promoted_under_load(make_server, tmp_path):
    repo = make_repo(tmp_path)
    exp = tmp_path / "experiments.json"
    exp.write_text(json.dumps({"experiments": [plan("int8", "1", "2", shadow_fraction=0.2, rollout={
        **FAST, "gates": {"latency_improvement_min": 0.0, "agreement_mean_min": 0.99}})]}))
    srv = make_server("--model-repository", str(repo), "--admin-port", "0", "--max-wait-ms", "2",
                      "--experiments", str(exp))
    load = Load(srv)
    try:
        time.sleep(1)
        snapshot_checks(srv, "int8", tmp_path)  # a live step, mid-way
        x = wait_status(srv, "int8", "promoted", 120)
    finally:
        counts = load.stop()
    events = [e["event"] for e in x["log"]]
    assert events == ["start", "next_step", "next_step", "promote"], events
    for e in x["log"][1:]:
        d = e["decision"]
        assert d["agreement_mean"] >= 0.99 and d["n_agreement"] >= 40 and d["p95_canary_ms"] > 0, d
    assert counts.get("1", 0) > 100 and counts.get("2", 0) > 100, counts
    deadline = time.time() + 30  # control drains and is unloaded; the canary serves the name
    while versions(srv) != ("2", {"1": "available", "2": "ready"}):
        assert time.time() < deadline, versions(srv)
        time.sleep(0.1)
    m = srv.metrics()
    assert m['ake_experiment_requests_total{experiment="int8",model="minilm",version="2",arm="canary"}'] > 100
    assert m['ake_experiment_agreement_count{experiment="int8",model="minilm",version="2",arm="canary"}'] >= 120
    assert m['ake_experiment_running{experiment="int8",model="minilm",status="promoted"}'] == 0
    # a restart with the same --experiments file remembers the outcome and does not start it again
    assert srv.stop() == 0
    srv = make_server("--model-repository", str(repo), "--admin-port", "0", "--experiments", str(exp))
    assert experiment(srv, "int8")["status"] == "promoted"
    assert versions(srv)[0] == "2"


@heavy
def test_disagreeing_canary_rolled_back_under_load(make_server, tmp_path, l3_dir):
    repo = make_repo(tmp_path, l3_dir)
    srv = make_server("--model-repository", str(repo), "--admin-port", "0", "--max-wait-ms", "2")
    # the 3-layer model is faster: only agreement can stop it
    r = admin(srv, "POST", "/admin/experiments", plan("l3", "1", "3", shadow_fraction=0.2, rollout={
        **FAST, "gates": {"latency_improvement_min": -1.0}}))
    assert r.status_code == 201, r.text
    load = Load(srv)
    try:
        x = wait_status(srv, "l3", "rolled_back", 120)
    finally:
        counts = load.stop()
    assert [e["event"] for e in x["log"]] == ["start", "rollback"], x["log"]
    d = x["log"][-1]["decision"]
    assert d["step"] == 0 and d["agreement_mean"] < 0.9 and "agreement" in d["reason"], d
    assert counts.get("3", 0) > 0, counts
    deadline = time.time() + 30
    while versions(srv) != ("1", {"1": "ready", "2": "available", "3": "skipped"}):
        assert time.time() < deadline, versions(srv)
        time.sleep(0.1)
    snap = snapshot_checks(srv, "l3", tmp_path)  # finished: the samples of its last step remain
    assert snap["decision"]["outcome"] == "rollback" and snap["held_s"] == pytest.approx(x["held_s"], abs=1e-3)


@heavy
def test_canary_that_refuses_requests_is_rolled_back(make_server, tmp_path, l3_dir):
    """The 3-layer model takes 128 tokens, MiniLM 256: texts of about 200 tokens are answered by
    control and refused (422) by the canary, which counts as the canary's errors."""
    repo = make_repo(tmp_path, l3_dir)
    srv = make_server("--model-repository", str(repo), "--admin-port", "0", "--max-wait-ms", "2")
    r = admin(srv, "POST", "/admin/experiments", plan("refuses", "1", "3", rollout={
        "steps": [50, 100], "min_hold_s": 0.5, "min_samples": 60, "min_canary_samples": 20,
        "gates": {"latency_improvement_min": -1.0}}))
    assert r.status_code == 201, r.text
    statuses = {}
    with requests.Session() as s:
        for i in range(150):
            r = s.post(srv.url + "/embed", json={"inputs": "word " * 190, "model": "minilm"},
                       headers={"X-User": f"long-{i}"})
            statuses[(r.status_code, r.headers["X-Model-Version"])] = statuses.get(
                (r.status_code, r.headers["X-Model-Version"]), 0) + 1
            if i > 60 and experiment(srv, "refuses")["status"] != "running":
                break
    assert set(statuses) <= {(200, "1"), (422, "3")}, statuses
    x = wait_status(srv, "refuses", "rolled_back", 30)
    d = x["log"][-1]["decision"]
    assert d["error_rate_canary"] == 1 and d["error_rate_control"] == 0 and "error rate" in d["reason"], d


@heavy
def test_admin_errors(make_server, tmp_path):
    repo = make_repo(tmp_path)
    srv = make_server("--model-repository", str(repo), "--admin-port", "0")
    bad = [({"name": "x", "model": "minilm", "arms": [{"version": "1", "role": "control"}]}, 422, "2..8 arms"),
           ({**plan("x", "1", "2"), "rollout": {"gates": {"latency_improvment_min": 1}}}, 422,
            "latency_improvment_min"),
           (plan("x", "1", "9"), 404, "version `9`"),
           ({**plan("x", "1", "2"), "model": "nope"}, 404, "nope")]
    for body, status, words in bad:
        r = admin(srv, "POST", "/admin/experiments", body)
        assert r.status_code == status and words in r.json()["error"], (body, r.status_code, r.text)
    assert admin(srv, "POST", "/admin/experiments", plan("a", "1", "2", rollout={})).status_code == 201
    r = admin(srv, "POST", "/admin/experiments", plan("b", "1", "2"))
    assert r.status_code == 409 and "already has a running experiment" in r.json()["error"]
    r = admin(srv, "PATCH", "/admin/experiments/a", {"arms": [{"version": "1", "weight": 1}]})
    assert r.status_code == 409 and "rollout" in r.json()["error"]
    assert admin(srv, "PATCH", "/admin/experiments/a", {"shadow_fraction": 0.5}).status_code == 200
    assert admin(srv, "GET", "/admin/experiments/nope").status_code == 404
    assert admin(srv, "PATCH", "/admin/experiments/nope", {"arms": []}).status_code == 404
    assert admin(srv, "PATCH", "/admin/experiments/a", None).status_code == 400  # no body: not JSON
    assert admin(srv, "PUT", "/admin/experiments/a").status_code == 405
    r = admin(srv, "POST", "/admin/experiments", plan("..", "1", "2"))
    assert r.status_code == 422 and "not starting with" in r.json()["error"]
    assert admin(srv, "GET", "/admin/experiments/a/promote").status_code == 405
    r = admin(srv, "GET", "/admin/experiments/a/snapshot")  # no samples yet: the decision waits
    assert r.status_code == 200 and r.json()["decision"]["outcome"] == "wait"
    assert admin(srv, "POST", "/admin/experiments/a/promote").json()["status"] == "promoted"
    assert versions(srv)[0] == "2"
    assert admin(srv, "DELETE", "/admin/experiments/a").status_code == 200
    assert admin(srv, "GET", "/admin/experiments").json() == {"experiments": []}
    # keep_canary: a rolled-back canary stays loaded (skipped by the policy, reachable as name@version)
    assert admin(srv, "POST", "/admin/experiments", plan("k", "2", "1", keep_canary=True)).status_code == 201
    for arms, words in (([{"version": "1", "weight": 1, "role": "canary"}], "unknown field `role`"),
                        ([{"version": "1", "weight": 1}, {"version": "1", "weight": 2}], "listed twice"),
                        ([{"version": "1", "weight": 2e9}], "[0, 1e+09]")):
        r = admin(srv, "PATCH", "/admin/experiments/k", {"arms": arms})
        assert r.status_code == 422 and words in r.json()["error"], r.text
    r = admin(srv, "PATCH", "/admin/experiments/k", {"arms": [{"version": "1", "weight": 1}, {"version": "2",
                                                                                                "weight": 3}]})
    assert r.json()["canary_percent"] == 25 and r.json()["step_percent"] is None
    assert admin(srv, "POST", "/admin/experiments/k/rollback").status_code == 200
    assert versions(srv) == ("2", {"1": "ready", "2": "ready"})
    r = requests.post(srv.url + "/embed", json={"inputs": "x", "model": "minilm@1"})
    assert r.status_code == 200 and r.headers["X-Model-Version"] == "1"
    # an experiment DELETEd is not started again by the --experiments file of the next start
    f = tmp_path / "one.json"
    f.write_text(json.dumps(plan("once", "1", "2")))
    assert srv.stop() == 0
    srv = make_server("--model-repository", str(repo), "--admin-port", "0", "--experiments", str(f))
    assert experiment(srv, "once")["status"] == "running"
    assert admin(srv, "DELETE", "/admin/experiments/once").status_code == 200
    assert srv.stop() == 0
    srv = make_server("--model-repository", str(repo), "--admin-port", "0", "--experiments", str(f))
    assert admin(srv, "GET", "/admin/experiments/once").status_code == 404
    assert "was deleted by the admin API; not started again" in srv.log()
    # a bad --experiments file stops the start, naming the experiment
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(plan("bad", "1", "7")))
    r = subprocess.run([AKE_BIN, "serve", "--model-repository", str(repo), "--port", "0", "--experiments", str(f)],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode != 0 and "experiment bad" in r.stderr and "version `7`" in r.stderr, r.stderr[-2000:]


@pytest.mark.smoke
def test_experiment_smoke(make_server, tmp_path):
    """Every path of the router once, cheap enough for the sanitized build: routing, shadowing
    every control request, the snapshot, metrics, rollback and delete."""
    repo = make_repo(tmp_path)
    srv = make_server("--model-repository", str(repo), "--admin-port", "0")
    body = plan("smoke", "1", "2", shadow_fraction=1.0, rollout={"min_hold_s": 3600})
    assert admin(srv, "POST", "/admin/experiments", body).status_code == 201
    with requests.Session() as s:
        for i in range(20):
            r = s.post(srv.url + "/v1/embeddings", json={"input": ["hello", f"text {i}"], "user": f"u{i}"})
            assert r.status_code == 200 and r.headers["X-Model-Version"] in ("1", "2")
    deadline = time.time() + 60  # shadows run in the background
    while experiment(srv, "smoke")["arms"][1]["step_agreement_samples"] < 2:
        assert time.time() < deadline, experiment(srv, "smoke")
        time.sleep(0.1)
    snap = admin(srv, "GET", "/admin/experiments/smoke/snapshot").json()
    assert snap["decision"]["outcome"] == "wait" and snap["decision"]["agreement_mean"] > 0.99
    assert "ake_experiment_agreement_bucket" in requests.get(srv.url + "/metrics").text
    assert admin(srv, "POST", "/admin/experiments/smoke/rollback").json()["status"] == "rolled_back"
    assert admin(srv, "DELETE", "/admin/experiments/smoke").status_code == 200
