"""`akidb-embed import-onnx`: the real paraphrase-MiniLM-L3-v2 ONNX export against ONNX Runtime's
own output, tiny hand-written encoders in each graph form the importer accepts (every weight
checked in place), and refusals of hostile or foreign files with a message naming the problem.

Golden file: tests/golden/onnx_golden_paraphrase-MiniLM-L3-v2.jsonl, made by
tests/golden/make_onnx_golden.py (ONNX Runtime; never run in CI). The ONNX file comes from
scripts/setup (models/paraphrase-MiniLM-L3-v2.onnx). Tiny encoders: tests/py/onnx_build.py.
Refusals run on the optimized binary and, when built, the ASan+UBSan one (build-san/), whose
reports would turn a memory error into a failure.
"""
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import onnx_build as ob

ROOT = Path(__file__).resolve().parents[2]
TOKENIZER = ROOT / "models" / "all-MiniLM-L6-v2"
ONNX = ROOT / "models" / "paraphrase-MiniLM-L3-v2.onnx"
GOLDEN = ROOT / "tests" / "golden" / "onnx_golden_paraphrase-MiniLM-L3-v2.jsonl"
BIN = os.environ.get("AKE_BIN", "build/akidb-embed")
BINS = [b for b in (BIN, "build-san/akidb-embed") if (ROOT / b).exists()]
SAN_ENV = dict(os.environ, ASAN_OPTIONS="abort_on_error=0:exitcode=99", UBSAN_OPTIONS="halt_on_error=1:exitcode=99")
COS_MIN = 0.99999


def run(binary, args, stdin=None):
    return subprocess.run([str(ROOT / binary), *map(str, args)], input=stdin, capture_output=True, env=SAN_ENV,
                          timeout=300, cwd=ROOT)


def import_onnx(binary, onnx, out, *extra, tokenizer=TOKENIZER):
    args = ["import-onnx", onnx, "--out", out, *extra]
    if tokenizer is not None:
        args += ["--tokenizer-from", tokenizer]
    return run(binary, args)


def assert_refused(res, *words, code=1):
    err = res.stderr.decode(errors="replace")
    assert res.returncode == code, (res.returncode, err)
    assert err.startswith("akidb-embed import-onnx: "), err
    assert err.count("\n") == 1, f"not one line: {err!r}"
    for w in words:
        assert w in err, f"{w!r} not in {err!r}"
    assert "Sanitizer" not in err and "runtime error" not in err, err


def read_safetensors(path):
    """name -> float32 array, from a safetensors file of F32 tensors."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", (name, t["dtype"])
        b, e = t["data_offsets"]
        out[name] = np.frombuffer(data[base + b:base + e], dtype="<f4").reshape(t["shape"])
    return out


def embed(folder, texts):
    stdin = "".join(json.dumps(t) + "\n" for t in texts).encode()
    res = run(BIN, ["embed", "--model", folder, "--jsonl"], stdin=stdin)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    return np.array([json.loads(line) for line in res.stdout.decode().splitlines()], dtype=np.float64)


# ---- the real model against ONNX Runtime ----------------------------------------------------

@pytest.fixture(scope="module")
def real_folder(tmp_path_factory):
    if not ONNX.exists():
        pytest.fail(f"{ONNX} is missing: run scripts/setup")
    out = tmp_path_factory.mktemp("l3") / "paraphrase-MiniLM-L3-v2"
    res = import_onnx(BIN, ONNX, out, "--pooling", "mean", "--max-seq-length", "128")
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    assert "3 layers, hidden 384, 12 heads, intermediate 1536, vocab 30522, mean pooling" in res.stdout.decode()
    return out


def test_real_onnx_matches_onnxruntime(real_folder):
    lines = GOLDEN.read_text(encoding="utf-8").splitlines()
    meta = json.loads(lines[0])["meta"]
    rows = [json.loads(line) for line in lines[1:]]
    assert len(rows) == meta["count"] >= 200 and meta["count_truncated_at_max_seq_length"] >= 1
    got = embed(real_folder, [r["text"] for r in rows])
    want = np.array([r["embedding"] for r in rows], dtype=np.float64)
    assert got.shape == want.shape == (len(rows), 384)
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    worst = int(np.argmin(cos))
    print(f"import-onnx vs ONNX Runtime on {len(rows)} texts: 1 - cosine max {1 - cos.min():.1e}, "
          f"mean {1 - cos.mean():.1e}; max |diff| {np.abs(got - want).max():.2e}")
    assert cos.min() >= COS_MIN, f"text {worst} {rows[worst]['text'][:60]!r}: cosine {cos[worst]}"


def test_real_folder_files(real_folder):
    cfg = json.loads((real_folder / "config.json").read_text())
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"], cfg["intermediate_size"],
            cfg["vocab_size"], cfg["max_position_embeddings"], cfg["type_vocab_size"], cfg["layer_norm_eps"]) == \
        (3, 384, 12, 1536, 30522, 512, 2, 1e-12)
    assert json.loads((real_folder / "sentence_bert_config.json").read_text())["max_seq_length"] == 128
    modules = [m["type"].rsplit(".", 1)[1] for m in json.loads((real_folder / "modules.json").read_text())]
    assert modules == ["Transformer", "Pooling"]
    assert not (real_folder / "2_Normalize").exists()
    assert (real_folder / "vocab.txt").read_bytes() == (TOKENIZER / "vocab.txt").read_bytes()


# ---- tiny encoders: every weight where the loader expects it --------------------------------

VARIANTS = {
    "layernorm-op, MatMul weights, heads from Concat": dict(),
    "decomposed LayerNorm, Transpose weights, heads from a constant, bert. prefix":
        dict(ln="decomposed", weights="transpose", heads_form="const", prefix="bert."),
    "no prefix, one layer, 4 heads": dict(prefix="", layers=1, hidden=16, heads=4, inter=32),
}


@pytest.mark.parametrize("kw", VARIANTS.values(), ids=VARIANTS.keys())
def test_tiny_weights_land_in_place(tmp_path, kw):
    data, weights = ob.bert(vocab=30522, **kw)
    (tmp_path / "tiny.onnx").write_bytes(data)
    out = tmp_path / "out"
    res = import_onnx(BIN, tmp_path / "tiny.onnx", out, "--pooling", "cls", "--normalize", "--max-seq-length", "8")
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    got = read_safetensors(out / "model.safetensors")
    assert sorted(got) == sorted(weights)
    for name, want in weights.items():
        assert np.array_equal(got[name], want), name
    cfg = json.loads((out / "config.json").read_text())
    hidden = kw.get("hidden", 8)
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]) == \
        (kw.get("layers", 2), hidden, kw.get("heads", 2), 1e-12)
    assert json.loads((out / "1_Pooling" / "config.json").read_text())["pooling_mode_cls_token"] is True
    vec = embed(out, ["hello world"])
    assert vec.shape == (1, hidden) and abs(np.linalg.norm(vec) - 1) < 1e-5


def test_heads_option_when_the_graph_does_not_say(tmp_path):
    (tmp_path / "m.onnx").write_bytes(ob.bert(vocab=30522, heads_form="none", layers=1)[0])
    assert_refused(import_onnx(BIN, tmp_path / "m.onnx", tmp_path / "a"), "--heads")
    res = import_onnx(BIN, tmp_path / "m.onnx", tmp_path / "b", "--heads", "4")
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    assert json.loads((tmp_path / "b" / "config.json").read_text())["num_attention_heads"] == 4


# ---- refusals ---------------------------------------------------------------------------------

def _truncated_real(tmp):
    with open(ONNX, "rb") as f:
        return f.read(1 << 20)


REFUSALS = {
    "truncated real file": (_truncated_real, [], ["does not parse"]),
    "empty file": (lambda tmp: b"", [], ["empty"]),
    "not a BERT graph": (lambda tmp: ob.not_bert(), [], ["not a BERT encoder", "embeddings.word_embeddings.weight"]),
    "tanh GELU": (lambda tmp: ob.bert(vocab=30522, act="tanh", layers=1)[0], [], ["tanh approximation"]),
    "ReLU": (lambda tmp: ob.bert(vocab=30522, act="relu", layers=1)[0], [], ["not GELU"]),
    "missing bias": (lambda tmp: ob.bert(vocab=30522, layers=1, drop={"encoder.layer.0.output.dense.bias"})[0], [],
                     ["encoder.layer.0.output.dense.bias"]),
    "heads disagree": (lambda tmp: ob.bert(vocab=30522, layers=1)[0], ["--heads", "4"], ["2 heads", "4"]),
    "vocab smaller than the tokenizer": (lambda tmp: ob.bert(vocab=32, layers=1)[0], [], ["30522 tokens", "32 rows"]),
    "max-seq-length over the positions": (lambda tmp: ob.bert(vocab=30522, layers=1)[0], ["--max-seq-length", "17"],
                                          ["max_seq_length 17", "1..16"]),
    "huge declared dims": (lambda tmp: ob.model(ob.graph([], [ob.tensor("embeddings.word_embeddings.weight",
                                                                        [1 << 40, 1 << 40], ob.FLOAT, raw=b"\0" * 8)],
                                                         [], [])), [], ["dim 1 = 1099511627776"]),
    "raw_data shorter than its dims": (lambda tmp: ob.model(ob.graph([], [ob.tensor(
        "embeddings.word_embeddings.weight", [32, 8], ob.FLOAT, raw=b"\0" * 100)], [], [])), [], ["holds 100 bytes"]),
    "wrong wire type": (lambda tmp: ob.f_varint(1, 8) + ob.f_varint(7, 5), [], ["does not parse"]),
    "external data": (lambda tmp: ob.model(ob.graph([], [ob.tensor("embeddings.word_embeddings.weight", [32, 8],
                                                                   ob.FLOAT, external={"location": "w.bin"})],
                                                    [], [])), [], ["external file"]),
}


@pytest.mark.parametrize("binary", BINS)
@pytest.mark.parametrize("case", REFUSALS.keys())
def test_refusals(tmp_path, binary, case):
    make, extra, words = REFUSALS[case]
    (tmp_path / "m.onnx").write_bytes(make(tmp_path))
    assert_refused(import_onnx(binary, tmp_path / "m.onnx", tmp_path / "out", *extra), *words)
    assert not (tmp_path / "out").exists(), "a refused import wrote its folder"


@pytest.mark.parametrize("binary", BINS)
def test_usage_errors(tmp_path, binary):
    tiny = tmp_path / "m.onnx"
    tiny.write_bytes(ob.bert(vocab=30522, layers=1)[0])
    assert_refused(import_onnx(binary, tiny, tmp_path / "o", tokenizer=None), "--tokenizer-from", code=2)
    assert_refused(import_onnx(binary, tiny, tmp_path / "o", "--pooling", "sum"), "--pooling", code=2)
    assert_refused(run(binary, ["import-onnx", "--tokenizer-from", TOKENIZER, "--out", tmp_path / "o"]),
                   "one ONNX file", code=2)
    assert_refused(import_onnx(binary, tmp_path / "absent.onnx", tmp_path / "o"), "absent.onnx")
    (tmp_path / "notok").mkdir()
    assert_refused(import_onnx(binary, tiny, tmp_path / "o", tokenizer=tmp_path / "notok"),
                   "neither tokenizer.json nor vocab.txt")
    assert not (tmp_path / "o").exists()
    res = run(binary, ["import-onnx", "--help"])
    assert res.returncode == 0 and b"--tokenizer-from" in res.stdout


def test_out_must_be_new_or_empty(tmp_path):
    """--out an existing model folder (here the --tokenizer-from folder itself) is refused and
    left as it was; an empty folder is fine."""
    tiny = tmp_path / "m.onnx"
    tiny.write_bytes(ob.bert(vocab=30522, layers=1)[0])
    same = tmp_path / "same"
    same.mkdir()
    for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        if os.path.exists(os.path.join(TOKENIZER, f)):
            shutil.copy(os.path.join(TOKENIZER, f), same / f)
    before = {p.name: p.read_bytes() for p in same.iterdir()}
    assert_refused(import_onnx(BIN, tiny, same, tokenizer=same), "exists and is not empty")
    assert {p.name: p.read_bytes() for p in same.iterdir()} == before
    (tmp_path / "empty").mkdir()
    assert import_onnx(BIN, tiny, tmp_path / "empty").returncode == 0
