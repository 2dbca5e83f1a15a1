#!/usr/bin/env python3
"""Builds the English sentence corpus for distilling all-MiniLM-L6-v2 into a 3-layer student.

Issue 11. The teacher embeds these sentences; the student learns to match it. Everything comes
from Debian 12 packages (installed by scripts/distill_corpus, the entry point that runs this), so
the corpus is rebuilt byte for byte from the package versions recorded in manifest.json. Only
the Python standard library is used.

Sources (Debian package: what is read), processed in this order; a sentence belongs to the
first source it is found in:
  fortunes-min, fortunes, fortune-anarchism   quotations, jokes, proverbs, aphorisms
                                              (/usr/share/games/fortunes; not art/ascii-art/
                                              translate-me), as tests/golden/make_quant_text.py
  bible-kjv-text (+ bible-kjv, its reader)    the King James Bible, verses joined per chapter
  wordnet-base                                the example sentences of WordNet 3.0's glosses
                                              (everyday English on every topic)
  jargon-text                                 the Jargon File 4.4.7 (hacker culture, history)
  debian-handbook                             The Debian Administrator's Handbook (en-US HTML)
  debian-reference-en                         Debian Reference (HTML)
  maint-guide                                 Debian New Maintainers' Guide (English HTML)
  developers-reference                        Debian Developer's Reference (HTML)
  debian-policy                               Debian Policy, FHS, menu and perl policies (HTML)
  gnu-standards                               GNU Coding Standards, GNU maintainers' info (HTML)
  git-doc                                     Git's user manual, guides and command pages (HTML)
  manpages, manpages-dev                      the Linux man-pages project (roff source)
  perl-doc                                    Perl's core manuals (POD; not the perl*delta
                                              release notes, whose sentences are templates)
  python3.11-doc                              the Python 3.11 documentation (HTML)
  postgresql-doc-15                           the PostgreSQL 15 manual (HTML)
  linux-doc-6.1                               the Linux kernel documentation (HTML; not the
                                              translations)
Only prose is read: HTML <p> paragraphs (never <pre>, tables, headings, scripts), roff text
outside no-fill/example/table blocks and outside SYNOPSIS, SEE ALSO, ATTRIBUTES, COLOPHON;
POD ordinary paragraphs (never verbatim blocks or =item tags).

Sentence rules. Text is whitespace-collapsed (Unicode NFC, no-break spaces made spaces) and
split into sentences after . ! or ? followed by a capital letter (not after common
abbreviations such as "e.g." or "Mr."); a bracket or quote left unpaired at either end by the
split is dropped. A sentence is kept when:
  - it has 4..64 words and at most 400 characters;
  - it holds no control, format or private-use character, no U+FFFD, no box drawing;
  - letters are >= 75% of its non-space characters, and non-ASCII letters <= 5% of letters;
  - it has at most 2 of the characters {}[]<>=;|\\$#@`~^*_ and at most 2 code-like words
    (paths, dotted or underscored names, calls, options, URLs), and those <= 15% of its words;
  - at least one word in ten is a common English function word (the, of, is, you, ...);
  - it starts with a capital letter or digit (after an opening quote or parenthesis) and ends
    with . ! or ? (before a closing quote or parenthesis). WordNet examples are exempt from
    this last rule: they are written lower-case and unpunctuated by design;
  - it is not a "(Contributed by ...)" / "Patch by ..." credit line.
A sentence appears at most once in the whole corpus. Duplicates are found on its key: its
words (runs of \\w) casefolded and joined by single spaces, so sentences that differ only in
case, punctuation or spacing are one sentence (the teacher's tokenizer lower-cases anyway, and
an eval sentence must not reappear in train with a comma moved). The first one met is kept.

Split rule. h = sha256 of the key (UTF-8, hex); u = int(h[:8], 16), uniform on [0, 2^32).
u < 2^32/192 (about 0.52%) -> valid.txt; the next 2^32/25 (4%) -> eval.txt; the rest ->
train.txt. A sentence's split depends on nothing but its own text, so adding or updating a
package never moves a sentence from one split to another, and as keys are unique the splits
are disjoint by construction (the script also checks it). Each file is sorted by h (a fixed,
topic-mixed order), one sentence per line, UTF-8, each line ended by '\\n'.

Outputs (in --out, default data/distill under the repository root): train.txt, valid.txt,
eval.txt and manifest.json (package versions, sentences per package and split, per-file
sha256, bytes, mean words and characters, and these rules). Nothing in them depends on the
time or the machine, only on the package versions (and the Python's Unicode version, recorded).

Usage:
    scripts/distill_corpus [--out DIR]          # installs the packages, then runs this
    python3 scripts/distill_corpus.py [--out DIR] [--jobs N]
"""
import argparse
import gzip
import hashlib
import html
import json
import os
import re
import subprocess
import sys
import unicodedata
from concurrent.futures import ProcessPoolExecutor

# ------------------------------------------------------------------------------------------
# sources: (package, reader, path filter); the package's own file list picks the files, so
# files that other packages happened to install beside them are never read.

FORTUNE_SKIP = {"art", "ascii-art", "translate-me"}
HTML_SKIP = re.compile(r"/(genindex|search|py-modindex|bookindex|index-\w+|_sources|_static"
                       r"|_images|translations)(/|\.html$|-)")

SOURCES = [
    ("fortunes-min", "fortune", r"^/usr/share/games/fortunes/[^./]+$"),
    ("fortunes", "fortune", r"^/usr/share/games/fortunes/[^./]+$"),
    ("fortune-anarchism", "fortune", r"^/usr/share/games/fortunes/[^./]+$"),
    ("bible-kjv-text", "bible", r"^/usr/lib/bible\.data$"),
    ("wordnet-base", "wordnet", r"^/usr/share/wordnet/data\.(noun|verb|adj|adv)$"),
    ("jargon-text", "jargon", r"/jargon\.txt\.gz$"),
    ("debian-handbook", "html", r"^/usr/share/doc/debian-handbook/html/en-US/[^/]+\.html$"),
    ("debian-reference-en", "html", r"\.en\.html$"),
    ("maint-guide", "html", r"/html/[^/]+\.en\.html$"),
    ("developers-reference", "html", r"^/usr/share/developers-reference/[^/]+\.html$"),
    ("debian-policy", "html", r"\.html$"),
    ("gnu-standards", "html", r"\.html$"),
    ("git-doc", "html", r"^/usr/share/doc/git-doc/.*\.html$"),
    ("manpages", "man", r"^/usr/share/man/man\d/[^/]+\.gz$"),
    ("manpages-dev", "man", r"^/usr/share/man/man\d/[^/]+\.gz$"),
    ("perl-doc", "pod", r"^/usr/share/perl/[^/]+/pod/(?!perl5?\d*delta|perltoc)[^/]+\.pod$"),
    ("python3.11-doc", "html", r"^/usr/share/doc/python3\.11/html/.*\.html$"),
    ("postgresql-doc-15", "html", r"^/usr/share/doc/postgresql-doc-15/html/[^/]+\.html$"),
    ("linux-doc-6.1", "html", r"^/usr/share/doc/linux-doc-6\.1/html/.*\.html$"),
]
EXTRA_PACKAGES = ["bible-kjv"]  # the reader of bible-kjv-text's compressed text

# The versions the corpus was first built and checked with (Debian 12 bookworm and its
# security updates, as the mirror served them then). Other versions work too, but give a somewhat different corpus: a warning
# says so, and manifest.json always records the versions actually read.
TESTED_VERSIONS = {
    "fortunes-min": "1:1.99.1-7.3", "fortunes": "1:1.99.1-7.3", "fortune-anarchism": "1.8.0-1",
    "bible-kjv-text": "4.38", "bible-kjv": "4.38", "wordnet-base": "1:3.0-37",
    "jargon-text": "4.4.7-4.1", "debian-handbook": "11.20220922", "debian-reference-en": "2.100",
    "maint-guide": "1.2.53", "developers-reference": "12.18", "debian-policy": "4.6.2.0",
    "gnu-standards": "2022.03.23-0.1", "git-doc": "1:2.39.5-0+deb12u3", "manpages": "6.03-2",
    "manpages-dev": "6.03-2", "perl-doc": "5.36.0-7+deb12u4", "python3.11-doc": "3.11.2-6+deb12u9",
    "postgresql-doc-15": "15.20-0+deb12u1", "linux-doc-6.1": "6.1.192-3",
}

MIN_WORDS, MAX_WORDS, MAX_CHARS = 4, 64, 400
VALID_OF_2_32 = (1 << 32) // 192           # 1/192 of the hash space (about 0.52%)
EVAL_OF_2_32 = (1 << 32) // 25             # the next 4%

# ------------------------------------------------------------------------------------------
# sentences

SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]?[A-Z])")
ABBREV = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|St|Sr|Jr|Prof|Gen|Col|Capt|Lt|Rev|Hon|Mt|No|Nos|"
                    r"Fig|Figs|Vol|Vols|Sec|Ch|Eq|vs|etc|cf|al|approx|esp|incl|Inc|Ltd|Co|Corp|"
                    r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)|\b[A-Za-z](?:\.[A-Za-z])*)\.$")
STOP = frozenset("""a an the of to in on at by for with from into about and or but nor not no
    is are was were be been being am it its it's this that these those there here he she they
    we you i me him her them us my your his our their what which who whom whose when where why
    how if then than so as do does did have has had can could will would shall should may might
    must all any each some one also only just very more most such every""".split())
CODE_CHARS = frozenset("{}[]<>=;|\\$#@`~^*_")
CODE_WORD = re.compile(r"[/\\_(){}\[\]<>=$@#]|::|->|\w\.\w|^--?\w|\w\.$")
ABBR_WORD = re.compile(r"(?:[A-Za-z]\.)+")
EDGE = "\"'\u201c\u201d\u2018\u2019()[],;:!?.*"
SHAPE_START = re.compile(r"^[\"'\u201c\u2018(\[]?[A-Z0-9]")
SHAPE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*$")


BOILERPLATE = re.compile(r"^\(?(?:Contributed|(?:Original |Initial )?[Pp]atch(?:es)?) by ")
KEY_WORD = re.compile(r"\w+")


def dedup_key(s):
    """Sentences with the same key are one sentence: casefolded words, punctuation ignored."""
    return " ".join(KEY_WORD.findall(s.casefold()))


def tidy(s):
    """Drops an opening or closing bracket or quote left unpaired by the sentence split."""
    for a, b in (("(", ")"), ('"', '"'), ("\u201c", "\u201d")):
        na, nb = s.count(a), s.count(b)
        if a == b:
            if na % 2 and s.startswith(a):
                s = s[1:]
            elif na % 2 and s.endswith(a):
                s = s[:-1]
        elif na == nb + 1 and s.startswith(a):
            s = s[1:]
        elif nb == na + 1 and s.endswith(b):
            s = s[:-1]
    return s.strip()


def normalize(text):
    text = unicodedata.normalize("NFC", text.replace("\u00a0", " ").replace("\u00ad", ""))
    return " ".join(text.split())


def split_sentences(text):
    out = []
    for piece in SENTENCE_END.split(text):
        if out and ABBREV.search(out[-1]):
            out[-1] += " " + piece
        else:
            out.append(piece)
    return out


def is_code_word(w):
    w = w.strip(EDGE)
    if not w or ABBR_WORD.fullmatch(w + "."):
        return False
    return bool(CODE_WORD.search(w))


def accept(s, shape=True):
    """The sentence rules of the docstring; s is already normalize()d."""
    words = s.split()
    n = len(words)
    if not MIN_WORDS <= n <= MAX_WORDS or len(s) > MAX_CHARS:
        return False
    letters = nonascii = code = 0
    for c in s:
        if c.isalpha():
            letters += 1
            if ord(c) > 127:
                nonascii += 1
        elif c in CODE_CHARS:
            code += 1
        elif c == "\ufffd" or "\u2500" <= c <= "\u259f" or unicodedata.category(c)[0] == "C":
            return False  # replacement char, box drawing, control/format/private-use
    if code > 2 or letters < 0.75 * (len(s) - n + 1) or nonascii > 0.05 * letters:
        return False
    if shape and not (SHAPE_START.match(s) and SHAPE_END.search(s)):
        return False
    if BOILERPLATE.match(s):
        return False
    stop = sum(w.strip(EDGE).lower() in STOP for w in words)
    if stop == 0 or stop < 0.1 * n:
        return False
    codey = sum(is_code_word(w) for w in words)
    return codey <= 2 and codey <= 0.15 * n


# ------------------------------------------------------------------------------------------
# readers: each yields blocks of running text (paragraphs); sentences are cut from them

def read_text(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def read_fortune(path):
    raw = re.sub(r".\x08", "", read_text(path))  # overstrike bold
    for chunk in raw.split("\n%\n"):
        lines = [l for l in chunk.split("\n") if l.strip() and not re.match(r"\s*(--|-- |~~)", l)]
        yield " ".join(lines)


def read_bible(path):
    data_dir = os.path.dirname(path)
    out = subprocess.run(["bible", "-f", "-p", data_dir, "gen1:1-rev22:21"], check=True,
                         capture_output=True, cwd="/").stdout.decode("utf-8", errors="replace")
    chapter, verses = None, []
    for line in out.splitlines():
        m = re.match(r"(\w+?\d*?)(\d+):(\d+) (.*)", line)
        if not m:
            continue
        if (m.group(1), m.group(2)) != chapter:
            if verses:
                yield " ".join(verses)
            chapter, verses = (m.group(1), m.group(2)), []
        verses.append(m.group(4))
    if verses:
        yield " ".join(verses)


def read_wordnet(path):
    for line in read_text(path).splitlines():
        if line.startswith(" ") or " | " not in line:
            continue
        gloss = line.split(" | ", 1)[1]
        for ex in re.findall(r'"([^"]+)"', gloss):
            yield ex.replace("`", "'")  # WordNet writes `quoted' words


def read_jargon(path):
    for para in re.split(r"\n[ \t]*\n", read_text(path)):
        lines = para.split("\n")
        if not all(l.startswith("   ") and not l.startswith("    ") for l in lines):
            continue  # headwords are indented the same; examples and tables are not
        text = " ".join(l.strip() for l in lines)
        if text.startswith(":"):
            continue
        text = re.sub(r"^\d+\.\s+", "", text)
        text = re.sub(r"^\[[^\]]*\]\s*", "", text)
        yield re.sub(r"\{([^{}]*)\}", r"\1", text)


HTML_DROP = re.compile(r"<(script|style|pre|table|head|h[1-6]|dt|title)\b.*?</\1\s*>", re.S | re.I)
HTML_P = re.compile(r"<p\b[^>]*>(.*?)</p\s*>|<div class=\"para\">(.*?)</div\s*>", re.S | re.I)
HTML_BR = re.compile(r"<br\b[^>]*>", re.I)
HTML_TAG = re.compile(r"<[^>]*>")


def read_html(path):
    doc = HTML_DROP.sub(" ", read_text(path))
    for m in HTML_P.finditer(doc):
        text = HTML_TAG.sub("", HTML_BR.sub(" ", m.group(1) or m.group(2) or ""))
        text = html.unescape(text).replace("\u00b6", "")
        yield re.sub(r"^\s*\[\d+\]\s*", "", text)  # a footnote's number


ROFF_ESC = [
    (re.compile(r"\\\".*"), ""),                              # comment
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),              # font changes
    (re.compile(r"\\s[-+]?\d+"), ""),                         # size changes
    (re.compile(r"\\\*\[(lq|Lq)\]|\\\(lq|\\\(Lq"), "\u201c"),
    (re.compile(r"\\\*\[(rq|Rq)\]|\\\(rq|\\\(Rq"), "\u201d"),
    (re.compile(r"\\\(aq|\\\(cq|\\\(oq"), "'"),
    (re.compile(r"\\\(dq"), '"'),
    (re.compile(r"\\\((em|en)"), "\u2014"),
    (re.compile(r"\\\((hy|mi)|\\-"), "-"),
    (re.compile(r"\\\(co"), "\u00a9"),
    (re.compile(r"\\\(bu"), "\u2022"),
    (re.compile(r"\\\((rs|rs)|\\e|\\\\"), "\\\\"),
    (re.compile(r"\\[ ~0]"), " "),
    (re.compile(r"\\[&|^:c%]|\\/|\\,"), ""),
    (re.compile(r"\\\(..|\\\[[^\]]*\]|\\\*(\(..|\[[^\]]*\]|.)"), "\ufffd"),  # rejected later
]
ROFF_SKIP_SECTIONS = {"SYNOPSIS", "SEE ALSO", "ATTRIBUTES", "COLOPHON", "NAME"}
ROFF_BREAK = {"PP", "P", "LP", "TP", "TQ", "IP", "HP", "SH", "SS", "sp", "br", "RS", "RE", "in",
              "ti", "bp", "ne", "PD", "UR", "UE", "MT", "ME", "ad", "na", "nh", "hy", "ce", "ft"}


def roff_inline(s):
    for rx, rep in ROFF_ESC:
        s = rx.sub(rep, s)
    return s


def roff_args(rest):
    args = re.findall(r'"((?:[^"]|"")*)"|(\S+)', rest)
    return [a or b for a, b in args]


def read_man(path):
    src = read_text(path)
    if re.match(r"\.so\s", src):
        return
    para, skip_section, nofill, table, tag_next = [], False, False, False, False

    def flush():
        if para and not skip_section:
            yield " ".join(para)
        para.clear()

    for line in src.split("\n"):
        if line.startswith((".", "'")):
            m = re.match(r"[.']\s*(\S*)\s*(.*)", line)
            name, rest = m.group(1), m.group(2)
            if name in ("nf", "EX"):
                yield from flush(); nofill = True; continue
            if name in ("fi", "EE"):
                nofill = False; continue
            if name == "TS":
                yield from flush(); table = True; continue
            if name == "TE":
                table = False; continue
            if nofill or table:
                continue
            if name in ("SH", "SS"):
                yield from flush()
                if name == "SH":
                    skip_section = " ".join(roff_args(rest)).upper() in ROFF_SKIP_SECTIONS
                continue
            if name in ROFF_BREAK:
                yield from flush()
                if name in ("TP", "TQ"):
                    tag_next = True
                continue
            if name in ("B", "I", "SM", "SB"):
                text = " ".join(roff_args(rest))
            elif re.fullmatch(r"[BIR][BIR]", name):
                text = "".join(roff_args(rest))
            else:
                continue  # other requests: no text
            if tag_next:
                tag_next = False; continue
            para.append(roff_inline(text))
            continue
        if nofill or table:
            continue
        if not line.strip():
            yield from flush(); continue
        if tag_next:
            tag_next = False; continue
        para.append(roff_inline(line))
    yield from flush()


POD_E = {"lt": "\ue000", "gt": "\ue001", "verbar": "|", "sol": "/"}


def pod_inline(s):
    def esc(m):
        name = m.group(1)
        if name in POD_E:
            return POD_E[name]
        if name.isdigit():
            return chr(int(name))
        if name.startswith("0x"):
            return chr(int(name, 16))
        return html.unescape("&%s;" % name)

    def code(letter, body):
        if letter in "XZ":
            return ""
        if letter == "L":
            body = body.split("|", 1)[0] if "|" in body else body.replace('"', "").lstrip("/")
        return body

    s = re.sub(r"E<([^<>]*)>", esc, s)
    for n in (4, 3, 2):
        s = re.sub(r"([A-Z])<{%d}\s+(.*?)\s+>{%d}" % (n, n), lambda m: code(m.group(1), m.group(2)), s,
                   flags=re.S)
    prev = None
    while prev != s:
        prev, s = s, re.sub(r"([A-Z])<([^<>]*)>", lambda m: code(m.group(1), m.group(2)), s)
    return s.replace("\ue000", "<").replace("\ue001", ">")


def read_pod(path):
    skip_to = None
    for para in re.split(r"\n[ \t]*\n", read_text(path)):
        if skip_to:
            if re.match(r"=end\s+" + re.escape(skip_to), para):
                skip_to = None
            continue
        if para.startswith("="):
            m = re.match(r"=begin\s+(\S+)", para)
            if m:
                skip_to = m.group(1)
            continue
        if not para or para[0] in " \t":
            continue  # verbatim (code)
        yield pod_inline(para)


READERS = {"fortune": read_fortune, "bible": read_bible, "wordnet": read_wordnet,
           "jargon": read_jargon, "html": read_html, "man": read_man, "pod": read_pod}


def sentences_of_file(kind, path):
    """All accepted sentences of one file, in order (duplicates included)."""
    shape = kind != "wordnet"
    out = []
    for block in READERS[kind](path):
        text = normalize(block)
        if not text:
            continue
        for s in ([text] if kind == "wordnet" else split_sentences(text)):
            s = tidy(s.strip())
            if accept(s, shape):
                out.append(s)
    return out


# ------------------------------------------------------------------------------------------
# packages

def dpkg_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", pkg],
                       capture_output=True, text=True)
    status, _, version = r.stdout.partition("\t")
    if r.returncode or not status.endswith(" installed"):
        sys.exit(f"distill_corpus: package {pkg} is not installed (run scripts/distill_corpus)")
    return version


def package_files(pkg, pattern, kind):
    rx = re.compile(pattern)
    lists = [f"/var/lib/dpkg/info/{pkg}.list"]
    lists += [os.path.join("/var/lib/dpkg/info", n) for n in sorted(os.listdir("/var/lib/dpkg/info"))
              if n.startswith(pkg + ":") and n.endswith(".list")]
    paths = []
    for name in lists:
        if os.path.exists(name):
            with open(name, encoding="utf-8") as f:
                paths += [l.rstrip("\n") for l in f]
    picked, absent = [], []
    for p in paths:
        if not rx.search(p) or os.path.isdir(p) or os.path.islink(p):
            continue
        if not os.path.isfile(p):
            absent.append(p)
            continue
        if kind == "fortune" and os.path.basename(p) in FORTUNE_SKIP:
            continue
        if kind == "html" and HTML_SKIP.search(p):
            continue
        picked.append(p)
    if absent:  # e.g. a dpkg path-exclude for /usr/share/doc: the corpus would silently shrink
        sys.exit(f"distill_corpus: {len(absent)} files of {pkg} are missing, e.g. {absent[0]} "
                 f"(dpkg path-exclude in /etc/dpkg/dpkg.cfg.d? reinstall the package without it)")
    return sorted(set(picked))


def split_of(h):
    u = int(h[:8], 16)
    if u < VALID_OF_2_32:
        return "valid"
    if u < VALID_OF_2_32 + EVAL_OF_2_32:
        return "eval"
    return "train"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(repo, "data", "distill"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    versions = {p: dpkg_version(p) for p, _, _ in SOURCES}
    versions.update({p: dpkg_version(p) for p in EXTRA_PACKAGES})
    changed = [f"{p} {v} (tested {TESTED_VERSIONS.get(p)})" for p, v in versions.items()
               if v != TESTED_VERSIONS.get(p)]
    if changed:
        print("distill_corpus: warning: package versions differ from the tested ones, so the "
              "corpus will too: " + ", ".join(changed), file=sys.stderr)
    jobs = []  # (package, kind, path)
    nfiles = {}
    for pkg, kind, pattern in SOURCES:
        files = package_files(pkg, pattern, kind)
        if not files:
            sys.exit(f"distill_corpus: no input files found in package {pkg}")
        nfiles[pkg] = len(files)
        jobs += [(pkg, kind, f) for f in files]

    # big files first so the workers finish together; results are put back in job order
    order = sorted(range(len(jobs)), key=lambda i: -os.path.getsize(jobs[i][2]))
    results = [None] * len(jobs)
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        futs = {i: ex.submit(sentences_of_file, jobs[i][1], jobs[i][2]) for i in order}
        for i in order:
            results[i] = futs[i].result()

    seen = {}      # sha256 of the key -> (sentence, package)
    keys = set()
    stats = {pkg: {"version": versions[pkg], "files": nfiles[pkg], "accepted": 0, "kept": 0,
                   "train": 0, "valid": 0, "eval": 0} for pkg, _, _ in SOURCES}
    for (pkg, _, _), sents in zip(jobs, results):
        stats[pkg]["accepted"] += len(sents)
        for s in sents:
            key = dedup_key(s)
            if key in keys:
                continue
            keys.add(key)
            h = hashlib.sha256(key.encode("utf-8")).hexdigest()
            seen[h] = (s, pkg)
            stats[pkg]["kept"] += 1

    os.makedirs(args.out, exist_ok=True)
    splits = {"train": [], "valid": [], "eval": []}
    for h in sorted(seen):
        s, pkg = seen[h]
        sp = split_of(h)
        splits[sp].append(s)
        stats[pkg][sp] += 1

    files = {}
    for sp in ("train", "valid", "eval"):
        rows = splits[sp]
        data = "".join(r + "\n" for r in rows).encode("utf-8")
        with open(os.path.join(args.out, sp + ".txt"), "wb") as f:
            f.write(data)
        files[sp] = {
            "file": sp + ".txt", "sentences": len(rows), "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "mean_words": round(sum(len(r.split()) for r in rows) / max(1, len(rows)), 3),
            "mean_chars": round(sum(len(r) for r in rows) / max(1, len(rows)), 3),
        }
    # check what was written: no empty line, tab or control character; no key in two places
    keys_seen = set()
    for sp in ("train", "valid", "eval"):
        with open(os.path.join(args.out, sp + ".txt"), "rb") as f:
            lines = f.read().decode("utf-8").split("\n")
        assert lines[-1] == "" and len(lines) - 1 == files[sp]["sentences"], sp
        for line in lines[:-1]:
            assert line and line == line.strip() and not any(
                unicodedata.category(c)[0] == "C" for c in line), (sp, line)
            k = dedup_key(line)
            assert k not in keys_seen, (sp, line)
            keys_seen.add(k)
    allrows = [r for sp in splits.values() for r in sp]
    manifest = {
        "purpose": "sentences for distilling all-MiniLM-L6-v2 into a 3-layer student (issue 11)",
        "made_by": "scripts/distill_corpus (scripts/distill_corpus.py)",
        "splits": files,
        "total": {
            "sentences": len(allrows),
            "mean_words": round(sum(len(r.split()) for r in allrows) / max(1, len(allrows)), 3),
            "mean_chars": round(sum(len(r) for r in allrows) / max(1, len(allrows)), 3),
        },
        "sources": [dict(package=pkg, kind=kind, **stats[pkg]) for pkg, kind, _ in SOURCES],
        "helper_packages": {p: versions[p] for p in EXTRA_PACKAGES},
        "unicode_version": unicodedata.unidata_version,
        "rules": {
            "words": [MIN_WORDS, MAX_WORDS], "max_chars": MAX_CHARS,
            "min_letter_fraction_of_nonspace": 0.75, "max_nonascii_letter_fraction": 0.05,
            "max_code_chars": 2, "code_chars": "".join(sorted(CODE_CHARS)),
            "max_code_words": "2 and <= 15% of words", "min_function_words": "1 and >= 10% of words",
            "shape": "starts [\"'(]?[A-Z0-9], ends [.!?][\"')]*; WordNet examples exempt",
            "unpaired_edge_brackets_quotes": "dropped",
            "credit_lines": "dropped: " + BOILERPLATE.pattern,
            "dedup_key": "' '.join(re.findall(r'\\w+', sentence.casefold())); first source wins",
            "split": "h = sha256(key) hex; u = int(h[:8], 16); u < 2^32//192: valid; "
                     "u < 2^32//192 + 2^32//25: eval; else train",
            "order": "each file sorted by h",
        },
    }
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")

    w = max(len(p) for p, _, _ in SOURCES)
    print(f"{'package':<{w}}  {'version':<24} {'files':>6} {'accepted':>9} {'kept':>8} "
          f"{'train':>8} {'valid':>6} {'eval':>6}")
    for pkg, _, _ in SOURCES:
        st = stats[pkg]
        print(f"{pkg:<{w}}  {st['version']:<24} {st['files']:>6} {st['accepted']:>9} "
              f"{st['kept']:>8} {st['train']:>8} {st['valid']:>6} {st['eval']:>6}")
    for sp in ("train", "valid", "eval"):
        x = files[sp]
        print(f"{sp}.txt: {x['sentences']} sentences, {x['bytes']} bytes, mean "
              f"{x['mean_words']} words / {x['mean_chars']} chars")
    t = manifest["total"]
    print(f"total: {t['sentences']} sentences, mean {t['mean_words']} words / "
          f"{t['mean_chars']} chars -> {args.out}")


if __name__ == "__main__":
    main()
