#!/usr/bin/env python3
"""Writes the tokenizer golden files: token ids from HF `tokenizers` for fixed sets of texts.

    .venv/bin/python tests/golden/make_tokenizer_golden.py [MODEL_DIR]

tests/golden/tokenizer_golden.jsonl: the model's own tokenizer.json; one JSON object per line,
    {"text": str, "max_tokens": N, "ids": [int, ...]}; max_tokens 0 = no truncation, N > 0 =
    HF enable_truncation(max_length=N) (right side), padding off.
tests/golden/tokenizer_golden_added.jsonl: the same tokenizer.json with extra added tokens that
    use every flag (lstrip, rstrip, single_word, normalized, special); its first line is
    {"added_tokens": [...]}, to append to the file's "added_tokens" before loading, then text
    lines as above.

Deterministic (fixed seeds, no dependence on the machine). Lines are written with ensure_ascii,
so the files are plain ASCII and every code point (U+0000, U+2028, lone combining marks, ...)
survives any text tool."""
import json
import random
import sys
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
SEED = 20250101

# ---- hand-picked texts, by theme -----------------------------------------------------------

BASIC = [
    "", " ", "   ", "\n", "a", "A", "The quick brown fox jumps over the lazy dog.",
    "Hello, World!", "hello world", "HELLO WORLD", "unaffable", "embeddings are vectors",
    "akidb-embed turns text into vectors.", "I can't believe it's not butter!", "e-mail: someone@example.com",
    "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2?x=1&y=2#frag", "C++ and C# and F#",
    "3.14159 2,718 1e-10 -42 +7 100%", "$100.00 (approx.)", "snake_case camelCase kebab-case PascalCase",
    "user@host:~$ ls -la | grep foo > out.txt", "<html><body>Hi</body></html>", '{"json": [1, 2, 3]}',
    "tab\tseparated\tvalues", "line1\nline2\r\nline3\rline4", "multiple     spaces", "trailing space ",
    " leading space", "1234567890", "0.5", "a.b.c", "...", "!!!", "?!?!", "----", "a--b", "(parenthetical)",
    "[bracketed]", "{braced}", "'single' \"double\" `back`", "hashtag #NLP @mention", "don't won't shouldn't",
    "Mr. Smith went to Washington D.C. in 1999.", "antidisestablishmentarianism", "supercalifragilisticexpialidocious",
    "pneumonoultramicroscopicsilicovolcanoconiosis", "ThisIsAVeryLongCamelCaseIdentifierWithoutSpaces",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "qwertyuiopasdfghjklzxcvbnm", "zzz", "##", "##ing", "un##able",
]

ACCENTS = [
    "café", "naïve", "résumé", "Crème brûlée", "Ångström", "façade", "jalapeño", "Zürich", "São Paulo", "Kraków",
    "Dvořák", "Ærøskøbing", "Þórshöfn", "Łódź", "Việt Nam", "Nguyễn", "e\u0301", "cafe\u0301",
    "n\u0303", "a\u0300\u0301\u0302\u0303", "\u0301", "\u0301\u0301\u0301", "x\u0323\u0307", "x\u0307\u0323",
    "q\u0327\u0301", "ǅ ǆ Ǆ", "ﬁ ﬂ ﬀ ﬃ", "Ⅻ ⅻ", "x² x₂ ½ ⅓", "ª º", "µ", "ÿ Ÿ", "ŉ", "ǰ", "ΐ",
]

CASE = [
    "İstanbul", "istanbul", "ISTANBUL", "ıi Iİ", "İ", "i\u0307", "DİYARBAKIR", "ß", "Straße", "STRASSE", "ẞ",
    "ΣΊΣΥΦΟΣ", "σίσυφος", "ς σ Σ", "ΌΔΥΣΣΕΥΣ", "Ωμέγα", "ΑΒΓΔΕ αβγδε", "Москва", "МОСКВА", "Ёлка ёлка",
    "Київ", "Ѳ ѳ", "Ǳ ǲ ǳ", "Ꭰ ꭰ", "Ⓐ ⓐ", "𐐀 𐐨", "Ａ ａ", "ǈ", "ᾼ ᾳ", "K (Kelvin)", "Å (Angstrom)", "Ω (Ohm)",
]

SCRIPTS = [
    "日本語のテキスト", "東京は日本の首都です。", "中文文本，包括标点符号。", "我爱北京天安门", "繁體中文測試",
    "한국어 텍스트입니다", "안녕하세요 세계", "ㄱㄴㄷ ㅏㅑㅓ", "각", "مرحبا بالعالم", "العربية: نص تجريبي",
    "كِتَابٌ", "שלום עולם", "עִבְרִית", "नमस्ते दुनिया", "हिन्दी पाठ", "क़ ख़ ग़", "স্বাগতম", "தமிழ்", "తెలుగు", "ಕನ್ನಡ",
    "മലയാളം", "ગુજરાતી", "ਪੰਜਾਬੀ", "ภาษาไทย", "สวัสดีครับ", "ລາວ", "မြန်မာ", "ខ្មែរ", "བོད་ཡིག", "ქართული", "Հայերեն",
    "አማርኛ", "ᓀᐦᐃᔭᐍᐏᐣ", "ꆈꌠꁱꂷ", "Ελληνικά", "русский текст", "українська", "Tiếng Việt", "Türkçe", "ひらがな カタカナ",
    "ｶﾀｶﾅ", "𠀀𠀁𠀂", "𪜀", "𫝀", "𫠠", "𬺰", "丽", "豈 更 車", "⺀ ⼀", "㐀㐁", "〇", "々", "ー", "〻",
    "漢字kanji混在mixed", "中a文b", "日本語ですか？はい！",
]

EMOJI = [
    "😀", "😀😃😄", "I love you ❤️", "👍", "👍🏻👍🏼👍🏽👍🏾👍🏿", "👩‍👩‍👧‍👦", "👨‍💻", "🏳️‍🌈", "🏴‍☠️", "🇯🇵🇺🇸🇫🇷",
    "1️⃣2️⃣#️⃣", "☺️", "✌🏽", "🧑🏿‍🚀", "🫠🫡🫶", "🥰", "🤷‍♀️", "🙇‍♂️", "🐕‍🦺", "💯", "🔥🔥🔥", "emoji😀inside",
    "✅ ❌ ⭐ ⚡", "\u2764\ufe0f", "\u2764\ufe0e", "🏻", "\u200d", "a\u200db", "👁️‍🗨️", "🧔🏻‍♂️",
]

INVISIBLE = [
    "\x00", "a\x00b", "\x00\x00\x00", "\ufffd", "a\ufffdb", "\u200b", "zero\u200bwidth", "a\u200cb", "a\u200db",
    "\ufeffBOM at start", "BOM\ufeffinside", "\ufeff", "soft\u00adhyphen", "co\u00adop\u00ader\u00adate", "\u00ad",
    "a\u2060b", "a\u2061b", "a\u2062b", "a\u2063b", "a\u2064b", "a\u200eb", "a\u200fb", "a\u202ab\u202c",
    "a\u2066b\u2069", "a\u061cb", "a\u180eb", "a\U000E0001b", "a\U000E0041\U000E007Fb", "a\ufff9b\ufffb",
    "a\U0001D173b", "a\U000110BDb", "\ue000", "a\ue000b", "a\uf8ffb", "a\U000F0000b", "a\U0010FFFDb", "a\ufdd0b",
    "a\uffffb", "a\U0001FFFEb", "a\x7fb", "a\x80b", "a\x9fb", "a\x1bb", "bell\x07", "a\x08b", "\x01\x02\x03",
    "a\u0378b", "a\U000E01EFb", "a\ufe0fb", "a\U000E0100b", "a\u034fb", "a\u115fb", "a\u3164b",
]

WHITESPACE_CHARS = ["\t", "\n", "\r", " ", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\xa0", "\u1680",
                    *[chr(c) for c in range(0x2000, 0x200B)], "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
                    "\u180e", "\u200b", "\ufeff"]

PUNCT_SYMBOLS = [
    "‘single’ “double”", "„German“ «French» ‹guillemets›", "wait…", "em—dash en–dash", "a‐b a‑b a‒b",
    "€100 £50 ¥1000 ₹500 ₿1 ¢5 $5", "© 2024 ® ™ ℗", "° ± × ÷", "∑ ∫ √ ∞ ≈ ≠ ≤ ≥ ∂ ∇ ∈ ∉ ⊂ ∪ ∩",
    "→ ← ↑ ↓ ⇒ ⇔", "¡Hola! ¿Qué?", "§1 ¶2 †3 ‡4 •5 ·6", "′ ″ ‴", "※ ‼ ⁇ ⁈ ⁉", "、。「」『』【】〈〉《》",
    "，！？：；（）", "٪ ، ؛ ؟", "।॥", "…...", "a…b", "😀!", "♠ ♣ ♥ ♦", "♪ ♫", "☀ ☁ ☂", "⌘ ⌥ ⇧", "℃ ℉ ℮",
    "$+<=>^`|~", "a$b", "a+b=c", "x<y>z", "a^b", "a`b", "a|b", "a~b", "5 > 3 && 2 < 4 || !false",
    "a\u166db", "a\u111c9b", "a\u2e43b", "a\u061db", "a\u2e5db", "a\u1734b", "a\u0f3ab", "a\u0f14b",
    "_underscore_", "a_b", "‿⁀⁔", "﹏", "＿", "〜", "～", "゠", "᐀", "־", "־a־",
]

SPECIAL_LITERALS = [
    "[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]", "[sep]", "[cls]", "[mask]", "[Sep]", "[ SEP ]", "[SEP", "SEP]",
    "[[SEP]]", "[SEP][SEP]", "[CLS] hello [SEP]", "hello[SEP]world", "The [MASK] sat on the mat.",
    "[MASK][MASK][MASK]", "x[UNK]y", "[PAD][PAD]", "[CLS][SEP][MASK][UNK][PAD]", "[SEP] [sep] [SEP]",
    "[MASK]ed", "un[MASK]able", "[CLS ]", "[ CLS]", "[\u200bSEP]", "[SE\u00adP]", "［SEP］", "[ＳＥＰ]", "【SEP】",
    "[SEP]" * 20, "a [SEP] b [SEP] c", "\n[SEP]\n", "\t[CLS]", "[MASK].", ".[MASK]", "[UNK][unk]",
]


def word_length_cases():
    out = []
    for ch in ["a", "é", "ж", "ß", "𐐀", "ก", "e\u0301", "日"]:
        for n in (99, 100, 101):
            out.append(ch * n)
    out += ["a" * 99 + "é", "é" * 99 + "a", "a" * 100 + "!", "!" + "a" * 100, "a" * 50 + " " + "a" * 101,
            "ab" * 50, "ab" * 50 + "c", "x" * 1000, "abc" * 34, "A" * 101, "Ab" * 50 + "\u0301",
            "a" * 100 + "\u0301", "a" * 100 + "\u200b", "a" * 100 + "\u00ad", "𐐀" * 100 + "a", "a" * 99 + "ß"]
    return out


def cp_contexts():
    """Every whitespace kind, every C0/C1 control and each compat-table boundary in context."""
    out = []
    for w in WHITESPACE_CHARS:
        out += [f"a{w}b", f"{w}x{w}", f"word{w}{w}word"]
    for c in list(range(0, 0x20)) + list(range(0x7F, 0xA0)):
        out.append(f"x{chr(c)}y {chr(c)}")
    text = (ROOT / "src" / "text" / "unicode_compat_impl.h").read_text()
    import re
    for a, b in re.findall(r"\{0x([0-9A-F]+), 0x([0-9A-F]+)[,}]", text):
        lo, hi = int(a, 16), int(b, 16)
        out.append(f"a{chr(lo)}b {chr(hi)} x{chr(hi)}")
    return out


def long_texts(rng):
    words = ("the of and to in is was for on that with as by at from his her an which were be this are "
             "embedding vector tokenizer transformer attention café naïve 日本 한국 мир ελληνικά ☃ 😀 [SEP] "
             "antidisestablishmentarianism qwertyuiop").split()
    out = []
    for _ in range(40):
        n = rng.randrange(100, 500)
        out.append(" ".join(rng.choice(words) for _ in range(n)) + rng.choice(["", ".", "!", " [SEP]"]))
    out.append(("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 40).strip())
    out.append("日本語" * 300)
    out.append("😀" * 300)
    out.append("a " * 600)
    out.append("! " * 300)
    return out


# ---- random texts --------------------------------------------------------------------------

RANGES = [(0x20, 0x7E), (0xA0, 0xFF), (0x100, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF),
          (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x1E00, 0x1EFF),
          (0x2000, 0x206F), (0x2070, 0x2BFF), (0x3000, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
          (0xAC00, 0xD7A3), (0xE000, 0xF8FF), (0xF900, 0xFAFF), (0xFE00, 0xFE6F), (0xFF00, 0xFFEF),
          (0x1F300, 0x1FAFF), (0x20000, 0x2A6DF), (0x2F800, 0x2FA1F), (0xE0000, 0xE01EF)]


def random_text(rng):
    parts = []
    for _ in range(rng.randrange(1, 30)):
        k = rng.random()
        if k < 0.35:
            parts.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                                 for _ in range(rng.randrange(1, 10))))
        elif k < 0.50:
            parts.append(rng.choice(WHITESPACE_CHARS))
        elif k < 0.55:
            parts.append(rng.choice(SPECIAL_LITERALS[:12]))
        elif k < 0.60:
            parts.append(rng.choice(EMOJI))
        elif k < 0.90:
            lo, hi = rng.choice(RANGES)
            parts.append("".join(chr(rng.randrange(lo, hi + 1)) for _ in range(rng.randrange(1, 6))))
        else:
            while True:
                c = rng.randrange(0x110000)
                if not 0xD800 <= c <= 0xDFFF:
                    break
            parts.append(chr(c))
    return "".join(parts)


# Added tokens beyond the model's, one per flag combination worth having. The ids are the ones
# HF gives them when loading (it assigns its own and only warns about the file's).
EXTRA_ADDED = [
    {"id": 30522, "content": "<ent>", "single_word": False, "lstrip": True, "rstrip": True, "normalized": False,
     "special": False},
    {"id": 29379, "content": "foo", "single_word": True, "lstrip": False, "rstrip": False, "normalized": False,
     "special": False},
    {"id": 30523, "content": "Hello World", "single_word": False, "lstrip": False, "rstrip": False,
     "normalized": True, "special": False},
    {"id": 30524, "content": "\u00c9COLE", "single_word": False, "lstrip": False, "rstrip": False,
     "normalized": True, "special": False},
    {"id": 30525, "content": "\u65e5\u672c", "single_word": False, "lstrip": False, "rstrip": False,
     "normalized": True, "special": False},
    {"id": 30526, "content": "[SEP]x", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
     "special": False},
    {"id": 1996, "content": "the", "single_word": True, "lstrip": False, "rstrip": False, "normalized": True,
     "special": False},
    {"id": 30527, "content": "<mask>", "single_word": False, "lstrip": True, "rstrip": False, "normalized": False,
     "special": True},
    {"id": 30528, "content": "zz", "single_word": False, "lstrip": False, "rstrip": True, "normalized": True,
     "special": False},
]
ADDED_PIECES = ["<ent>", "foo", "Hello World", "hello world", "HELLO  WORLD", "\u00c9COLE", "ecole", "\u00e9cole",
                "e\u0301cole", "\u65e5\u672c", "\u65e5 \u672c", "[SEP]x", "[SEP]", "the", "The", "THE", "<mask>", "zz",
                "ZZ", " ", "  ", "\t", "\u3000", "\u00a0", "\u2028", "a", "bar", "x", "!", "_", "1", "foofoo",
                "thethe", "\u00e9", "\u0301", "\u0300", "\u200b"]


def write_lines(path, tok, cases, head=None):
    seen = set()
    n = 0
    with open(path, "w", encoding="ascii", newline="\n") as f:
        if head is not None:
            f.write(json.dumps(head, ensure_ascii=True) + "\n")
        for text, max_tokens in cases:
            if (text, max_tokens) in seen:
                continue
            seen.add((text, max_tokens))
            if max_tokens > 0:
                tok.enable_truncation(max_length=max_tokens)
            else:
                tok.no_truncation()
            ids = tok.encode(text).ids
            f.write(json.dumps({"text": text, "max_tokens": max_tokens, "ids": ids}, ensure_ascii=True) + "\n")
            n += 1
    print(f"{path}: {n} texts", file=sys.stderr)


def main():
    model = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "models" / "all-MiniLM-L6-v2"
    tok = Tokenizer.from_file(str(model / "tokenizer.json"))
    tok.no_padding()
    rng = random.Random(SEED)

    cases = []  # (text, max_tokens)
    themed = BASIC + ACCENTS + CASE + SCRIPTS + EMOJI + INVISIBLE + PUNCT_SYMBOLS + SPECIAL_LITERALS
    themed += word_length_cases() + cp_contexts()
    cases += [(t, 0) for t in themed]
    for t in long_texts(rng):
        for n in (256, 128, 0):
            cases.append((t, n))
    for t in BASIC[6:30] + SCRIPTS[:10] + SPECIAL_LITERALS[14:20]:  # small limits, down to just [CLS] [SEP]
        cases.append((t, rng.choice([2, 3, 4, 5, 8])))
    while len(cases) < 2600:
        cases.append((random_text(rng), rng.choice([0, 0, 0, 0, 16, 64, 128, 256])))

    golden = ROOT / "tests" / "golden"
    write_lines(golden / "tokenizer_golden.jsonl", tok, cases)

    # the same tokenizer with EXTRA_ADDED appended to its added tokens
    spec = json.loads((model / "tokenizer.json").read_text(encoding="utf-8"))
    spec["added_tokens"] += EXTRA_ADDED
    tmp = golden / ".tokenizer_added.tmp.json"
    tmp.write_text(json.dumps(spec), encoding="utf-8")
    try:
        tok2 = Tokenizer.from_file(str(tmp))
    finally:
        tmp.unlink()
    tok2.no_padding()
    got = {t.content: i for i, t in tok2.get_added_tokens_decoder().items()}
    for a in EXTRA_ADDED:
        assert got[a["content"]] == a["id"], (a, got[a["content"]])  # keep the file's ids HF's own
    rng2 = random.Random(SEED + 1)
    cases2 = [("".join(rng2.choice(ADDED_PIECES) for _ in range(rng2.randrange(1, 12))), 0) for _ in range(700)]
    cases2 += [(t, 0) for t in SPECIAL_LITERALS + BASIC[:20]]
    write_lines(golden / "tokenizer_golden_added.jsonl", tok2, cases2, head={"added_tokens": EXTRA_ADDED})
    print(f"tokenizers {tokenizers.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
