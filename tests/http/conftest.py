"""Fixtures of the HTTP black-box tests: the real `akidb-embed serve` on an ephemeral port.

AKE_BIN names the binary (default build/akidb-embed; `make test-http-san` points it at the
ASan/UBSan build and runs only the tests marked `smoke`). Each server logs to a file in the
test's tmp dir; its port is read from the startup line ("... on http://127.0.0.1:PORT;").

The suite runs against the CPU engine by default. AKE_TEST_DEVICE=cuda:0 (and AKE_TEST_DTYPE=
fp16|bf16|fp32, default: the backend's own) point every server it starts at that device
(tests/gpu/run.sh does, in `make test-gpu`); AKE_TEST_MODEL names another model folder (the
F16 copy of MiniLM carried to a GPU machine). The CLI reference (`akidb-embed embed`) stays on
the CPU in FP32. Tolerances per device: on the CPU a server vector equals the reference and
other batches to 1e-6; on a GPU it matches the CPU reference to cosine >= 0.9999 and itself
across batches to cosine >= 0.99999 (the GPU engine is batch-invariant only that far across
CUDA-graph buckets).
"""
import json
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest
import requests

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AKE_BIN = os.path.abspath(os.path.join(REPO, os.environ.get("AKE_BIN", "build/akidb-embed")))
MODEL_DIR = os.path.abspath(os.path.join(REPO, os.environ.get("AKE_TEST_MODEL", "models/all-MiniLM-L6-v2")))
MODEL_ID = "all-MiniLM-L6-v2"
DIM = 384
MAX_TOKENS = 256
SANITIZED = "build-san" in AKE_BIN
START_TIMEOUT = 120 if SANITIZED else 60
TOL = 1e-6  # the CPU engine is batch-invariant to 1e-6; equal batches give equal bits
DEVICE = os.environ.get("AKE_TEST_DEVICE", "cpu")
DTYPE = os.environ.get("AKE_TEST_DTYPE", "")
ON_GPU = DEVICE.startswith("cuda")
REF_COS = 0.9999     # GPU vs the CPU FP32 reference, per vector
BATCH_COS = 0.99999  # GPU vs GPU across batches (CUDA-graph buckets)
# /info's "dtype" as the engine resolves it
INFO_DTYPE = {"": "float16" if ON_GPU else "float32", "default": "float16" if ON_GPU else "float32",
              "fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "int8", "fp8": "float8_e4m3fn"}[DTYPE]


def pytest_configure(config):
    config.addinivalue_line("markers", "smoke: quick tests also run on the ASan/UBSan build")


class Server:
    """One `akidb-embed serve` process. Use as a context manager or call stop()."""

    def __init__(self, log_path, *args, env=None):
        if not (os.path.isfile(AKE_BIN) and os.access(AKE_BIN, os.X_OK)):
            pytest.fail(f"{AKE_BIN} not found: build it with `make` (or set AKE_BIN)")
        self.log_path = str(log_path)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("AKE_")}
        full_env.update(env or {})
        self._log = open(self.log_path, "wb")
        cmd = [AKE_BIN, "serve", "--host", "127.0.0.1", "--port", "0"]
        models_given = {"--model", "--model-repository"} & set(args) or {"AKE_MODEL", "AKE_MODEL_REPOSITORY"} & set(env or {})
        if not models_given:
            cmd += ["--model", MODEL_DIR]
        if "--device" not in args:
            cmd += ["--device", DEVICE] + (["--dtype", DTYPE] if DTYPE else [])
        cmd += list(args)
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=REPO)
        self.pid = self.proc.pid
        self.port = self._wait_port()
        self.url = f"http://127.0.0.1:{self.port}"
        m = re.search(r"admin API on (http://127\.0\.0\.1:\d+)", self.log())
        self.admin_url = m.group(1) if m else None
        deadline = time.time() + START_TIMEOUT
        while True:
            try:
                if requests.get(self.url + "/health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.time() > deadline:
                self.stop(signal.SIGKILL)
                pytest.fail(f"server did not become healthy; log:\n{self.log()}")
            time.sleep(0.05)

    def _wait_port(self):
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            m = re.search(r"on http://127\.0\.0\.1:(\d+);", self.log())
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}; log:\n{self.log()}")
            time.sleep(0.02)
        self.proc.kill()
        pytest.fail(f"server did not log its port; log:\n{self.log()}")

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def rss_kb(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def metrics(self):
        """Parses /metrics into {"name{labels}": value}."""
        text = requests.get(self.url + "/metrics", timeout=30).text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, val = line.rsplit(" ", 1)
                out[key] = float(val)
        return out

    def stop(self, sig=signal.SIGTERM, timeout=120):
        """Sends sig and returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"server did not exit within {timeout}s of signal {sig}; log tail:\n{self.log()[-3000:]}")
        self._log.close()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        rc = self.stop()
        if exc[0] is None:
            assert rc == 0, f"server exited with {rc}; log tail:\n{self.log()[-5000:]}"


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A server with the default limits, shared by the tests that do not change flags."""
    s = Server(tmp_path_factory.mktemp("srv") / "server.log")
    yield s
    rc = s.stop()
    assert rc == 0, f"server exited with {rc}; log tail:\n{s.log()[-5000:]}"


@pytest.fixture
def make_server(tmp_path):
    """Starts servers with extra flags/env; stops them (asserting exit 0) after the test."""
    started = []

    def make(*args, env=None):
        s = Server(tmp_path / f"server{len(started)}.log", *args, env=env)
        started.append(s)
        return s

    yield make
    for s in started:
        rc = s.stop()
        assert rc == 0, f"server exited with {rc}; log tail:\n{s.log()[-5000:]}"


def cli_embed(texts, model_dir=MODEL_DIR):
    """Vectors from `akidb-embed embed --jsonl` for texts (the reference for the server)."""
    stdin = "".join(json.dumps(t) + "\n" for t in texts).encode()
    r = subprocess.run([AKE_BIN, "embed", "--model", model_dir, "--jsonl"], input=stdin, capture_output=True,
                       timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr.decode()
    rows = [np.array(json.loads(line), dtype=np.float32) for line in r.stdout.decode().splitlines()]
    assert len(rows) == len(texts)
    return rows


def cosine(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def assert_close(got, want, what="", same_engine=False, gpu=None):
    """got from the server vs want: the CLI's CPU FP32 reference, or (same_engine) another
    answer of the same server. gpu (default: ON_GPU) says whether got came from a GPU engine."""
    got = np.asarray(got, dtype=np.float32)
    want = np.asarray(want, dtype=np.float32)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if ON_GPU if gpu is None else gpu:
        lim = BATCH_COS if same_engine else REF_COS
        c = cosine(got, want)
        assert c >= lim, f"{what}: cosine {c:.7f} < {lim} ({DEVICE} {DTYPE or 'default'})"
        return
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    assert diff <= TOL, f"{what}: max |diff| {diff:.3g} > {TOL}"


# Texts of various scripts and lengths, all under the model's 256-token limit.
TEXTS = [
    "hello",
    "The quick brown fox jumps over the lazy dog.",
    "akidb-embed turns text into vectors.",
    "Ünïcödé àccents and ÇEDILLA",
    "日本語のテキストも埋め込みます。",
    "emoji 🙂🚀 and symbols ©®™ — dashes",
    "   leading and trailing spaces   ",
    "tab\tseparated\nnew line",
    "Numbers 12345 67.89 and e-mail foo@example.com, URLs https://example.com/a?b=c",
    "A much longer sentence that talks about vector databases, approximate nearest neighbour search, "
    "and why sentence embeddings make semantic retrieval work better than keyword matching alone.",
    " ".join(["word"] * 120),
    "Ελληνικά και русский текст, עברית, العربية",
]
