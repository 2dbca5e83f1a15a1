#!/usr/bin/env python3
"""Generates src/text/unicode_compat_impl.h: where HF `tokenizers` 0.21 sees a code point
differently from the system's utf8proc.

Why: HF's BertNormalizer / BertPreTokenizer take general categories from the Rust crate
`unicode_categories` (Unicode 8-era tables) and NFD from `unicode-normalization-alignments`
(a later but still old Unicode), while utf8proc 2.8 has Unicode 15. A character added after
those versions (a new Mn, Cf or P* character) is "unassigned" to HF: kept, not stripped, not
punctuation, combining class 0, no decomposition. A few characters also changed category.
To be equal to HF on every input we take utf8proc's answer and correct it with the
exceptions this script measures. Nothing here is typed by hand: every entry is the result of
asking HF and utf8proc the same question about one code point (or a pair, for combining
classes), for all 1,112,064 scalar values.

Run:  .venv/bin/python tests/golden/make_unicode_compat.py > src/text/unicode_compat_impl.h
Deterministic; fails loudly on a kind of difference the C side has no way to express.
"""
import ctypes
import ctypes.util
import sys

import tokenizers
from tokenizers import normalizers, pre_tokenizers

U = ctypes.CDLL(ctypes.util.find_library("utf8proc") or "libutf8proc.so.2")


class _Prop(ctypes.Structure):  # the leading fields of utf8proc_property_t
    _fields_ = [("category", ctypes.c_int16), ("combining_class", ctypes.c_int16)]


U.utf8proc_get_property.restype = ctypes.POINTER(_Prop)
U.utf8proc_get_property.argtypes = [ctypes.c_int32]
U.utf8proc_category.argtypes = [ctypes.c_int32]
U.utf8proc_tolower.argtypes = [ctypes.c_int32]
U.utf8proc_tolower.restype = ctypes.c_int32
U.utf8proc_decompose_char.argtypes = [ctypes.c_int32, ctypes.POINTER(ctypes.c_int32), ctypes.c_ssize_t,
                                      ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
U.utf8proc_decompose_char.restype = ctypes.c_ssize_t
U.utf8proc_unicode_version.restype = ctypes.c_char_p
U.utf8proc_version.restype = ctypes.c_char_p
U.utf8proc_NFD.argtypes = [ctypes.c_char_p]
U.utf8proc_NFD.restype = ctypes.c_void_p
UTF8PROC_DECOMPOSE = 1 << 4

# utf8proc category numbers (utf8proc.h)
CAT_NAMES = ["CN", "LU", "LL", "LT", "LM", "LO", "MN", "MC", "ME", "ND", "NL", "NO", "PC", "PD", "PS",
             "PE", "PI", "PF", "PO", "SM", "SC", "SK", "SO", "ZS", "ZL", "ZP", "CC", "CF", "CS", "CO"]
CAT = {n: i for i, n in enumerate(CAT_NAMES)}

# HF character classes, as the C side names them (AKE_UC_* in tokenizer.c)
PLAIN, CONTROL, MARK_NS, PUNCT = 0, 1, 2, 3
CLASS_NAMES = ["AKE_UC_PLAIN", "AKE_UC_CONTROL", "AKE_UC_MARK_NS", "AKE_UC_PUNCT"]


def scalars():
    for cp in range(0x110000):
        if not 0xD800 <= cp <= 0xDFFF:
            yield cp


def u_class(cp):
    """The class tokenizer.c computes from utf8proc alone (before corrections)."""
    if cp in (9, 10, 13):
        return PLAIN  # whitespace, handled apart
    cat = U.utf8proc_category(cp)
    if cat in (CAT["CC"], CAT["CF"], CAT["CO"], CAT["CS"]):
        return CONTROL
    if cat == CAT["MN"]:
        return MARK_NS
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return PUNCT
    if CAT["PC"] <= cat <= CAT["PO"]:
        return PUNCT
    return PLAIN


def u_is_space(cp):
    cat = U.utf8proc_category(cp)
    return 9 <= cp <= 13 or cp == 0x85 or cat in (CAT["ZS"], CAT["ZL"], CAT["ZP"])


def u_decompose(cp):
    buf = (ctypes.c_int32 * 64)()
    last = ctypes.c_int(0)
    n = U.utf8proc_decompose_char(cp, buf, 64, UTF8PROC_DECOMPOSE, ctypes.byref(last))
    assert 0 < n <= 64, (cp, n)
    return [buf[i] for i in range(n)]


def u_nfd(s):
    p = U.utf8proc_NFD(s.encode())
    assert p
    return [ord(x) for x in ctypes.string_at(p).decode()]  # (leaks a few bytes per call; a script)


def ccc(cp):
    return U.utf8proc_get_property(cp).contents.combining_class


def ranges(pairs):
    """[(cp, value)] sorted by cp -> [(lo, hi, value)] merging runs of equal value."""
    out = []
    for cp, v in pairs:
        if out and out[-1][1] == cp - 1 and out[-1][2] == v:
            out[-1][1] = cp
        else:
            out.append([cp, cp, v])
    return out


def main():
    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False,
                                       lowercase=False)
    # NFD, then drop Mn (normalizers.StripAccents would drop every combining mark, Mc and Me too)
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True,
                                       lowercase=False)
    lower = normalizers.Lowercase()
    nfd = normalizers.NFD()
    bert_pt = pre_tokenizers.BertPreTokenizer()

    class_fix = []   # (cp, HF class) where HF's class differs from u_class
    nfd_unknown = []  # cp that HF's NFD does not know (no decomposition, combining class 0)
    lower_fix = []   # (cp, [code points]) where Rust's char::to_lowercase differs from utf8proc_tolower
    for cp in scalars():
        c = chr(cp)
        # clean_text: "" = removed (control, U+0000, U+FFFD), " " = whitespace, else kept
        r = clean.normalize_str(c)
        if r == " ":
            if not u_is_space(cp):
                sys.exit(f"U+{cp:04X}: HF maps it to a space, utf8proc has no White_Space for it")
            continue
        if r == "":
            hf = CONTROL if cp not in (0, 0xFFFD) else u_class(cp)
        elif nfd.normalize_str(c) != c:
            hf = u_class(cp)  # replaced by its decomposition before any later class test
        elif strip.normalize_str(c) == "":
            hf = MARK_NS
        else:
            sp = bert_pt.pre_tokenize_str("a" + c + "a")
            hf = PUNCT if len(sp) == 3 else PLAIN
            if len(sp) not in (1, 3):
                sys.exit(f"U+{cp:04X}: unexpected pre-tokenization {sp!r}")
        if r != "" and u_is_space(cp) and cp not in (0x0B, 0x0C, 0x85):
            sys.exit(f"U+{cp:04X}: utf8proc says White_Space, HF keeps it")
        if hf != u_class(cp):
            class_fix.append((cp, hf))

        lo = lower.normalize_str(c)
        if [ord(x) for x in lo] != [U.utf8proc_tolower(cp)]:
            lower_fix.append((cp, [ord(x) for x in lo]))

        d = [ord(x) for x in nfd.normalize_str(c)]
        ud = u_decompose(cp)
        if d != ud:
            if d == [cp]:
                nfd_unknown.append(cp)
                continue
            sys.exit(f"U+{cp:04X}: HF NFD {d} vs utf8proc {ud}")
        k = ccc(cp)
        if k != 0:
            # Does HF's NFD know this combining class? Put a mark of known class next to it
            # on the side where canonical ordering must swap them, and look.
            if k > 220:
                s, unknown = c + "\u0316", ud + [0x316]
            else:
                s, unknown = "\u0301" + c, [0x301] + ud
            got = [ord(x) for x in nfd.normalize_str(s)]
            known = u_nfd(s)
            assert known != unknown, cp
            if got == unknown:
                nfd_unknown.append(cp)
            elif got != known:
                sys.exit(f"U+{cp:04X}: unexpected HF NFD reordering {got}")

    cls_r = ranges(class_fix)
    nfd_r = ranges([(cp, 1) for cp in nfd_unknown])
    cats = sorted({U.utf8proc_category(cp) for cp, _ in class_fix})
    catmask = sum(1 << c for c in cats)

    w = sys.stdout.write
    w("/* GENERATED by tests/golden/make_unicode_compat.py -- do not edit.\n")
    w(f" * HF tokenizers {tokenizers.__version__} against utf8proc {U.utf8proc_version().decode()} "
      f"(Unicode {U.utf8proc_unicode_version().decode()}).\n")
    w(" * Where HF's view of a code point differs from what tokenizer.c derives from utf8proc; see the\n")
    w(" * generator for why. Included by tokenizer.c only. */\n")
    w("#ifndef AKE_TEXT_UNICODE_COMPAT_IMPL_H\n#define AKE_TEXT_UNICODE_COMPAT_IMPL_H\n\n")
    w("#include <stdint.h>\n\n")
    w("/* How HF's BERT normalizer and pre-tokenizer treat a character. */\n")
    w("enum { " + ", ".join(f"{n} = {i}" for i, n in enumerate(CLASS_NAMES)) + " };\n\n")
    w(f"#define AKE_UC_COMPAT_UTF8PROC_UNICODE \"{U.utf8proc_unicode_version().decode()}\"\n\n")
    w("/* utf8proc categories (bit i = category i) that hold at least one corrected code point. */\n")
    w(f"#define AKE_UC_CLASS_FIX_CATEGORIES 0x{catmask:08X}u /* {' '.join(CAT_NAMES[c] for c in cats)} */\n\n")
    w("/* HF class of code points lo..hi where it is not the one utf8proc's category gives. */\n")
    w("static const struct { int32_t lo, hi; uint8_t cls; } ake_uc_class_fix[] = {\n")
    for lo, hi, v in cls_r:
        w(f"    {{0x{lo:05X}, 0x{hi:05X}, {CLASS_NAMES[v]}}},\n")
    w("};\n\n")
    w("/* Code points HF's NFD does not know: no decomposition and canonical combining class 0. */\n")
    w("static const struct { int32_t lo, hi; } ake_uc_nfd_unknown[] = {\n")
    for lo, hi, _ in nfd_r:
        w(f"    {{0x{lo:05X}, 0x{hi:05X}}},\n")
    w("};\n\n")
    w("/* Rust char::to_lowercase where it is not utf8proc_tolower (full, unconditional mappings). */\n")
    w("static const struct { int32_t cp; int32_t n; int32_t lower[3]; } ake_uc_lower_fix[] = {\n")
    for cp, lo in lower_fix:
        if len(lo) > 3:
            sys.exit(f"U+{cp:04X}: lowercase longer than 3 code points")
        pad = lo + [0] * (3 - len(lo))
        w(f"    {{0x{cp:05X}, {len(lo)}, {{{', '.join(f'0x{x:05X}' for x in pad)}}}}},\n")
    w("};\n\n#endif\n")
    print(f"class fixes: {len(class_fix)} code points in {len(cls_r)} ranges; NFD unknown: {len(nfd_unknown)} "
          f"in {len(nfd_r)} ranges; lowercase fixes: {len(lower_fix)}", file=sys.stderr)


if __name__ == "__main__":
    main()
