#!/usr/bin/env python3
"""Makes the real-English text files that quantization is calibrated and judged on.

Source: Debian's `fortunes` and `fortunes-min` packages (version 1:1.99.1-7.3 in Debian 12),
about 16,000 quotations, jokes and proverbs written by people: real text, and not the kind of
text the model was trained on, which is what a calibration set must survive. Each fortune is
split into sentences; sentences of 4 to 64 words that are mostly letters are kept, once each.

The split is by a hash of the sentence, so the two files never share a sentence and adding a
package version changes only the sentences it adds:
  quant_calib.txt   sentences whose sha256 ends in 0 (about 1/16), for `quantize --calib`
  quant_eval.txt    the first 10,000 of the others, for `validate` and the accuracy gate
One sentence per line, sorted by hash (a fixed, topic-mixed order), UTF-8.

    apt-get install fortunes fortunes-min
    python3 tests/golden/make_quant_text.py [--source /usr/share/games/fortunes] [--out tests/golden]
"""
import argparse
import hashlib
import os
import re
import sys

SKIP = {"art", "ascii-art", "translate-me"}  # drawings, and text in other languages
SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z])")


def fortunes(path):
    with open(path, "rb") as f:
        raw = f.read().decode("utf-8", errors="replace")
    raw = re.sub(r".\x08", "", raw)  # overstrike (x BS x) as the fortune files use for bold
    for chunk in raw.split("\n%\n"):
        lines = [l for l in chunk.split("\n") if l.strip() and not re.match(r"\s*(--|-- |~~)", l)]
        yield " ".join(" ".join(lines).split())


def sentences(text):
    for s in SENTENCE_END.split(text):
        s = s.strip()
        words = s.split()
        if not 4 <= len(words) <= 64:
            continue
        letters = sum(c.isalpha() for c in s)
        if letters < 0.7 * len(s.replace(" ", "")) or "\ufffd" in s:
            continue
        yield s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", default="/usr/share/games/fortunes")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--eval-max", type=int, default=10000)
    args = ap.parse_args()
    names = sorted(n for n in os.listdir(args.source)
                   if "." not in n and n not in SKIP and not os.path.islink(os.path.join(args.source, n)))
    if not names:
        sys.exit(f"no fortune files under {args.source}: apt-get install fortunes fortunes-min")
    seen = {}
    for n in names:
        for fortune in fortunes(os.path.join(args.source, n)):
            for s in sentences(fortune):
                seen.setdefault(hashlib.sha256(s.encode()).hexdigest(), s)
    calib, evals = [], []
    for h in sorted(seen):
        (calib if h.endswith("0") else evals).append(seen[h])
    for name, rows in (("quant_calib.txt", calib), ("quant_eval.txt", evals[:args.eval_max])):
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            f.write("".join(r + "\n" for r in rows))
        print(f"{name}: {len(rows)} sentences")


if __name__ == "__main__":
    main()
