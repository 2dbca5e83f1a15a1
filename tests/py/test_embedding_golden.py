"""Golden test of `akidb-embed embed` against sentence-transformers, plus CLI contract tests.

Golden file: tests/golden/embeddings_all-MiniLM-L6-v2.jsonl, made by
tests/golden/make_embedding_golden.sh (sentence-transformers on torch; never run in CI).
This file needs only numpy, pytest and tokenizers (the .venv), and the built CLI:
AKE_BIN (default build/akidb-embed), run from anywhere.

CLI contract used here:
  akidb-embed embed [--model DIR] [--input FILE] [--output FILE] [--jsonl] [--batch-size N]
                    [--threads N]
  plain mode: one text per input line (an empty line is an empty text);
  --jsonl: each input line is one JSON string literal;
  output: one JSON array of floats per input line, in input order.
"""
import json
import os
import subprocess

import numpy as np
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(REPO, "models", "all-MiniLM-L6-v2")
GOLDEN = os.path.join(REPO, "tests", "golden", "embeddings_all-MiniLM-L6-v2.jsonl")
GOLDEN_META = os.path.join(REPO, "tests", "golden", "embeddings_all-MiniLM-L6-v2.meta.json")
AKE_BIN = os.path.abspath(os.path.join(REPO, os.environ.get("AKE_BIN", "build/akidb-embed")))
MAX_SEQ = 256
DIM = 384

COS_MIN = 0.99999       # per text, vs sentence-transformers
ABS_MAX = 1e-4          # max |diff| per text, vs sentence-transformers
BATCH_ABS_MAX = 1e-6    # max |diff| between a batched run and one sequence per engine call
TIMEOUT = 600


def _load_golden():
    with open(GOLDEN, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


GOLDEN_ROWS = _load_golden()


def _short(text, n=80):
    r = repr(text)
    return r if len(r) <= n else r[: n - 3] + "..."


def _require_bin():
    if not (os.path.isfile(AKE_BIN) and os.access(AKE_BIN, os.X_OK)):
        pytest.fail(f"CLI binary {AKE_BIN} not found or not executable: build it with `make` "
                    f"(or point AKE_BIN at it)")


def run_cli(args, stdin_bytes, timeout=TIMEOUT):
    """Runs `akidb-embed <args>` with stdin_bytes; returns the CompletedProcess (bytes)."""
    _require_bin()
    return subprocess.run([AKE_BIN, *args], input=stdin_bytes, capture_output=True,
                          timeout=timeout, cwd=REPO)


def parse_vectors(stdout_bytes):
    """One JSON array of floats per line -> float64 array [n, dim]."""
    lines = stdout_bytes.decode("utf-8").splitlines()
    vecs = []
    for k, line in enumerate(lines):
        v = json.loads(line)
        assert isinstance(v, list) and all(isinstance(x, (int, float)) for x in v), \
            f"output line {k} is not a JSON array of numbers: {line[:80]!r}"
        vecs.append(v)
    return np.asarray(vecs, dtype=np.float64).reshape(len(vecs), -1)


def embed_jsonl(texts, extra_args=()):
    """Embeds texts through --jsonl in one process; returns float64 [len(texts), dim]."""
    stdin = "".join(json.dumps(t) + "\n" for t in texts).encode("utf-8")
    p = run_cli(["embed", "--model", MODEL, "--jsonl", *extra_args], stdin)
    assert p.returncode == 0, \
        f"akidb-embed embed exited {p.returncode}: {p.stderr.decode(errors='replace')[-2000:]}"
    vecs = parse_vectors(p.stdout)
    assert vecs.shape == (len(texts), DIM), \
        f"expected {len(texts)} vectors of {DIM} floats, got shape {vecs.shape}"
    return vecs


def _rows_for_batch_test(n=40):
    """About n golden rows of mixed lengths: evenly spaced over the rows sorted by n_tokens,
    then interleaved long/short so each engine batch mixes lengths."""
    order = sorted(range(len(GOLDEN_ROWS)), key=lambda i: (GOLDEN_ROWS[i]["n_tokens"], i))
    picked = sorted({order[round(k * (len(order) - 1) / (n - 1))] for k in range(n)})
    by_len = sorted(picked, key=lambda i: GOLDEN_ROWS[i]["n_tokens"])
    mixed = []
    while by_len:
        mixed.append(by_len.pop())
        if by_len:
            mixed.append(by_len.pop(0))
    return mixed


# ---------------------------------------------------------------------------------------------
# The golden file itself (no binary needed).

def test_golden_file_is_consistent():
    rows = GOLDEN_ROWS
    assert len(rows) >= 220
    texts = [r["text"] for r in rows]
    assert len(set(texts)) == len(texts), "duplicate golden texts"
    assert "" in texts
    n_trunc = sum(r["n_tokens"] == MAX_SEQ for r in rows)
    assert n_trunc >= 20, f"only {n_trunc} golden texts reach {MAX_SEQ} tokens"
    assert sum(len(t) >= 2000 for t in texts) >= 5
    for i, r in enumerate(rows):
        e = np.asarray(r["embedding"], dtype=np.float64)
        assert e.shape == (DIM,), f"golden #{i}: embedding of {e.shape}"
        assert np.all(np.isfinite(e)), f"golden #{i}: non-finite value"
        assert abs(np.linalg.norm(e) - 1.0) < 1e-5, f"golden #{i}: norm {np.linalg.norm(e)}"
        assert 2 <= r["n_tokens"] <= MAX_SEQ, f"golden #{i}: n_tokens {r['n_tokens']}"
    with open(GOLDEN_META, encoding="utf-8") as f:
        meta = json.load(f)
    assert meta["count"] == len(rows) and meta["max_seq_length"] == MAX_SEQ
    assert meta["dimension"] == DIM


def test_golden_n_tokens_match_tokenizers():
    """n_tokens (from sentence-transformers) == HF tokenizers on tokenizer.json truncated at
    max_seq_length 256 from sentence_bert_config.json (tokenizer.json itself says 128)."""
    tokenizers = pytest.importorskip("tokenizers")
    with open(os.path.join(MODEL, "sentence_bert_config.json"), encoding="utf-8") as f:
        assert json.load(f)["max_seq_length"] == MAX_SEQ
    tok = tokenizers.Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(MAX_SEQ)
    bad = []
    for i, r in enumerate(GOLDEN_ROWS):
        n = len(tok.encode(r["text"]).ids)
        if n != r["n_tokens"]:
            bad.append(f"#{i} {_short(r['text'])}: golden {r['n_tokens']}, tokenizers {n}")
    assert not bad, "n_tokens disagree:\n" + "\n".join(bad[:20])


# ---------------------------------------------------------------------------------------------
# Golden: every text, one CLI run.

@pytest.fixture(scope="module")
def cli_golden_vectors():
    return embed_jsonl([r["text"] for r in GOLDEN_ROWS])


@pytest.mark.parametrize("idx", range(len(GOLDEN_ROWS)), ids=lambda i: f"{i:03d}")
def test_embedding_matches_golden(cli_golden_vectors, idx):
    row = GOLDEN_ROWS[idx]
    ref = np.asarray(row["embedding"], dtype=np.float64)
    got = cli_golden_vectors[idx]
    cos = float(got @ ref / (np.linalg.norm(got) * np.linalg.norm(ref)))
    maxdiff = float(np.max(np.abs(got - ref)))
    where = f"golden text #{idx} ({row['n_tokens']} tokens) {_short(row['text'])}"
    assert cos >= COS_MIN, f"{where}: cosine {cos:.8f} < {COS_MIN}"
    assert maxdiff <= ABS_MAX, f"{where}: max |diff| {maxdiff:.3g} > {ABS_MAX}"


# ---------------------------------------------------------------------------------------------
# Batch invariance: batching must not change a vector.

@pytest.mark.parametrize("batch_size", [1, 5])
def test_batch_invariance(batch_size):
    idx = _rows_for_batch_test()
    texts = [GOLDEN_ROWS[i]["text"] for i in idx]
    batched = embed_jsonl(texts)
    small = embed_jsonl(texts, ["--batch-size", str(batch_size)])
    diff = np.max(np.abs(batched - small), axis=1)
    worst = int(np.argmax(diff))
    assert diff[worst] <= BATCH_ABS_MAX, (
        f"--batch-size {batch_size} vs default batching: max |diff| {diff[worst]:.3g} > "
        f"{BATCH_ABS_MAX} at golden text #{idx[worst]} {_short(texts[worst])}")


def test_plain_mode_and_files_match_jsonl(tmp_path):
    """Plain mode (one text per line) through --input/--output equals --jsonl on stdin."""
    texts = [r["text"] for r in GOLDEN_ROWS[:60]
             if "\n" not in r["text"] and "\r" not in r["text"]]
    inp = tmp_path / "in.txt"
    out = tmp_path / "out.jsonl"
    inp.write_bytes("".join(t + "\n" for t in texts).encode("utf-8"))
    p = run_cli(["embed", "--model", MODEL, "--input", str(inp), "--output", str(out)], b"")
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    plain = parse_vectors(out.read_bytes())
    assert plain.shape == (len(texts), DIM)
    ref = embed_jsonl(texts)
    assert np.max(np.abs(plain - ref)) <= BATCH_ABS_MAX


# ---------------------------------------------------------------------------------------------
# CLI errors and edge input.

def test_missing_model_dir_fails(tmp_path):
    missing = tmp_path / "no-such-model"
    p = run_cli(["embed", "--model", str(missing)], b"hello\n")
    assert p.returncode != 0
    err = p.stderr.decode(errors="replace")
    assert err.strip(), "no message on stderr"
    assert "no-such-model" in err, f"stderr does not name the model dir: {err!r}"
    assert p.stdout == b""


def test_invalid_utf8_fails():
    p = run_cli(["embed", "--model", MODEL], b"\xff\xfe abc\n")
    assert p.returncode != 0
    err = p.stderr.decode(errors="replace")
    assert "utf-8" in err.lower() or "utf8" in err.lower(), \
        f"stderr does not mention UTF-8: {err!r}"


def test_empty_input_gives_no_output():
    p = run_cli(["embed", "--model", MODEL], b"")
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert p.stdout == b""


def test_empty_line_is_one_vector():
    p = run_cli(["embed", "--model", MODEL], b"\n")
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    vecs = parse_vectors(p.stdout)
    assert vecs.shape == (1, DIM)
    ref = np.asarray(next(r for r in GOLDEN_ROWS if r["text"] == "")["embedding"])
    assert np.max(np.abs(vecs[0] - ref)) <= ABS_MAX


@pytest.mark.parametrize("line", [b"123", b'{"text": "hello"}', b'["hello"]', b"null",
                                  b"true", b'"unterminated', b"hello"],
                         ids=["number", "object", "array", "null", "bool", "unterminated",
                              "bare-text"])
def test_jsonl_rejects_non_string(line):
    p = run_cli(["embed", "--model", MODEL, "--jsonl"], b'"fine"\n' + line + b"\n")
    assert p.returncode != 0, f"accepted JSONL line {line!r}"
    err = p.stderr.decode(errors="replace").lower()
    assert "json" in err or "string" in err, f"unclear message for {line!r}: {err!r}"
