#!/usr/bin/env python3
"""Golden sentence embeddings of paraphrase-MiniLM-L3-v2 made by ONNX Runtime on the ONNX file
itself, the reference for `akidb-embed import-onnx` (tests/py/test_import_onnx.py).

Run with the golden venv (it has onnxruntime and tokenizers), after scripts/setup has fetched
models/paraphrase-MiniLM-L3-v2.onnx:

    $(bash tests/golden/golden_venv.sh) tests/golden/make_onnx_golden.py

Texts: the first N_LINES lines of tests/golden/quant_eval.txt, then N_LONG texts of 24
consecutive later lines joined by spaces (longer than 128 tokens, to cover truncation).
Tokens: the uncased WordPiece tokenizer of models/all-MiniLM-L6-v2 (the vocabulary
paraphrase-MiniLM-L3-v2 was trained with), truncated to MAX_SEQ = 128 tokens with [CLS] and
[SEP] included, as sentence-transformers' max_seq_length does; one text per run (no padding).
Embedding: the graph's last hidden state (its output 'onnx::Shape_422', [1, seq, 384]),
mean-pooled over the attention mask in float64 as sentence-transformers' Pooling module does
(sum of the masked token vectors / max(token count, 1e-9)); no normalization. The graph's own
pooled output ('461') is checked to agree with it.

Writes tests/golden/onnx_golden_paraphrase-MiniLM-L3-v2.jsonl, one line per text:
    {"text": str, "n_tokens": int, "embedding": [384 floats, 7 significant digits]}
and its first line is a header: {"meta": {...}} (versions, settings, counts).
7 significant digits keep the file near 1 MB; their rounding (< 5e-7 relative) moves a
cosine by far less than the test's tolerance (1 - 0.99999).
"""
import argparse
import json
import os
import platform

import numpy as np
import onnxruntime as ort
import tokenizers

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ONNX = os.path.join(REPO, "models", "paraphrase-MiniLM-L3-v2.onnx")
TOKENIZER = os.path.join(REPO, "models", "all-MiniLM-L6-v2", "tokenizer.json")
TEXTS = os.path.join(REPO, "tests", "golden", "quant_eval.txt")
OUT = os.path.join(REPO, "tests", "golden", "onnx_golden_paraphrase-MiniLM-L3-v2.jsonl")
N_LINES = 220
N_LONG = 4
LONG_SPAN = 24
MAX_SEQ = 128
HIDDEN_OUT = "onnx::Shape_422"
POOLED_OUT = "461"


def texts():
    with open(TEXTS, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    out = lines[:N_LINES]
    for i in range(N_LONG):
        start = N_LINES + i * LONG_SPAN
        out.append(" ".join(lines[start:start + LONG_SPAN]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", default=ONNX)
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()

    tok = tokenizers.Tokenizer.from_file(TOKENIZER)
    tok.no_padding()
    tok.enable_truncation(MAX_SEQ)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(args.onnx, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    assert names == ["input_ids", "attention_mask"], names

    rows, n_truncated, max_pool_diff = [], 0, 0.0
    for text in texts():
        enc = tok.encode(text)
        ids = np.array([enc.ids], dtype=np.int64)
        mask = np.array([enc.attention_mask], dtype=np.int64)
        hidden, pooled = sess.run([HIDDEN_OUT, POOLED_OUT], {"input_ids": ids, "attention_mask": mask})
        m = mask[0].astype(np.float64)[:, None]
        emb = (hidden[0].astype(np.float64) * m).sum(0) / max(m.sum(), 1e-9)
        max_pool_diff = max(max_pool_diff, float(np.abs(emb - pooled[0]).max()))
        n_truncated += len(enc.overflowing) > 0
        rows.append({"text": text, "n_tokens": len(enc.ids),
                     "embedding": [float(f"{v:.7g}") for v in emb.astype(np.float32)]})
    assert max_pool_diff < 1e-5, f"the graph's own mean pooling differs from ours by {max_pool_diff}"
    assert n_truncated >= 1, "no text reaches max_seq_length"

    meta = {
        "model": "paraphrase-MiniLM-L3-v2",
        "onnx": os.path.relpath(args.onnx, REPO),
        "tokenizer": os.path.relpath(TOKENIZER, REPO),
        "reference": f"onnxruntime CPU, output {HIDDEN_OUT!r} mean-pooled over attention_mask in float64",
        "max_seq_length": MAX_SEQ,
        "pooling": "mean",
        "normalize": False,
        "dimension": len(rows[0]["embedding"]),
        "count": len(rows),
        "count_truncated_at_max_seq_length": n_truncated,
        "max_abs_diff_vs_graph_pooled_output": max_pool_diff,
        "float_format": "float32 printed with 7 significant digits",
        "versions": {"python": platform.python_version(), "onnxruntime": ort.__version__,
                     "tokenizers": tokenizers.__version__, "numpy": np.__version__},
    }
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(json.dumps({"meta": meta}) + "\n")
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}: {len(rows)} texts, {n_truncated} truncated at {MAX_SEQ} tokens, "
          f"pooled-output check {max_pool_diff:.2e}")


if __name__ == "__main__":
    main()
