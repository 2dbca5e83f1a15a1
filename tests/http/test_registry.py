"""Several models in one server, numbered versions, hot swap under load, the admin API, the
state file and repository polling (src/serve/registry.h, src/serve/admin.c).

Two models with different vectors: the real all-MiniLM-L6-v2 and a 3-layer MiniLM synthesized
with a fixed seed. Vectors are checked against `akidb-embed embed` on each folder (the same CPU
engine, batch-invariant to 1e-6)."""
import json
import os
import random
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest
import requests

from conftest import AKE_BIN, MODEL_DIR, ON_GPU, REPO, SANITIZED, TOL, cli_embed

pytestmark = pytest.mark.skipif(ON_GPU or SANITIZED, reason="CPU vectors compared to 1e-6; timing-heavy")

TEXTS = ["hello", "The quick brown fox jumps over the lazy dog.", "vectors for every text",
         "a second model answers differently", "Ünïcödé àccents", "embeddings at scale", "zero failed requests",
         "hot swap under load"]


@pytest.fixture(scope="module")
def l3_dir(tmp_path_factory):
    """A 3-layer MiniLM with random weights (seed 7): vectors unlike all-MiniLM-L6-v2's."""
    out = tmp_path_factory.mktemp("l3") / "minilm-l3"
    r = subprocess.run([AKE_BIN, "synth", "--arch", "minilm-l3", "--seed", "7", "--out", str(out), "--tokenizer-from",
                        MODEL_DIR], capture_output=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr.decode()
    return str(out)


@pytest.fixture(scope="module")
def refs(l3_dir):
    """{"minilm": {text: vector}, "l3": {...}} from the CLI."""
    return {name: dict(zip(TEXTS, cli_embed(TEXTS, d))) for name, d in (("minilm", MODEL_DIR), ("l3", l3_dir))}


def repo_with(tmp_path, versions):
    """repo/minilm/<v> -> folder, for {v: folder}; returns the repository path."""
    repo = tmp_path / "repo"
    (repo / "minilm").mkdir(parents=True)
    for v, d in versions.items():
        os.symlink(d, repo / "minilm" / str(v))
    return repo


def embed(url, texts, model=None, timeout=60):
    body = {"inputs": texts}
    if model:
        body["model"] = model
    return requests.post(url + "/embed", json=body, timeout=timeout)


def served(srv, name):
    models = {m["id"]: m for m in requests.get(srv.url + "/v1/models", timeout=10).json()["data"]}
    return models[name]


def admin(srv, path, body=None, timeout=120):
    return requests.post(srv.admin_url + path, json=body if body is not None else {}, timeout=timeout)


def check_vectors(got, texts, ref, what):
    for t, v in zip(texts, got):
        diff = float(np.max(np.abs(np.asarray(v, np.float32) - ref[t])))
        assert diff <= TOL, f"{what}: '{t}' differs by {diff:.3g}"


def test_two_models_in_one_server(make_server, l3_dir, refs):
    srv = make_server("--model", f"minilm={MODEL_DIR}", "--model", f"l3={l3_dir}")
    for name in ("minilm", "l3"):
        r = embed(srv.url, TEXTS, name)
        assert r.status_code == 200, r.text
        assert r.headers["X-Model-Version"] == "1"
        check_vectors(r.json(), TEXTS, refs[name], name)
    r = embed(srv.url, TEXTS[:2])  # no model: the first one given is the default
    check_vectors(r.json(), TEXTS[:2], refs["minilm"], "default")
    r = embed(srv.url, TEXTS[:2], "l3@1")
    check_vectors(r.json(), TEXTS[:2], refs["l3"], "l3@1")
    r = requests.post(srv.url + "/v1/embeddings", json={"model": "l3", "input": TEXTS[:3]}, timeout=30)
    assert r.status_code == 200 and r.json()["model"] == "l3"
    check_vectors([d["embedding"] for d in r.json()["data"]], TEXTS[:3], refs["l3"], "openai l3")
    for bad in ("nope", "l3@2", "l3@x"):
        r = embed(srv.url, "x", bad)
        assert r.status_code == 404, r.text
        if bad == "nope":
            assert "`minilm`" in r.json()["error"] and "`l3`" in r.json()["error"]
    r = requests.post(srv.url + "/v1/embeddings", json={"model": "nope", "input": "x"}, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    models = requests.get(srv.url + "/v1/models", timeout=10).json()["data"]
    assert [m["id"] for m in models] == ["minilm", "l3"]
    assert all(m["serving_version"] == "1" and m["versions"][0]["state"] == "ready" for m in models)
    info = requests.get(srv.url + "/info", timeout=10).json()
    assert info["model_id"] == "minilm" and {m["model_id"] for m in info["models"]} == {"minilm", "l3"}
    assert [m["synthetic_weights"] for m in info["models"]] == [False, True]
    metrics = srv.metrics()  # per-version families beside the server's totals
    per_model = {k: v for k, v in metrics.items() if k.startswith("ake_model_requests_total{")}
    assert per_model['ake_model_requests_total{model="l3",version="1",endpoint="embed",status="200"}'] >= 2
    assert per_model['ake_model_requests_total{model="minilm",version="1",endpoint="embed",status="200"}'] >= 2
    assert metrics['ake_requests_total{endpoint="embed",status="404"}'] >= 3  # no model: server-level only
    assert sum(v for k, v in per_model.items() if 'endpoint="embed",status="200"' in k) == \
        metrics['ake_requests_total{endpoint="embed",status="200"}']
    assert metrics['ake_model_info{model="l3",version="1",device="cpu",dtype="float32",pooling="mean",dim="384",'
                   'max_input_tokens="512",replicas="1",serving="true"}'] == 1


def test_default_model_and_bad_names(tmp_path, l3_dir):
    def start(*args):
        return subprocess.run([AKE_BIN, "serve", "--port", "0", *args], capture_output=True, timeout=60, cwd=REPO)
    r = start("--model", f"a={MODEL_DIR}", "--default-model", "b")
    assert r.returncode == 1 and b"--default-model 'b' is not one of the models" in r.stderr
    r = start("--model", f"a={MODEL_DIR}", "--model", f"a={l3_dir}")
    assert r.returncode == 1 and b"given twice" in r.stderr
    r = start("--model", f"bad/name={MODEL_DIR}")
    assert r.returncode == 1
    r = start("--model-repository", str(tmp_path / "absent"))
    assert r.returncode == 1 and b"--model-repository" in r.stderr


def test_swap_under_load_then_restart(make_server, tmp_path, l3_dir, refs):
    """20 swaps between versions 1 (MiniLM) and 2 (the 3-layer model) while 64 clients send
    requests of 1-4 texts: no request fails, each answer's vectors are those of the version its
    header names, and no request mixes versions. A restart serves the version served last."""
    repo = repo_with(tmp_path, {1: MODEL_DIR, 2: l3_dir})
    srv = make_server("--model-repository", str(repo), "--admin-port", "0", "--max-wait-ms", "2")
    assert served(srv, "minilm")["serving_version"] == "2"  # the newest, by the default policy
    by_version = {"1": refs["minilm"], "2": refs["l3"]}
    stop = threading.Event()
    failures, counts, lock = [], {"1": 0, "2": 0}, threading.Lock()

    def client(seed):
        rng = random.Random(seed)
        with requests.Session() as s:
            while not stop.is_set():
                texts = rng.sample(TEXTS, rng.randint(1, 4))
                try:
                    r = s.post(srv.url + "/embed", json={"inputs": texts, "model": "minilm"}, timeout=60)
                    v = r.headers.get("X-Model-Version")
                    assert r.status_code == 200, f"{r.status_code} {r.text[:200]}"
                    check_vectors(r.json(), texts, by_version[v], f"version {v}")
                    with lock:
                        counts[v] += 1
                except Exception as e:  # noqa: BLE001 - every failure is collected and reported
                    with lock:
                        failures.append(repr(e)[:300])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        for i in range(20):
            v = "1" if i % 2 == 0 else "2"
            r = admin(srv, "/admin/models/minilm/load", {"version": v})
            assert r.status_code == 200, r.text
            assert r.json() == {"model": "minilm", "version": v, "state": "serving"}
            time.sleep(0.15)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures, f"{len(failures)} failed requests, first: {failures[:3]}"
    assert counts["1"] > 20 and counts["2"] > 20, counts
    assert served(srv, "minilm")["serving_version"] == "2"
    # versions that were swapped out are freed once their requests are answered
    deadline = time.time() + 30
    while [v["state"] for v in served(srv, "minilm")["versions"] if v["version"] == "1"] != ["available"]:
        assert time.time() < deadline, served(srv, "minilm")
        time.sleep(0.1)
    # roll back to version 1, restart: version 1 serves again, and 2 is not taken up
    assert admin(srv, "/admin/models/minilm/load", {"version": "1"}).status_code == 200
    assert srv.stop() == 0
    state = json.loads((repo / ".akidb-state.json").read_text())
    assert state["models"]["minilm"] == {"serving": "1", "unloaded": False, "skip": ["2"]}
    srv2 = make_server("--model-repository", str(repo))
    m = served(srv2, "minilm")
    assert m["serving_version"] == "1"
    assert {v["version"]: v["state"] for v in m["versions"]} == {"1": "ready", "2": "skipped"}
    check_vectors(embed(srv2.url, TEXTS[:2]).json(), TEXTS[:2], refs["minilm"], "after restart")


def test_unload_under_load(make_server, tmp_path, l3_dir, refs):
    """A request admitted before the unload completes on its version; later ones get 404."""
    srv = make_server("--model", f"minilm={MODEL_DIR}", "--model", f"l3={l3_dir}", "--admin-port", "0",
                      "--model-root", str(tmp_path))
    long_texts = [" ".join(["word"] * 200) + f" {i}" for i in range(48)]
    result = {}

    def slow():
        result["r"] = embed(srv.url, long_texts, "l3", timeout=300)

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)  # admitted and running on the engine
    r = admin(srv, "/admin/models/l3/unload")
    assert r.status_code == 200 and r.json()["state"] == "unloading", r.text
    r = embed(srv.url, "x", "l3")
    assert r.status_code == 404, r.text
    t.join()
    assert result["r"].status_code == 200 and len(result["r"].json()) == 48
    assert result["r"].headers["X-Model-Version"] == "1"
    assert embed(srv.url, "x", "minilm").status_code == 200  # the other model is untouched
    assert served(srv, "l3")["serving_version"] is None
    # an unloaded model outside the repository comes back by path, as a new version
    shutil.copytree(l3_dir, tmp_path / "l3copy")
    r = admin(srv, "/admin/models/l3/load", {"path": "l3copy"})
    assert r.status_code == 200 and r.json()["version"] == "2", r.text
    check_vectors(embed(srv.url, TEXTS[:2], "l3").json(), TEXTS[:2], refs["l3"], "l3 by path")


def test_corrupt_version_keeps_the_old_one(make_server, tmp_path, refs):
    bad = tmp_path / "bad"
    shutil.copytree(MODEL_DIR, bad)
    with open(bad / "model.safetensors", "r+b") as f:
        f.truncate(1000)
    repo = repo_with(tmp_path, {1: MODEL_DIR, 2: str(bad)})
    (repo / "broken").mkdir()
    os.symlink(bad, repo / "broken" / "1")  # a model with no good version: listed as failed, the rest served
    srv = make_server("--model-repository", str(repo), "--admin-port", "0")
    broken = served(srv, "broken")
    assert broken["serving_version"] is None and broken["versions"][0]["state"] == "failed", broken
    assert embed(srv.url, "x", "broken").status_code == 404
    assert embed(srv.url, "x").headers["X-Model-Version"] == "1"  # the default: the first model that serves
    m = served(srv, "minilm")  # the newest failed at start: the next newest serves
    assert m["serving_version"] == "1"
    failed = [v for v in m["versions"] if v["version"] == "2"]
    assert failed[0]["state"] == "failed" and "safetensors" in failed[0]["error"], m
    r = admin(srv, "/admin/models/minilm/load", {"version": "2"})
    assert r.status_code == 422 and "failed to load" in r.json()["error"], r.text
    assert served(srv, "minilm")["serving_version"] == "1"
    # broken/1 and minilm/2 at start, minilm/2 again by the admin API: what the alert rule watches
    assert srv.metrics()["ake_model_load_failures_total"] == 3
    check_vectors(embed(srv.url, TEXTS[:3]).json(), TEXTS[:3], refs["minilm"], "old version")
    for body, want in (({"version": "9"}, 404), ({"version": "x"}, 422), ({"version": 3}, 422)):
        r = admin(srv, "/admin/models/minilm/load", body)
        assert r.status_code == want, (body, r.text)
    r = requests.post(srv.admin_url + "/admin/models/minilm/load", data="{", timeout=10)
    assert r.status_code == 400
    assert admin(srv, "/admin/models/nope/load").status_code == 404
    assert requests.get(srv.admin_url + "/admin/models/minilm/load", timeout=10).status_code == 405
    assert admin(srv, "/admin/nothing").status_code == 404


def test_path_escapes_refused(make_server, tmp_path, l3_dir):
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(l3_dir, root / "inside")            # a symlink to a folder outside the root
    shutil.copytree(l3_dir, root / "real")
    srv = make_server("--model", f"minilm={MODEL_DIR}", "--admin-port", "0", "--model-root", str(root),
                      "--admin-api-key", "sekret")
    r = requests.post(srv.admin_url + "/admin/models/x/load", json={"path": "real"}, timeout=60)
    assert r.status_code == 401
    hdr = {"Authorization": "Bearer sekret"}
    for path in ("../root/real", "real/../real", "/etc", l3_dir, "inside"):
        r = requests.post(srv.admin_url + "/admin/models/x/load", json={"path": path}, headers=hdr, timeout=60)
        assert r.status_code == 403, (path, r.text)
    r = requests.post(srv.admin_url + "/admin/models/x/load", json={"path": "absent"}, headers=hdr, timeout=60)
    assert r.status_code == 404
    r = requests.post(srv.admin_url + "/admin/models/x/load", json={"path": "real"}, headers=hdr, timeout=60)
    assert r.status_code == 200 and r.json()["version"] == "1", r.text
    assert embed(srv.url, "x", "x").status_code == 200
    listing = requests.get(srv.admin_url + "/admin/models", headers=hdr, timeout=10).json()
    loaded = {m["model_id"]: m for m in listing["loaded"]}
    assert loaded["x"]["model_dir"] == str(root / "real") and loaded["x"]["weight_bytes_per_device"]["cpu"] > 0


def test_repository_polling(make_server, tmp_path, l3_dir, refs):
    repo = repo_with(tmp_path, {1: MODEL_DIR})
    srv = make_server("--model-repository", str(repo), "--repository-poll-s", "1")

    def wait_serving(v):
        deadline = time.time() + 30
        while served(srv, "minilm")["serving_version"] != v:
            assert time.time() < deadline, served(srv, "minilm")
            time.sleep(0.2)

    os.symlink(l3_dir, repo / "minilm" / "2")
    wait_serving("2")
    check_vectors(embed(srv.url, TEXTS[:2]).json(), TEXTS[:2], refs["l3"], "polled version 2")
    os.unlink(repo / "minilm" / "2")
    wait_serving("1")
    check_vectors(embed(srv.url, TEXTS[:2]).json(), TEXTS[:2], refs["minilm"], "back to version 1")
    (repo / "other").mkdir()
    os.symlink(l3_dir, repo / "other" / "5")
    deadline = time.time() + 30
    while embed(srv.url, "x", "other").status_code != 200:
        assert time.time() < deadline
        time.sleep(0.2)
    assert embed(srv.url, "x", "other").headers["X-Model-Version"] == "5"


def test_load_unload_cycles_keep_memory(make_server, tmp_path, l3_dir):
    """50 load/unload cycles of a model: resident memory back within 5 %."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copytree(l3_dir, root / "l3")
    srv = make_server("--model", f"minilm={MODEL_DIR}", "--admin-port", "0", "--model-root", str(root))

    def cycle():
        assert admin(srv, "/admin/models/l3/load", {"path": "l3", "version": "1"}).status_code == 200
        assert embed(srv.url, TEXTS, "l3").status_code == 200
        assert admin(srv, "/admin/models/l3/unload").status_code == 200

    for _ in range(5):
        cycle()
    time.sleep(0.5)
    base = srv.rss_kb()
    for _ in range(50):
        cycle()
    time.sleep(0.5)
    rss = srv.rss_kb()
    assert rss <= base * 1.05, f"RSS {base} kB -> {rss} kB after 50 cycles"


def test_the_plans_five_models(make_server):
    """`scripts/models` builds the repository of the five models (and the imported 3-layer model
    beside them); one server serves them all, each with the vectors of its folder."""
    r = subprocess.run(["bash", "scripts/models"], capture_output=True, timeout=900, cwd=REPO,
                       env={**os.environ, "AKE_BIN": AKE_BIN})
    assert r.returncode == 0, r.stderr.decode()
    repo = os.path.join(REPO, "models", "repository")
    names = ["all-MiniLM-L6-v2", "bert-base", "bge-small", "minilm-l3-distilled", "paraphrase-MiniLM-L3-v2",
             "uae-large"]
    state = os.path.join(str(repo), ".akidb-state.json")
    if os.path.exists(state):
        os.unlink(state)  # what another run served is not this test's business
    srv = make_server("--model-repository", repo, "--default-model", "all-MiniLM-L6-v2")
    models = requests.get(srv.url + "/v1/models", timeout=10).json()["data"]
    assert sorted(m["id"] for m in models) == names
    info = {m["model_id"]: m for m in requests.get(srv.url + "/info", timeout=10).json()["models"]}
    assert {n: info[n]["dim"] for n in names} == {"all-MiniLM-L6-v2": 384, "bert-base": 768, "bge-small": 384,
                                                  "minilm-l3-distilled": 384, "paraphrase-MiniLM-L3-v2": 384,
                                                  "uae-large": 1024}
    with open(os.path.join(repo, "minilm-l3-distilled", "1", "distillation.json")) as f:
        record = json.load(f)  # the run's record travels with the assembled student
    assert record["settings"]["layers"] == [1, 3, 5] and record["final_validation"]["recall_at_10"] > 0.7
    assert [n for n in names if info[n]["synthetic_weights"]] == ["bert-base", "bge-small", "uae-large"]
    for name in names:
        # /embed normalizes (TEI's default); the CLI gives bert-base's vectors as the model does
        want = {t: v / np.linalg.norm(v) for t, v in zip(TEXTS[:3], cli_embed(TEXTS[:3], os.path.join(repo, name, "1")))}
        r = embed(srv.url, TEXTS[:3], name)
        assert r.status_code == 200, r.text
        check_vectors(r.json(), TEXTS[:3], want, name)


def test_version_policy_and_settings_files(make_server, tmp_path, l3_dir, refs):
    """akidb-model.json: {"latest": 2} keeps two versions loaded (the newest serves, the other
    answers name@version); {"specific": [...]} loads the listed ones; a version folder's own
    file overrides the model's; an unknown field is refused with its name."""
    repo = repo_with(tmp_path, {1: MODEL_DIR, 2: l3_dir})
    (repo / "minilm" / "akidb-model.json").write_text(json.dumps({"version_policy": {"latest": 2},
                                                                  "max_batch_size": 8}))
    srv = make_server("--model-repository", str(repo))
    m = served(srv, "minilm")
    assert m["serving_version"] == "2" and sorted(v["state"] for v in m["versions"]) == ["ready", "ready"]
    check_vectors(embed(srv.url, TEXTS[:2], "minilm@1").json(), TEXTS[:2], refs["minilm"], "minilm@1")
    check_vectors(embed(srv.url, TEXTS[:2], "minilm").json(), TEXTS[:2], refs["l3"], "minilm (2)")
    assert srv.stop() == 0

    (repo / "minilm" / "akidb-model.json").write_text(json.dumps({"version_policy": {"specific": ["1"]}}))
    os.unlink(repo / ".akidb-state.json")
    srv = make_server("--model-repository", str(repo))
    m = served(srv, "minilm")
    assert m["serving_version"] == "1" and {v["version"]: v["state"] for v in m["versions"]} == \
        {"1": "ready", "2": "available"}
    assert srv.stop() == 0

    os.unlink(repo / ".akidb-state.json")
    (repo / "minilm" / "akidb-model.json").write_text(json.dumps({"device": "cpu", "replicas": 2}))
    own = tmp_path / "v3"
    shutil.copytree(l3_dir, own)
    (own / "akidb-model.json").write_text(json.dumps({"replicas": 1, "max_batch_tokens": 8}))
    os.symlink(own, repo / "minilm" / "3")
    srv = make_server("--model-repository", str(repo))
    m = served(srv, "minilm")  # 3's own file asks for fewer tokens than its inputs: it fails, 2 serves
    assert m["serving_version"] == "2"
    assert "max_batch_tokens 8" in [v for v in m["versions"] if v["version"] == "3"][0]["error"]
    assert [v["device"] for v in m["versions"] if v["version"] == "2"] == ["cpu,cpu"]  # the model's replicas
    assert srv.stop() == 0

    (repo / "minilm" / "akidb-model.json").write_text(json.dumps({"replica": 2}))
    r = subprocess.run([AKE_BIN, "serve", "--port", "0", "--model-repository", str(repo)], capture_output=True,
                       timeout=60, cwd=REPO)
    assert r.returncode == 1 and b'unknown field "replica"' in r.stderr, r.stderr


def test_admin_edges(make_server, tmp_path, l3_dir, refs):
    """What a break test found: unloading one version echoes it; unknown body fields are refused;
    versions have one spelling; a failed load by path leaves no model behind; a --model comes
    back without a path; a server whose models were all unloaded restarts empty."""
    repo = repo_with(tmp_path, {1: MODEL_DIR, 2: l3_dir})
    os.symlink(l3_dir, repo / "minilm" / "007")  # not a canonical version: skipped
    (repo / "minilm" / "akidb-model.json").write_text(json.dumps({"version_policy": {"latest": 2}}))
    root = tmp_path / "root"
    root.mkdir()
    srv = make_server("--model-repository", str(repo), "--admin-port", "0", "--model-root", str(root),
                      "--model", f"plain={MODEL_DIR}")
    assert "folder '007' skipped" in srv.log()
    assert {v["version"] for v in served(srv, "minilm")["versions"]} == {"1", "2"}
    assert embed(srv.url, "x", "minilm@02").status_code == 404
    for body, words in (({"versoin": "1"}, "unknown field `versoin`"), ({"version": 1}, "must be a string"),
                        ({"version": "01"}, "version number")):
        r = admin(srv, "/admin/models/minilm/load", body)
        assert r.status_code == 422 and words in r.json()["error"], (body, r.text)
    r = admin(srv, "/admin/models/minilm/unload", {"path": "x"})
    assert r.status_code == 422 and "unknown field `path`" in r.json()["error"]
    r = admin(srv, "/admin/models/minilm/unload", {"version": "2"})
    assert r.status_code == 200 and r.json() == {"model": "minilm", "version": "2", "state": "unloading"}, r.text
    check_vectors(embed(srv.url, TEXTS[:2], "minilm").json(), TEXTS[:2], refs["minilm"], "version 1 serves")
    r = admin(srv, "/admin/models/" + "n" * 200 + "/load")
    assert r.status_code == 422 and "at most" in r.json()["error"]
    for _ in range(3):
        assert admin(srv, "/admin/models/ghost/load", {"path": "absent"}).status_code == 404
    assert "ghost" not in [m["id"] for m in requests.get(srv.url + "/v1/models", timeout=10).json()["data"]]
    assert admin(srv, "/admin/models/plain/unload").status_code == 200
    assert embed(srv.url, "x", "plain").status_code == 404
    r = admin(srv, "/admin/models/plain/load")  # a --model comes back from its own folder
    assert r.status_code == 200 and r.json()["version"] == "1", r.text
    # every model unloaded: the restart serves nothing, and the admin API brings one back
    for name in ("minilm", "plain"):
        assert admin(srv, f"/admin/models/{name}/unload").status_code == 200
    assert srv.stop() == 0
    srv = make_server("--model-repository", str(repo), "--admin-port", "0")
    assert "no model serves" in srv.log()
    assert embed(srv.url, "x").status_code == 404
    assert admin(srv, "/admin/models/minilm/load", {"version": "1"}).status_code == 200
    check_vectors(embed(srv.url, TEXTS[:2]).json(), TEXTS[:2], refs["minilm"], "back")


def test_ports_and_flags_refused(make_server, tmp_path):
    srv = make_server("--admin-port", "0")
    def start(*args):
        return subprocess.run([AKE_BIN, "serve", *args], capture_output=True, timeout=120, cwd=REPO)
    r = start("--model", MODEL_DIR, "--port", str(srv.port))  # the port is taken: no second listener on it
    assert r.returncode == 1 and b"cannot listen" in r.stderr, r.stderr
    admin_port = srv.admin_url.rsplit(":", 1)[1]
    r = start("--model", MODEL_DIR, "--port", "0", "--admin-port", admin_port)
    assert r.returncode == 1 and b"admin API" in r.stderr, r.stderr
    r = start("--model", MODEL_DIR, "--port", "0", "--repository-poll-s", "5")
    assert r.returncode == 1 and b"--repository-poll-s needs --model-repository" in r.stderr
    r = start("--model", f"a={MODEL_DIR}", "--model-id", "b", "--port", "0")
    assert r.returncode == 1 and b"--model-id" in r.stderr
    r = start("--model", f"={MODEL_DIR}", "--port", "0")
    assert r.returncode == 1 and b"the name before '=' is empty" in r.stderr
