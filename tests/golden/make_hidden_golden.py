#!/usr/bin/env python3
"""Golden last hidden states of all-MiniLM-L6-v2, made by the reference: HF transformers on torch.

Run through tests/golden/make_hidden_golden.sh (it builds .venv-golden and sets
HF_HUB_OFFLINE=1); CI never runs this. tests/unit/test_engine.c reads what it writes:

  tests/golden/hidden_all-MiniLM-L6-v2.bin        the token ids and the hidden states, all
      little-endian, in this order:
        char    magic[4]       "AKEH"
        int32   version        1
        int32   n              sequences
        int32   T              tokens, all sequences together
        int32   hidden         floats per token
        int32   cu_seqlens[n + 1]   0, then where each sequence ends (ake_engine_embed's packing)
        int32   ids[T]         token ids from the model's tokenizer ([CLS] and [SEP] included)
        float32 states[T, hidden]   AutoModel(...)(ids).last_hidden_state, row-major, as computed
      Binary float32 (not text) keeps every value exact and the file small (~1.5 KB per token).
  tests/golden/hidden_all-MiniLM-L6-v2.meta.json  the texts, versions and settings.

Each text is run alone (batch of one: no padding, no attention mask at work), so the reference
is exact. The script checks the reference against itself: mean pooling + L2 normalization of
these rows must give sentence-transformers' embedding of the same text (the relation the engine's
ake_engine_embed_tokens promises against ake_engine_embed).
"""
import argparse
import json
import os
import platform
import struct
import sys

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_MODEL = os.path.join(REPO, "models", "all-MiniLM-L6-v2")
DEFAULT_OUT = os.path.join(REPO, "tests", "golden")
MAGIC = b"AKEH"
VERSION = 1

# A handful of texts of mixed lengths and scripts (about 100 tokens in all: the file stays
# under 200 KB): the empty text ([CLS] [SEP] only), one word, plain sentences, accents, CJK,
# emoji (an [UNK]) and one long sentence.
TEXTS = [
    "",
    "hello",
    "A man is eating food.",
    "The quick brown fox jumps over the lazy dog.",
    "Café au lait à la crème brûlée",
    "你好，世界",
    "Ünïcödé, emoji 🙂 and CJK 中文 tokens go through the same WordPiece path.",
    "Paris is the capital and most populous city of France, with an estimated population of "
    "2,102,650 residents in January 2023 in an area of more than 105 km2.",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--out-dir", default=DEFAULT_OUT)
    args = ap.parse_args()

    import sentence_transformers
    import tokenizers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    name = os.path.basename(os.path.normpath(args.model))
    with open(os.path.join(args.model, "sentence_bert_config.json"), encoding="utf-8") as f:
        max_seq = json.load(f)["max_seq_length"]
    tok = transformers.AutoTokenizer.from_pretrained(args.model)
    model = transformers.AutoModel.from_pretrained(args.model, dtype=torch.float32)
    model.eval()
    st = SentenceTransformer(args.model, device="cpu")
    st.eval()

    cu, ids, states = [0], [], []
    worst = 0.0
    with torch.no_grad():
        for i, text in enumerate(TEXTS):
            enc = tok([text], truncation=True, max_length=max_seq, return_tensors="pt")
            h = model(**enc).last_hidden_state[0].numpy()
            assert h.dtype == np.float32 and h.shape[0] == enc["input_ids"].shape[1], (i, h.shape)
            ids.extend(int(t) for t in enc["input_ids"][0])
            states.append(h)
            cu.append(len(ids))
            # the reference agrees with itself: mean + normalize of these rows is its embedding
            st_ids = st.preprocess([text])["input_ids"][0].tolist()
            assert st_ids == enc["input_ids"][0].tolist(), f"text {i}: tokenizers disagree"
            emb = st.encode([text], batch_size=1, convert_to_numpy=True, show_progress_bar=False)[0]
            mean = h.astype(np.float64).mean(axis=0)
            diff = float(np.max(np.abs(mean / np.linalg.norm(mean) - emb)))
            assert diff < 1e-6, f"text {i}: mean of the hidden rows vs sentence-transformers: {diff}"
            worst = max(worst, diff)
    states = np.concatenate(states).astype("<f4")
    n, T, hidden = len(TEXTS), len(ids), states.shape[1]

    path = os.path.join(args.out_dir, f"hidden_{name}.bin")
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<4i", VERSION, n, T, hidden))
        f.write(np.asarray(cu, dtype="<i4").tobytes())
        f.write(np.asarray(ids, dtype="<i4").tobytes())
        f.write(states.tobytes())
    meta = {
        "model": name,
        "model_dir": os.path.relpath(args.model, REPO),
        "reference": "transformers.AutoModel.from_pretrained(model_dir)(**AutoTokenizer(model_dir)"
                     "([text], truncation=True, max_length=max_seq_length)).last_hidden_state, "
                     "one text per call, fp32, CPU",
        "format": f"{os.path.basename(path)}: see tests/golden/make_hidden_golden.py",
        "texts": TEXTS,
        "n_tokens": [cu[i + 1] - cu[i] for i in range(n)],
        "tokens": T,
        "hidden": hidden,
        "max_seq_length": max_seq,
        "check": "mean over a text's rows, L2-normalized, equals sentence-transformers' encode() "
                 f"within 1e-6 (max |diff| {worst:.2g})",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "numpy": np.__version__,
        },
        "torch_num_threads": torch.get_num_threads(),
        "cpu": _cpu_model(),
    }
    with open(os.path.join(args.out_dir, f"hidden_{name}.meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {n} texts, {T} tokens x {hidden} to {os.path.relpath(path, REPO)} "
          f"({os.path.getsize(path)} bytes)", file=sys.stderr)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
