"""INT8 quantization of the real all-MiniLM-L6-v2 on the CPU, end to end through the CLI:
dynamic INT8 and a static INT8 folder calibrated on the committed calibration text both pass
the default accuracy gate on 5,000 real sentences that calibration never saw
(tests/golden/quant_eval.txt; both files come from tests/golden/make_quant_text.py), and the
gate bites: scales broken by x100 fail `validate`, a calibration that clips half of every
activation makes `quantize` refuse to write, each naming the failing measure."""
import hashlib
import json
import os
import re
import struct
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / os.environ.get("AKE_BIN", "build/akidb-embed")
MODEL = ROOT / "models" / "all-MiniLM-L6-v2"
CALIB = ROOT / "tests" / "golden" / "quant_calib.txt"
EVAL = ROOT / "tests" / "golden" / "quant_eval.txt"
GATE_TEXTS = 5000


def run(*args, timeout=900):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=timeout)


def test_eval_and_calibration_texts_do_not_overlap():
    calib = set(CALIB.read_text().splitlines())
    evals = EVAL.read_text().splitlines()
    assert len(evals) >= GATE_TEXTS and len(calib) >= 1000
    assert not calib.intersection(evals)


def test_dynamic_int8_passes_the_gate(tmp_path):
    out = tmp_path / "v.json"
    r = run("validate", "--model", MODEL, "--dtype", "int8", "--reference", MODEL, "--corpus", EVAL,
            "--limit", GATE_TEXTS, "--json", out)
    assert r.returncode == 0, r.stdout + r.stderr
    v = json.loads(out.read_text())
    assert v["pass"] and v["texts"] == GATE_TEXTS and v["dtype"] == "int8" and v["queries"] == 500
    assert v["mean_cosine"] >= 0.995 and v["min_cosine"] >= 0.98 and v["recall_at_10"] >= 0.95, v
    assert "PASS" in r.stdout


@pytest.fixture(scope="module")
def static_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "minilm-int8"
    r = run("quantize", "--model", MODEL, "--dtype", "int8", "--calib", CALIB, "--out", out)
    assert r.returncode == 0, r.stderr
    return out


def test_static_folder_is_small_and_says_how_it_was_made(static_folder):
    size = (static_folder / "model.safetensors").stat().st_size
    assert size <= 0.30 * (MODEL / "model.safetensors").stat().st_size
    for f in ("config.json", "tokenizer.json", "vocab.txt", "modules.json", "1_Pooling/config.json"):
        assert (static_folder / f).is_file(), f
    c = json.loads((static_folder / "quantization_config.json").read_text())
    assert c["dtype"] == "int8" and c["method"] == "percentile" and c["activations"].startswith("static")
    assert c["calibration"]["sha256"] == hashlib.sha256(CALIB.read_bytes()).hexdigest()
    assert c["calibration"]["samples"] > 1000
    assert c["gemm_flops_8bit_share"] >= 0.80
    assert len(c["layers"]) == 6 and all(set(l) == {"qkv", "out", "ffn1", "ffn2"} for l in c["layers"])
    assert c["accuracy"]["pass"] and not c["gate_forced"]


def test_static_int8_passes_the_gate(static_folder, tmp_path):
    out = tmp_path / "v.json"
    r = run("validate", "--model", static_folder, "--reference", MODEL, "--corpus", EVAL, "--limit", GATE_TEXTS,
            "--json", out)
    assert r.returncode == 0, r.stdout + r.stderr
    v = json.loads(out.read_text())
    assert v["pass"] and v["dtype"] == "int8" and v["file_size_ratio"] <= 0.30, v


def test_static_folder_embeds_like_any_model(static_folder):
    texts = "A quantized model is still a model folder.\nSecond line\n"
    r = subprocess.run([str(BIN), "embed", "--model", str(static_folder)], input=texts, capture_output=True,
                       text=True, timeout=120)
    f = subprocess.run([str(BIN), "embed", "--model", str(MODEL)], input=texts, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and f.returncode == 0, r.stderr
    a = np.array([json.loads(l) for l in r.stdout.splitlines()])
    b = np.array([json.loads(l) for l in f.stdout.splitlines()])
    assert a.shape == b.shape == (2, 384)
    assert np.all(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1) > 0.99)


def test_static_folder_serves_and_says_so(static_folder, tmp_path):
    log = tmp_path / "serve.log"
    with open(log, "wb") as f:
        p = subprocess.Popen([str(BIN), "serve", "--model", str(static_folder), "--host", "127.0.0.1", "--port", "0"],
                             stdout=f, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            m = re.search(r"on http://127\.0\.0\.1:(\d+);", log.read_text(errors="replace"))
            if m or p.poll() is not None:
                break
            time.sleep(0.05)
        assert m, log.read_text()
        url = f"http://127.0.0.1:{m.group(1)}"
        for _ in range(600):
            try:
                if requests.get(url + "/health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        info = requests.get(url + "/info", timeout=10).json()
        assert info["dtype"] == "int8" and info["quantization"]["dtype"] == "int8"
        assert 0 < info["weight_bytes"] < 0.35 * (MODEL / "model.safetensors").stat().st_size
        v = requests.post(url + "/embed", json={"inputs": ["hello", "world"]}, timeout=30).json()
        assert len(v) == 2 and len(v[0]) == 384
        assert 'dtype="int8"' in requests.get(url + "/metrics", timeout=10).text
    finally:
        p.terminate()
        p.wait(timeout=30)


def read_safetensors(path):
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def write_safetensors(path, header, buf):
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + buf)


def copy_with_weights(src, dst, edit):
    """dst: a copy of folder src whose model.safetensors went through edit(header, buf)."""
    for f in src.rglob("*"):
        if f.is_file() and f.name != "model.safetensors":
            (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (dst / f.relative_to(src)).write_bytes(f.read_bytes())
    header, buf = read_safetensors(src / "model.safetensors")
    buf = bytearray(buf)
    edit(header, buf)
    write_safetensors(dst / "model.safetensors", header, bytes(buf))


def test_scales_broken_x100_fail_validate(static_folder, tmp_path):
    broken = tmp_path / "broken"
    n = 0

    def times100(header, buf):
        nonlocal n
        for name, t in header.items():
            if name.endswith(".input_scale"):
                a, b = t["data_offsets"]
                buf[a:b] = (np.frombuffer(bytes(buf[a:b]), "<f4") * 100).astype("<f4").tobytes()
                n += 1
    copy_with_weights(static_folder, broken, times100)
    assert n >= 18
    r = run("validate", "--model", broken, "--reference", MODEL, "--corpus", EVAL, "--limit", 1000)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "accuracy gate failed" in r.stderr and ("cosine" in r.stderr or "recall@10" in r.stderr), r.stderr


def test_overflowing_scales_are_an_error_not_nulls(static_folder, tmp_path):
    """Finite scales that overflow the arithmetic give NaN vectors: embed and serve must fail, not
    answer nulls."""
    def huge(header, buf):
        a, b = header["encoder.layer.0.output.dense.weight_scale"]["data_offsets"]
        buf[a:b] = np.full((b - a) // 4, 3e38, "<f4").tobytes()
    copy_with_weights(static_folder, tmp_path / "huge", huge)
    r = subprocess.run([str(BIN), "embed", "--model", str(tmp_path / "huge")], input="hello world\n",
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "non-finite" in r.stderr and "null" not in r.stdout, (r.stdout, r.stderr)


def test_quantize_refuses_a_broken_calibration(tmp_path):
    """Scales at the 50.1th percentile clip half of every input: no 20 % in float saves that."""
    calib = tmp_path / "calib.txt"
    calib.write_text("".join(CALIB.read_text().splitlines(keepends=True)[:600]))
    out = tmp_path / "never"
    r = run("quantize", "--model", MODEL, "--calib", calib, "--holdout", 100, "--method", "percentile",
            "--percentile", 50.1, "--out", out)
    assert r.returncode == 1, r.stderr
    assert "accuracy gate fails" in r.stderr and "nothing written" in r.stderr, r.stderr
    assert "cosine" in r.stderr.split("accuracy gate fails")[1] or "recall@10" in r.stderr.split("accuracy gate fails")[1]
    assert not out.exists() and not list(tmp_path.glob("never.tmp-*"))


@pytest.mark.parametrize("args,words", [
    (["--dtype", "fp8"], ["fp8", "--device cuda:N"]),
    (["--dtype", "int4"], ["--dtype"]),
    (["--smooth", "2"], ["--smooth"]),
    (["--method", "guess"], ["--method"]),
    (["--rotate", "3x"], ["--rotate"]),
])
def test_quantize_bad_flags(tmp_path, args, words):
    r = run("quantize", "--model", MODEL, "--calib", CALIB, "--out", tmp_path / "o", *args)
    assert r.returncode in (1, 2) and r.stderr.startswith("akidb-embed"), r.stderr
    for w in words:
        assert w in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()


def quantize_until_its_folder_appears(tmp_path):
    """A quantize run of 120 texts into tmp_path/q, returned once q.tmp-<pid> exists."""
    calib = tmp_path / "calib.txt"
    calib.write_text("".join(CALIB.read_text().splitlines(keepends=True)[:120]))
    p = subprocess.Popen([str(BIN), "quantize", "--model", str(MODEL), "--calib", str(calib), "--holdout", "20",
                          "--out", str(tmp_path / "q"), "--no-gate"], stderr=subprocess.PIPE, text=True)
    for _ in range(600):
        if list(tmp_path.glob("q.tmp-*")):
            break
        time.sleep(0.05)
    return p, calib, tmp_path / "q"


def test_quantize_cleans_up_after_a_killed_run(tmp_path):
    """A run killed mid-way leaves <out>.tmp-<pid>; the next run removes it, and --out is whole."""
    p, calib, out = quantize_until_its_folder_appears(tmp_path)
    p.kill()
    p.wait()
    assert list(tmp_path.glob("q.tmp-*")) and not out.exists()
    r = run("quantize", "--model", MODEL, "--calib", calib, "--holdout", 20, "--out", out, "--no-gate")
    assert r.returncode == 0 and "left by a run that did not finish" in r.stderr, r.stderr
    assert not list(tmp_path.glob("q.tmp-*")) and (out / "quantization_config.json").is_file()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_quantize_removes_its_folder_when_interrupted(tmp_path, sig):
    """SIGTERM / SIGINT mid-way: the temporary folder is removed before the process ends."""
    p, _, out = quantize_until_its_folder_appears(tmp_path)
    p.send_signal(sig)
    _, stderr = p.communicate(timeout=60)
    assert p.returncode in (128 + sig, -sig), stderr
    assert "interrupted" in stderr and "removed" in stderr, stderr
    assert not list(tmp_path.glob("q.tmp-*")) and not out.exists()


def test_quantize_refuses_repeated_text(tmp_path):
    """Calibration text of one line repeated: recall@10 would be met by any model; refused."""
    calib = tmp_path / "same.txt"
    calib.write_text("the same sentence again\n" * 200)
    r = run("quantize", "--model", MODEL, "--calib", calib, "--holdout", 50, "--out", tmp_path / "o")
    assert r.returncode == 1 and "different texts" in r.stderr, r.stderr
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob("o.tmp-*"))


def test_quantize_will_not_overwrite(tmp_path):
    (tmp_path / "o").mkdir()
    r = run("quantize", "--model", MODEL, "--calib", CALIB, "--out", tmp_path / "o")
    assert r.returncode == 1 and "exists" in r.stderr


def test_validate_bad_input(tmp_path):
    r = run("validate", "--model", MODEL, "--reference", MODEL)
    assert r.returncode == 2 and "--corpus" in r.stderr
    r = run("validate", "--model", MODEL, "--reference", MODEL, "--corpus", tmp_path / "none.txt")
    assert r.returncode == 1 and "none.txt" in r.stderr
    (tmp_path / "empty.txt").write_text("")
    r = run("validate", "--model", MODEL, "--reference", MODEL, "--corpus", tmp_path / "empty.txt")
    assert r.returncode == 1 and "no texts" in r.stderr
    r = run("validate", "--model", MODEL, "--reference", MODEL, "--corpus", EVAL, "--gate", "mean=high")
    assert r.returncode == 2 and "--gate" in r.stderr
