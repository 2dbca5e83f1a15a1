"""The model registry on a GPU (`make test-gpu` runs tests/http with AKE_TEST_DEVICE=cuda:0):
GPU memory comes back after load/unload cycles, and a version that does not fit in the GPU's
memory is refused with the numbers while the serving version goes on."""
import json
import os
import subprocess
import time

import pytest
import requests

from conftest import AKE_BIN, DEVICE, MODEL_DIR, ON_GPU, REPO

pytestmark = pytest.mark.skipif(not ON_GPU, reason="GPU memory: needs AKE_TEST_DEVICE=cuda:N")


def gpu_used_mib(pid):
    """GPU memory of process pid (nvidia-smi's per-process figure), MiB."""
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=60).stdout
    return sum(int(mem) for p, mem in (line.split(",") for line in out.strip().splitlines()) if int(p) == pid)


def synth(arch, out):
    r = subprocess.run([AKE_BIN, "synth", "--arch", arch, "--seed", "1", "--dtype", "f16", "--out", str(out),
                        "--tokenizer-from", MODEL_DIR], capture_output=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr.decode()


def test_gpu_memory_after_load_unload_cycles(make_server, tmp_path):
    root = tmp_path / "root"
    synth("minilm-l3", root / "l3")
    srv = make_server("--model", f"minilm={MODEL_DIR}", "--admin-port", "0", "--model-root", str(root))

    def cycle():
        r = requests.post(srv.admin_url + "/admin/models/l3/load", json={"path": "l3", "version": "1"}, timeout=120)
        assert r.status_code == 200, r.text
        assert requests.post(srv.url + "/embed", json={"inputs": ["a", "b"], "model": "l3"}, timeout=60).ok
        assert requests.post(srv.admin_url + "/admin/models/l3/unload", json={}, timeout=60).ok

    for _ in range(5):
        cycle()
    time.sleep(1)
    base_gpu, base_rss = gpu_used_mib(srv.pid), srv.rss_kb()
    for _ in range(50):
        cycle()
    time.sleep(1)
    gpu, rss = gpu_used_mib(srv.pid), srv.rss_kb()
    assert gpu <= base_gpu * 1.05, f"GPU memory {base_gpu} MiB -> {gpu} MiB after 50 cycles"
    assert rss <= base_rss * 1.05, f"RSS {base_rss} kB -> {rss} kB after 50 cycles"


def test_load_that_does_not_fit_is_refused(make_server, tmp_path):
    repo = tmp_path / "repo"
    synth("bert-large", repo / "big" / "1")
    # activations for 16 M tokens of bert-large: hundreds of GB, more than any GPU holds
    (repo / "big" / "1" / "akidb-model.json").write_text(json.dumps({"max_batch_tokens": 1 << 24}))
    synth("minilm-l3", repo / "small" / "1")
    srv = make_server("--model-repository", str(repo), "--admin-port", "0", "--max-batch-tokens", "16384")
    models = {m["id"]: m for m in requests.get(srv.url + "/v1/models", timeout=10).json()["data"]}
    assert models["small"]["serving_version"] == "1"
    big = models["big"]["versions"][0]
    assert big["state"] == "failed" and "does not fit" in big["error"] and "MiB" in big["error"], big
    r = requests.post(srv.admin_url + "/admin/models/big/load", json={"version": "1"}, timeout=300)
    assert r.status_code == 507 and "does not fit" in r.json()["error"], r.text
    assert requests.post(srv.url + "/embed", json={"inputs": "still serving", "model": "small"}, timeout=60).ok
    assert DEVICE in requests.get(srv.admin_url + "/admin/models", timeout=10).json()["loaded"][0]["device"]
