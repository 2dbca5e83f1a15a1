"""make test-container (opt-in, issue 12): deploy/container/Containerfile.cpu built and run with
podman on this machine, from a Debian 12 root filesystem made here by debootstrap (no registry
image is reachable from the test machines):

1. the default (baked) image, run as Kubernetes runs it in deploy/k8s (read-only root, a tmpfs
   /tmp, every capability dropped, no new privileges): it becomes healthy, its HEALTHCHECK passes,
   it runs as the unprivileged user 10001, its vectors equal the CLI's on this machine, and
   `podman stop` (SIGTERM to PID 1) drains it to exit 0 with a request in flight answered;
2. the `runtime` target (no model inside) serves a model repository mounted read-only.

podman needs two settings here, both in the containers.conf the test writes (CONTAINERS_CONF):
runc instead of crun (crun refuses this kernel's hybrid cgroup v1/v2 layout), and resource limits
no higher than this machine's hard limits (the process may not raise them). Images and containers
are the test's own (localhost/akidb-embed-test*) and removed after it; the debootstrap root is
kept in build/container/ for the next run."""
import concurrent.futures
import json
import os
import resource
import shutil
import socket
import subprocess
import time

import numpy as np
import pytest
import requests

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AKE_BIN = os.path.join(REPO, os.environ.get("AKE_BIN", "build/akidb-embed"))
MODEL = os.path.join(REPO, "models", "all-MiniLM-L6-v2")
WORK = os.path.join(REPO, "build", "container")
BASE = "localhost/akidb-embed-test/debian:bookworm"
IMAGE = "localhost/akidb-embed-test:cpu"
IMAGE_NOMODEL = "localhost/akidb-embed-test:cpu-nomodel"


def run(*args, timeout=1800, check=True, env=None):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert r.returncode == 0, f"{' '.join(args)}: rc {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    for t in ("podman", "runc", "debootstrap"):
        assert shutil.which(t), f"{t} not found: bash scripts/setup --container installs it"
    os.makedirs(WORK, exist_ok=True)
    conf = os.path.join(WORK, "containers.conf")
    ulimits = [f"{name}={n}:{n}" for name, n in (
        ("nofile", min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 4096)),
        ("nproc", min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)))]
    with open(conf, "w") as f:
        f.write(f"[containers]\ndefault_ulimits = {json.dumps(ulimits)}\n[engine]\nruntime = \"runc\"\n")
    env = dict(os.environ, CONTAINERS_CONF=conf)

    def pm(*args, **kw):
        if args[0] == "build":  # podman 4.3's build does not read default_ulimits; OCI images drop HEALTHCHECK
            args = ("build", "--format", "docker", *[a for u in ulimits for a in ("--ulimit", u)], *args[1:])
        return run("podman", *args, env=env, **kw)

    # Debian 12 from debootstrap, imported as the images' BASE
    tar = os.path.join(WORK, "debian-bookworm-minbase.tar")
    if not os.path.exists(tar):
        root = str(tmp_path_factory.mktemp("rootfs") / "root")
        run("debootstrap", "--variant=minbase", "bookworm", root, "http://deb.debian.org/debian")
        run("tar", "-C", root, "-cf", tar + ".part", ".")
        os.rename(tar + ".part", tar)
    pm("import", tar, BASE)
    try:
        yield pm
    finally:
        for c in pm("ps", "-a", "--format", "{{.Names}}", check=False).stdout.split():
            if c.startswith("akidb-embed-test"):
                pm("rm", "-f", c, check=False)
        for i in (IMAGE, IMAGE_NOMODEL, BASE):
            pm("rmi", "-f", i, check=False)
        pm("image", "prune", "-f", check=False)  # the build stages


def wait_healthy(url, pm, name, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"{name} not healthy; logs:\n{pm('logs', name, check=False).stderr[-4000:]}")


def cli_vectors(texts):
    """This machine's `akidb-embed embed --jsonl` vectors of texts (one JSON array per line)."""
    stdin = "".join(json.dumps(t) + "\n" for t in texts)
    r = subprocess.run([AKE_BIN, "embed", "--model", MODEL, "--jsonl"], input=stdin, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return np.array([json.loads(line) for line in r.stdout.splitlines()], dtype=np.float64)


def test_the_cpu_image_serves_as_kubernetes_runs_it_and_drains(podman):
    pm = podman
    pm("build", "--build-arg", f"BASE={BASE}", "-f", "deploy/container/Containerfile.cpu", "-t", IMAGE, REPO)
    port, name = free_port(), "akidb-embed-test-cpu"
    # deploy/k8s's securityContext: read-only root, /tmp writable, no capabilities, no privilege gain
    pm("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", "--read-only", "--tmpfs", "/tmp",
       "--cap-drop", "ALL", "--security-opt", "no-new-privileges", IMAGE)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, pm, name)
    assert pm("exec", name, "id", "-u").stdout.strip() == "10001"
    assert pm("healthcheck", "run", name, check=False).returncode == 0
    texts = ["a container serves the same vectors", "as the program outside it"]
    r = requests.post(url + "/embed", json={"inputs": texts}, timeout=30)
    assert r.status_code == 200
    got, want = np.array(r.json()), cli_vectors(texts)
    # the image is built for x86-64-v3 (AVX2), this machine's binary for its own CPU
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() > 0.99999, cos

    # SIGTERM to PID 1 (podman stop) with requests in flight: all answered, exit 0
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(requests.post, url + "/embed", json={"inputs": ["drain " * 200] * 32}, timeout=60)
                for _ in range(8)]
        time.sleep(0.3)
        pm("stop", "-t", "60", name)
        codes = [f.result().status_code for f in futs]
    assert codes == [200] * 8, codes
    state = json.loads(pm("inspect", name).stdout)[0]["State"]
    assert state["ExitCode"] == 0, state
    assert "SIGTERM: no longer accepting" in pm("logs", name).stderr


def test_the_runtime_image_serves_a_mounted_repository(podman, tmp_path):
    pm = podman
    pm("build", "--build-arg", f"BASE={BASE}", "--target", "runtime", "-f", "deploy/container/Containerfile.cpu",
       "-t", IMAGE_NOMODEL, REPO)
    assert pm("run", "--rm", IMAGE_NOMODEL, "version").stdout.startswith("akidb-embed")
    repo = tmp_path / "repo"
    shutil.copytree(MODEL, repo / "minilm" / "1")
    os.chmod(tmp_path, 0o755)
    port, name = free_port(), "akidb-embed-test-nomodel"
    pm("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", "--read-only", "--tmpfs", "/tmp",
       "-v", f"{repo}:/models:ro", "-e", "AKE_STATE_FILE=/tmp/state.json", IMAGE_NOMODEL,
       "serve", "--model-repository", "/models")
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, pm, name)
    r = requests.post(url + "/v1/embeddings", json={"model": "minilm", "input": "mounted"}, timeout=30)
    assert r.status_code == 200 and len(r.json()["data"][0]["embedding"]) == 384
    pm("stop", "-t", "30", name)
    assert json.loads(pm("inspect", name).stdout)[0]["State"]["ExitCode"] == 0
