"""Differential tests of token spans and decode against HF `tokenizers`, through the CLI.

    AKE_BIN=build/akidb-embed .venv/bin/python -m pytest -q tests/py/test_tokenizer_spans.py

`akidb-embed tokenize --spans` prints, per text, the ids and for each token [start, stop,
special] in bytes of the UTF-8 text; HF's Python Encoding.offsets are code points, so they are
converted to bytes of the same text before comparing (the Rust crate's own offsets are bytes:
the conversion is exact). `tokenize --decode [--skip-special-tokens]` is compared with
Tokenizer.decode. Texts: the tokenizer golden inputs, random and hostile texts (the generator of
test_tokenizer_fuzz.py plus pieces aimed at the normalizer's alignments), with truncation from
the right and the left, on the model's tokenizer and on one with extra added tokens (lstrip,
rstrip, single_word, normalized). A random seed is printed; AKE_FUZZ_SEED replays it.
"""
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from test_tokenizer_fuzz import AKE_BIN, MODEL, ROOT, _bin_path, _compat_ranges, random_text

N_RANDOM = 6000


@pytest.fixture(scope="module")
def akebin():
    p = _bin_path()
    if not p.exists():
        pytest.fail(f"{p} does not exist: build it (make) or point AKE_BIN at the CLI")
    return str(p)


@pytest.fixture(scope="module")
def seed():
    s = int(os.environ.get("AKE_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    print(f"AKE_FUZZ_SEED={s}")
    return s


def load_hf(model_dir):
    t = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    t.no_padding()
    t.no_truncation()
    return t


@pytest.fixture(scope="module")
def hf():
    return load_hf(MODEL)


# Added tokens whose contents are already in the model's vocab, so that HF gives them ids the
# model has (the CLI loads the model too, and refuses a tokenizer larger than its embedding).
EXTRA_ADDED = [
    {"id": 7592, "content": "hello", "single_word": False, "lstrip": True, "rstrip": True, "normalized": False,
     "special": False},
    {"id": 29379, "content": "foo", "single_word": True, "lstrip": False, "rstrip": False, "normalized": False,
     "special": False},
    {"id": 12431, "content": "ecole", "single_word": False, "lstrip": True, "rstrip": True, "normalized": True,
     "special": False},
    {"id": 9960, "content": "istanbul", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True,
     "special": False},
    {"id": 1864, "content": "\u65e5", "single_word": False, "lstrip": False, "rstrip": True, "normalized": True,
     "special": False},
    {"id": 15743, "content": "naive", "single_word": True, "lstrip": False, "rstrip": False, "normalized": True,
     "special": True},
]
ADDED_PIECES = ["hello", "Hello", " hello ", "foo", "foofoo", "a foo b", "ecole", "\u00c9COLE", "E\u0301cole",
                "\u00e9cole ", "\u0130STANBUL", "istanbul", "\u65e5\u672c", "\u65e5 ", "NA\u00cfVE", "naive", "naivete",
                " ", "\t", "\u3000", "\x00", "\u200b", "x", "!", "[MASK]", "[SEP]", "\u0301", "\u00df"]


@pytest.fixture(scope="module")
def added_model(tmp_path_factory):
    """A model folder whose tokenizer.json has EXTRA_ADDED; the other files are links to the model's."""
    d = tmp_path_factory.mktemp("added_model")
    for f in MODEL.iterdir():
        if f.name != "tokenizer.json":
            (d / f.name).symlink_to(f.resolve())
    spec = json.loads((MODEL / "tokenizer.json").read_text(encoding="utf-8"))
    spec["added_tokens"] += EXTRA_ADDED
    (d / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    t = load_hf(d)
    got = {t.content: i for i, t in t.get_added_tokens_decoder().items()}
    for a in EXTRA_ADDED:
        assert got[a["content"]] == a["id"], (a, got[a["content"]])
    yield d
    shutil.rmtree(d)


# ---- driving both sides --------------------------------------------------------------------------

def run_cli(akebin, model, args, lines):
    inp = ("\n".join(lines) + "\n").encode("utf-8")
    cmd = [akebin, "tokenize", "--model", str(model), *args]
    r = subprocess.run(cmd, input=inp, capture_output=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.decode(errors='replace')[:2000]}"
    out = r.stdout.decode().splitlines()
    assert len(out) == len(lines), f"{len(lines)} lines in, {len(out)} lines out"
    return [json.loads(x) for x in out]


def byte_offsets(text):
    """b[i] = byte offset of code point i of text; b[len(text)] = len in bytes."""
    b = [0]
    for ch in text:
        b.append(b[-1] + len(ch.encode("utf-8")))
    return b


def hf_spans(hf, texts, max_tokens, left):
    if max_tokens > 0:
        hf.enable_truncation(max_length=max_tokens, direction="left" if left else "right")
    else:
        hf.no_truncation()
    try:
        encs = hf.encode_batch(texts)
    finally:
        hf.no_truncation()
    out = []
    for text, e in zip(texts, encs):
        b = byte_offsets(text)
        spans = [[0, 0, 1] if m else [b[s], b[t], 0] for (s, t), m in zip(e.offsets, e.special_tokens_mask)]
        out.append({"ids": e.ids, "spans": spans})
    return out


def compare_spans(hf, akebin, model, texts, max_tokens=0, left=False, note=""):
    want = hf_spans(hf, texts, max_tokens, left)
    args = ["--jsonl", "--spans", "--max-tokens", str(max_tokens)] + (["--truncate-left"] if left else [])
    got = run_cli(akebin, model, args, [json.dumps(t, ensure_ascii=(i % 2 == 0)) for i, t in enumerate(texts)])
    bad = [i for i in range(len(texts)) if got[i] != want[i]]
    if bad:
        msg = [f"{len(bad)} of {len(texts)} texts differ from HF (max_tokens={max_tokens}, "
               f"{'left' if left else 'right'}) {note}"]
        for i in bad[:5]:
            g, w = got[i], want[i]
            k = next((j for j in range(min(len(g["spans"]), len(w["spans"])))
                      if g["spans"][j] != w["spans"][j] or g["ids"][j] != w["ids"][j]), None)
            msg.append(f"text {i}: {texts[i][:300]!r}\n  first difference at token {k}\n"
                       f"  hf:   {json.dumps(w)[:600]}\n  ours: {json.dumps(g)[:600]}")
        pytest.fail("\n".join(msg))
    # the comparison must have seen spans at all (max_tokens 2 keeps only [CLS] [SEP])
    if max_tokens == 0 or max_tokens > 2:
        assert sum(s[1] > s[0] for g in got for s in g["spans"] if not s[2]) > 0


def compare_decode(hf, akebin, model, id_lists, note=""):
    for skip in (False, True):
        want = [hf.decode(ids, skip_special_tokens=skip) for ids in id_lists]
        args = ["--decode"] + (["--skip-special-tokens"] if skip else [])
        got = run_cli(akebin, model, args, [json.dumps(ids) for ids in id_lists])
        bad = [i for i in range(len(id_lists)) if got[i] != want[i]]
        if bad:
            msg = [f"{len(bad)} of {len(id_lists)} decodes differ from HF (skip_special_tokens={skip}) {note}"]
            for i in bad[:5]:
                msg.append(f"ids {id_lists[i][:60]}\n  hf:   {want[i]!r}\n  ours: {got[i]!r}")
            pytest.fail("\n".join(msg))


# ---- texts ----------------------------------------------------------------------------------------

def golden_texts():
    lines = (ROOT / "tests" / "golden" / "tokenizer_golden.jsonl").read_text(encoding="ascii").splitlines()
    return [json.loads(x)["text"] for x in lines]


HOSTILE = [
    "", " ", "İ", "İİİ", "İstanbul", "DİYARBAKIR İzmir", "i\u0307", "ß ẞ", "ǅ", "ﬁ", "Ⅻ",
    "e\u0301", "cafe\u0301 naïve", "a\u0300\u0301\u0302\u0303b", "x\u0307\u0323", "x\u0323\u0307",
    "\u0301", "\u0301\u0301abc", "q\u0327\u0301 z", "\u05d0\u05b8\u05bc", "\u0915\u093c\u094d",
    "x\U0001D16D\U0001D165", "x\U0001D16D\U00016FF0\U0001D165", "a\u0301\U0001D165\u0302b", "\u1100\u1161\u11a8",
    "각", "한국어 텍스트", "\uac00\u0301",
    "日本語", "中a文b", "東京は日本の首都です。", "𠀀𠀁 𪜀", "豈 更", "漢字kanji混在mixed",
    "😀", "👍🏽", "👩‍👩‍👧‍👦", "🏳️‍🌈", "emoji😀inside", "1️⃣",
    "\x00", "a\x00b", "\x00\x00x\x00", "a\x01\x02b", "\x7f\x80\x9f", "soft\u00adhyphen", "zero\u200bwidth",
    "\ufeffBOM", "\ufffd", "a\ufffdb", "\ue000", "a\U000E0001b",
    "a  b", "a\t\t\tb", " \n\r\n leading", "trailing \t\n", "\u3000\u3000x\u2028y\u2029", "a\xa0b\u2003c",
    "x" * 100, "x" * 101, "é" * 101, "word " + "y" * 150 + " end", "a" * 99 + "é", "e\u0301" * 101,
    "[CLS] hello [SEP]", "[MASK]", "x[MASK]y", "The [MASK] sat.", "[SEP][SEP]", "[UNK]s", "[ MASK ]",
    "Hello, World! I can't believe it's not butter.", "don't won't", "$100.00 (approx.)", "e-mail: a@b.co",
    "supercalifragilisticexpialidocious", "unaffable embeddings", "ΣΊΣΥΦΟΣ Москва", "Ǆ ǅ ǆ", "ＡＢＣ１２３",
]

HOSTILE_PIECES = ["İ", "e\u0301", "\u0301", "\u0323\u0307", "\U0001D165", "\U0001D16D", "日", "本", "😀", "\x00",
                  "\x01", "\u200b", " ", "  ", "\t", "\n", "\u3000", "a", "A", "é", "É", "ß", "ǅ", "[MASK]", "[SEP]",
                  "!", ".", "'", "xyz", "\ufffd", "\u00ad", "\uac00", "\u11a8", "\u0345", "\u0f73", "\u0344"]


def hostile_random(rng, n):
    out = []
    for _ in range(n):
        out.append("".join(rng.choice(HOSTILE_PIECES) for _ in range(rng.randrange(1, 25))))
    return out


# ---- tests ----------------------------------------------------------------------------------------

def test_spans_golden_inputs(hf, akebin):
    texts = golden_texts()
    assert len(texts) > 2000
    compare_spans(hf, akebin, MODEL, texts, 0)
    for max_tokens, left in ((16, False), (16, True), (3, True), (128, True)):
        compare_spans(hf, akebin, MODEL, texts, max_tokens, left)


def test_spans_hostile(hf, akebin, seed):
    rng = random.Random(seed ^ 0x5BA5)
    texts = HOSTILE + hostile_random(rng, 3000)
    for max_tokens, left in ((0, False), (5, False), (5, True), (2, True)):
        compare_spans(hf, akebin, MODEL, texts, max_tokens, left, note=f"(AKE_FUZZ_SEED={seed})")


def test_spans_random(hf, akebin, seed):
    rng = random.Random(seed ^ 0x0FF5E7)
    compat = _compat_ranges()
    texts = [random_text(rng, compat) for _ in range(N_RANDOM)]
    compare_spans(hf, akebin, MODEL, texts, 0, note=f"(AKE_FUZZ_SEED={seed})")
    compare_spans(hf, akebin, MODEL, texts[:2000], 24, True, note=f"(AKE_FUZZ_SEED={seed})")


def test_spans_added_tokens(akebin, added_model, seed):
    hf2 = load_hf(added_model)
    rng = random.Random(seed ^ 0xADDED)
    texts = ["".join(rng.choice(ADDED_PIECES) for _ in range(rng.randrange(1, 14))) for _ in range(3000)]
    texts += ["hello", " hello ", "say hello world", "\u00c9COLE \u00e9cole", "a foo b", "foofoo", "\u0130STANBUL",
              "\u65e5\u672c\u8a9e", "NA\u00cfVE naivete"]
    compare_spans(hf2, akebin, added_model, texts, 0, note=f"(AKE_FUZZ_SEED={seed})")
    compare_spans(hf2, akebin, added_model, texts, 6, True, note=f"(AKE_FUZZ_SEED={seed})")
    compare_decode(hf2, akebin, added_model, [e.ids for e in hf2.encode_batch(texts[:500])],
                   note=f"(AKE_FUZZ_SEED={seed})")


def test_decode(hf, akebin, seed):
    rng = random.Random(seed ^ 0xDEC0DE)
    compat = _compat_ranges()
    texts = golden_texts()[:1500] + HOSTILE + [random_text(rng, compat) for _ in range(1000)]
    id_lists = [e.ids for e in hf.encode_batch(texts)]
    # and ids in any order: pieces first, punctuation and specials anywhere, every cleanup rule
    n = hf.get_vocab_size()
    id_lists += [[rng.randrange(n) for _ in range(rng.randrange(0, 30))] for _ in range(1500)]
    cleanup = [hf.token_to_id(t) for t in [".", "?", "!", ",", "'", "n", "t", "m", "s", "ve", "re", "do", "not",
                                           "[CLS]", "[SEP]", "[PAD]", "[MASK]", "##s", "##t", "a"]]
    id_lists += [[rng.choice(cleanup) for _ in range(rng.randrange(1, 20))] for _ in range(1500)]
    id_lists += [[], [hf.token_to_id("##ing")], [hf.token_to_id("[CLS]"), hf.token_to_id("##ing")]]
    compare_decode(hf, akebin, MODEL, id_lists, note=f"(AKE_FUZZ_SEED={seed})")


def test_decode_refuses_unknown_ids(hf, akebin):
    """HF drops ids it has no token for; we refuse them, naming the position (see tokenizer.h)."""
    n = hf.get_vocab_size()
    assert hf.decode([101, n, 102]) == ""  # what HF does with it (silently nothing)
    for bad in ([101, n, 102], [-1], [2**31 - 1], ["x"], [1.5]):
        r = subprocess.run([akebin, "tokenize", "--model", str(MODEL), "--decode"], input=(json.dumps(bad) + "\n").encode(),
                           capture_output=True, cwd=ROOT, timeout=60)
        assert r.returncode != 0 and r.stdout == b"", (bad, r)
        assert b"line 1" in r.stderr, r.stderr
    r = subprocess.run([akebin, "tokenize", "--model", str(MODEL), "--decode"], input=f"[101, {n}, 102]\n".encode(),
                       capture_output=True, cwd=ROOT, timeout=60)
    assert f"ids[1] = {n}".encode() in r.stderr, r.stderr
