"""Differential tests of our tokenizer against HF `tokenizers` through the CLI.

    AKE_BIN=build/akidb-embed .venv/bin/python -m pytest -q tests/py/test_tokenizer_fuzz.py

Each test feeds many texts through one `akidb-embed tokenize` process and through HF, and
fails on the first mismatches with the text (repr) and both id lists. The random texts come
from a seed printed at the start of the test (pytest shows it on failure); set AKE_FUZZ_SEED
to replay one.
"""
import json
import os
import random
import re
import subprocess
import unicodedata
from pathlib import Path

import pytest
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
MODEL = Path(os.environ.get("AKE_MODEL_DIR") or ROOT / "models" / "all-MiniLM-L6-v2")
AKE_BIN = os.environ.get("AKE_BIN") or str(ROOT / "build" / "akidb-embed")
N_FUZZ = 20_000


def _bin_path():
    p = Path(AKE_BIN)
    return p if p.is_absolute() else ROOT / p


@pytest.fixture(scope="module")
def hf():
    t = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    t.no_padding()  # the file pads to 128
    t.no_truncation()
    return t


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


def run_cli(akebin, texts, max_tokens=0, jsonl=True):
    """All texts through one `tokenize` process; returns one id list per text."""
    if jsonl:
        # half escaped (\uXXXX, surrogate pairs), half raw UTF-8: both are JSON string literals
        lines = [json.dumps(t, ensure_ascii=(i % 2 == 0)) for i, t in enumerate(texts)]
        args = ["--jsonl"]
    else:
        lines = list(texts)
        args = []
    inp = ("\n".join(lines) + "\n").encode("utf-8")
    cmd = [akebin, "tokenize", "--model", str(MODEL), *args, "--max-tokens", str(max_tokens)]
    r = subprocess.run(cmd, input=inp, capture_output=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.decode(errors='replace')[:2000]}"
    out = r.stdout.decode().splitlines()
    assert len(out) == len(texts), f"{len(texts)} texts in, {len(out)} lines out"
    return [json.loads(x) for x in out]


def compare(hf, akebin, texts, max_tokens=0, note=""):
    if max_tokens > 0:
        hf.enable_truncation(max_length=max_tokens)
    else:
        hf.no_truncation()
    try:
        want = [e.ids for e in hf.encode_batch(texts)]
    finally:
        hf.no_truncation()
    got = run_cli(akebin, texts, max_tokens)
    bad = [i for i in range(len(texts)) if got[i] != want[i]]
    if bad:
        msg = [f"{len(bad)} of {len(texts)} texts differ from HF (max_tokens={max_tokens}) {note}"]
        for i in bad[:5]:
            msg.append(f"text {i}: {texts[i]!r}\n  hf:   {want[i]}\n  ours: {got[i]}")
        pytest.fail("\n".join(msg))


# ---- random texts ------------------------------------------------------------------------------

def _compat_ranges():
    """The code points where HF's Unicode tables and utf8proc disagree (src/text/unicode_compat_impl.h)."""
    text = (ROOT / "src" / "text" / "unicode_compat_impl.h").read_text()
    return [(int(a, 16), int(b, 16)) for a, b in re.findall(r"\{0x([0-9A-F]+), 0x([0-9A-F]+)[,}]", text)]


WHITESPACE = "\t\n\r \x0b\x0c\x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
CONTROLS = "".join(map(chr, range(0, 0x20))) + "".join(map(chr, range(0x7F, 0xA0))) + \
    "\u00ad\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2064\ufeff\ufffd\ufff9\U000E0001\U000E0041\u061c\u180e"
SPECIALS = ["[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]", "[sep]", "[cls]", "[Mask]", "[CLS", "SEP]", "[[SEP]]",
            "[SEP][SEP]", "[ MASK ]", "[UNK]s", "x[MASK]y"]
PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»‘’“”„…‹›–—‐・、。「」『』【】《》〈〉§¶†‡•′″€£¥©®™°±×÷∑∫√∞≈≠≤≥←→"
EMOJI = ["😀", "👍🏽", "👩‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "1️⃣", "🇯🇵", "🧑🏿‍🚀", "🫠", "🥰", "👨‍💻", "☺", "\u2764\ufe0f",
         "👋🏻", "🤷‍♀️"]
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "embedding", "tokenizer", "unbelievable",
         "naïve", "café", "résumé", "Straße", "İstanbul", "ΣΊΣΥΦΟΣ", "Москва", "日本語", "한국어", "مرحبا", "नमस्ते",
         "ไทย", "שלום", "ＡＢＣ１２３", "ﬁnance", "Ⅻ", "x²", "½", "co\u00adoperate", "e\u0301", "n\u0303o"]


def _rand_cp(rng):
    while True:
        c = rng.randrange(0x110000)
        if not 0xD800 <= c <= 0xDFFF:
            return chr(c)


def _piece(rng, compat):
    k = rng.random()
    if k < 0.20:
        return rng.choice(WORDS) if rng.random() < 0.5 else "".join(
            rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(rng.randrange(1, 12)))
    if k < 0.28:
        return rng.choice(WHITESPACE) * rng.randrange(1, 3)
    if k < 0.34:
        return rng.choice(PUNCT) * rng.randrange(1, 4)
    if k < 0.38:
        return rng.choice(CONTROLS)
    if k < 0.41:
        return rng.choice(SPECIALS)
    if k < 0.45:
        return rng.choice(EMOJI)
    if k < 0.50:  # Latin-1, Latin extended, Greek, Cyrillic: case and accents
        return "".join(chr(rng.choice([rng.randrange(0xA0, 0x250), rng.randrange(0x370, 0x530)]))
                       for _ in range(rng.randrange(1, 8)))
    if k < 0.56:  # base + combining marks (canonical ordering, stripping)
        base = rng.choice("aeiouAEIOUnczsgkxy\u05d0\u0915\u0e01")
        marks = [chr(rng.choice([rng.randrange(0x300, 0x370), rng.randrange(0x591, 0x5C8), rng.randrange(0x93C, 0x94E),
                                 rng.randrange(0x1DC0, 0x1E00), rng.randrange(0x20D0, 0x20F1), 0x1D165, 0x1D16D,
                                 0x16FF0, 0x302E, 0x0F39, 0x0E49]))
                 for _ in range(rng.randrange(1, 6))]
        return base + "".join(marks)
    if k < 0.61:  # CJK: unified, ext A/B, compatibility ideographs, kana
        r = rng.choice([(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
                        (0x3040, 0x30FF), (0x2B740, 0x2B81F), (0x2CEB0, 0x2EBE0), (0x30000, 0x3134A)])
        return "".join(chr(rng.randrange(r[0], r[1] + 1)) for _ in range(rng.randrange(1, 6)))
    if k < 0.65:  # Hangul syllables and jamo
        r = rng.choice([(0xAC00, 0xD7A3), (0x1100, 0x11FF), (0x3130, 0x318F)])
        return "".join(chr(rng.randrange(r[0], r[1] + 1)) for _ in range(rng.randrange(1, 6)))
    if k < 0.70:  # Arabic, Devanagari, Thai, Hebrew, ...
        r = rng.choice([(0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x590, 0x5FF), (0x980, 0xDFF),
                        (0x1000, 0x109F), (0x1780, 0x17FF)])
        return "".join(chr(rng.randrange(r[0], r[1] + 1)) for _ in range(rng.randrange(1, 8)))
    if k < 0.74:  # symbols, full-width, letterlike, math alphanumerics
        r = rng.choice([(0x2000, 0x2BFF), (0xFF00, 0xFFEF), (0x1D400, 0x1D7FF), (0x2100, 0x214F), (0xFE30, 0xFE6F)])
        return "".join(chr(rng.randrange(r[0], r[1] + 1)) for _ in range(rng.randrange(1, 5)))
    if k < 0.77:  # private use, noncharacters, unassigned-heavy planes
        r = rng.choice([(0xE000, 0xF8FF), (0xF0000, 0xFFFFD), (0x100000, 0x10FFFD), (0xFDD0, 0xFDEF), (0xE0000, 0xE0FFF)])
        return chr(rng.randrange(r[0], r[1] + 1))
    if k < 0.81:  # the code points where HF's Unicode tables and utf8proc disagree
        lo, hi = rng.choice(compat)
        return "".join(chr(rng.randrange(lo, hi + 1)) for _ in range(rng.randrange(1, 3)))
    if k < 0.86:  # a word near max_input_chars_per_word (100), sometimes multi-byte
        ch = rng.choice(["a", "é", "ж", "ß", "𐐀", "ab", "e\u0301"])
        n = rng.choice([98, 99, 100, 101, 102])  # code points after normalization
        return ch * (n // 2 if ch == "ab" else n)
    return "".join(_rand_cp(rng) for _ in range(rng.randrange(1, 6)))


def random_text(rng, compat):
    r = rng.random()
    if r < 0.05:
        return ""
    n = rng.randrange(1, 6) if r < 0.40 else rng.randrange(1, 40) if r < 0.95 else rng.randrange(200, 1500)
    return "".join(_piece(rng, compat) for _ in range(n))


# ---- tests ---------------------------------------------------------------------------------------

def test_fuzz_differential(hf, akebin, seed):
    rng = random.Random(seed)
    compat = _compat_ranges()
    texts = [random_text(rng, compat) for _ in range(N_FUZZ)]
    compare(hf, akebin, texts, 0, note=f"(AKE_FUZZ_SEED={seed})")


def test_fuzz_truncation(hf, akebin, seed):
    rng = random.Random(seed ^ 0x5EED)
    compat = _compat_ranges()
    texts = [random_text(rng, compat) for _ in range(1500)]
    for max_tokens in (128, 7):
        compare(hf, akebin, texts, max_tokens, note=f"(AKE_FUZZ_SEED={seed})")


def test_every_code_point(hf, akebin):
    """All 1,112,064 scalar values, alone and inside a word, 256 to a text."""
    texts = []
    for lo in range(0, 0x110000, 256):
        cps = [chr(c) for c in range(lo, lo + 256) if not 0xD800 <= c <= 0xDFFF]
        if not cps:
            continue
        texts.append(" ".join(cps))
        texts.append(" ".join("a" + c + "b" for c in cps))
    compare(hf, akebin, texts, 0)


def test_combining_sequences(hf, akebin, seed):
    """Runs of combining marks of every class, in random order, after random bases:
    canonical ordering and Mn stripping decide what is left."""
    rng = random.Random(seed ^ 0xCCC)
    marks = [chr(c) for c in range(0x300, 0x20000) if unicodedata.combining(chr(c))]
    marks += [chr(c) for lo, hi in _compat_ranges() for c in range(lo, hi + 1)]
    # the marks the normalizer keeps (spacing marks of non-zero class, marks HF's tables do not
    # know): their order after canonical ordering is visible in the ids
    kept = [m for m in marks if hf.normalizer.normalize_str(m) == m]
    assert len(kept) > 50
    texts = []
    for _ in range(3000):
        base = rng.choice("aAeoß\u05d0\u0915ก가日 ")
        pool = kept if rng.random() < 0.5 else marks
        texts.append(base + "".join(rng.choice(pool) for _ in range(rng.randrange(1, 8))) + rng.choice(["", "x", " y"]))
    compare(hf, akebin, texts, 0, note=f"(AKE_FUZZ_SEED={seed})")


def test_plain_mode(hf, akebin):
    """Without --jsonl each input line is a text (empty lines too), one JSON array per line out,
    truncated to the model's max sequence length by default."""
    texts = ["The quick brown fox", "", "hello [SEP] world", "  ", "Ünïcödé ½ 日本"]
    hf.no_truncation()
    want = [e.ids for e in hf.encode_batch(texts)]
    got = run_cli(akebin, texts, max_tokens=0, jsonl=False)
    assert got == want
    r = subprocess.run([akebin, "tokenize"], input=b"The quick brown fox\n", capture_output=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [json.loads(x) for x in r.stdout.decode().splitlines()] == [hf.encode("The quick brown fox").ids]
    # the default truncates to the model's max sequence length, [CLS] and [SEP] included
    long_text = " ".join(["word"] * 1000)
    r = subprocess.run([akebin, "tokenize", "--model", str(MODEL)], input=(long_text + "\n").encode(),
                       capture_output=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    ids = json.loads(r.stdout)
    assert 0 < len(ids) < 1002 and ids[0] == hf.token_to_id("[CLS]") and ids[-1] == hf.token_to_id("[SEP]")
    hf.enable_truncation(max_length=len(ids))
    try:
        assert ids == hf.encode(long_text).ids
    finally:
        hf.no_truncation()
