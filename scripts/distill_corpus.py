#!/usr/bin/env python3
"""Builds the English sentence corpus for distilling all-MiniLM-L6-v2 into a 3-layer student.

Issue 11. The teacher embeds these sentences; the student learns to match it. Everything comes
from Debian 12 packages (installed by scripts/distill_corpus, the entry point that runs this), so
the corpus is rebuilt byte for byte from the package versions recorded in manifest.json. Only
the Python standard library is used.

Sources (Debian package: what is read), processed in this order; a sentence belongs to the
first source it is found in. The first group is installed with apt-get (scripts/distill_corpus
does it) and read through dpkg's file lists:
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
The second group (DEB_SOURCES) is never installed: this script fetches each package's .deb with
`apt-get download` into --debs (default data/distill-debs; kept, so a re-run downloads nothing),
checks it against the SHA256 that apt's index gives, and unpacks the files it reads with
`dpkg-deb --fsys-tarfile` (regular files only) into --debs/x/PACKAGE_VERSION/. So no daemon,
post-install script or dependency comes along, and no root is needed once apt's lists exist.
  dict-gcide                  GNU Collaborative International Dictionary of English (Webster's
                              1913 and WordNet): definitions and the quotations that illustrate
                              them (literature, Bible, Shakespeare, ...); source tags and
                              "--Author." attributions dropped
  dict-foldoc                 the Free On-line Dictionary of Computing (entry text only)
  dict-devil                  Ambrose Bierce's The Devil's Dictionary (not the verse)
  sword-text-web              the World English Bible (public domain), verses joined per block
  sword-comm-mhcc             Matthew Henry's Concise Commentary (public domain)
  sword-comm-tdavid           C. H. Spurgeon's The Treasury of David (public domain)
  sword-comm-scofield         Scofield Reference Notes, 1917 (public domain); these four are
                              SWORD modules, read with the standard library (zlib blocks, OSIS
                              markup stripped, notes and titles dropped)
  crawl-common                Dungeon Crawl Stone Soup's English descriptions and its literary
                              quotations (dat/descript/*.txt; attributions dropped)
  endless-sky-data            Endless Sky's story text: missions, conversations, descriptions
                              (the `quoted` strings; ones with <substitutions> dropped)
  gimp-help-en, libreoffice-help-en-us, gnome-user-docs
                              the GIMP, LibreOffice and GNOME user help (English HTML / Mallard)
  systemd ... tk8.6-doc       man pages (roff, sections 1-8 and n) of 43 packages: MAN_PACKAGES
  coreutils, groff, bash-doc, zsh-doc, autoconf-doc, binutils-doc, libtool-doc, guile-3.0-doc
                              their Texinfo manuals (info files: paragraphs, not menus,
                              examples or definition lines)
  vim-runtime                 Vim's help files (not version*.txt and todo.txt, patch notes)
  perl-modules-5.36, libperl5.36
                              the POD of Perl's core modules (.pm, .pod)
  golang-1.19-doc             the Go specification and memory model (HTML)
  golang-1.19-src             the Go standard library's comments (// lines; not tests)
  openjdk-17-doc              the Java 17 API documentation (javadoc description blocks)
  qtbase5-doc-html, erlang-doc, racket-doc, rust-doc, ghc-doc, libstdc++-12-doc (doxygen:
  not its "Definition at line" / "References" lines), cppreference-doc-en-html,
  libboost1.74-doc, sqlite3-doc, cmake-doc, python-django-doc, python-sklearn-doc,
  python-scipy-doc, python-sympy-doc, python-sqlalchemy-doc, python-pandas-doc,
  python-astropy-doc, python-ipython-doc, sphinx-doc, nodejs-doc, libglib2.0-doc,
  libgtk-3-doc, octave-doc, maxima-doc, gap-doc, r-doc-html, lilypond-doc-html, apache2-doc,
  exim4-doc-html, postfix-doc, bind9-doc, xorg-docs, doxygen-doc, debian-faq, harden-doc,
  abs-guide, debmake-doc, debian-history, sbcl-doc
                              manuals, guides and API references (HTML; English only)
Only prose is read: HTML <p> paragraphs (never <pre>, tables, headings, scripts), roff text
outside no-fill/example/table blocks and outside SYNOPSIS, SEE ALSO, ATTRIBUTES, COLOPHON;
POD ordinary paragraphs (never verbatim blocks or =item tags); info paragraphs that are not
indented; Vim help paragraphs without tabs, tags or example markers.

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
eval.txt and manifest.json (package versions and, for downloaded ones, the .deb's name, size
and SHA256; sentences per package and split, per-file sha256, bytes, mean words and
characters, and these rules). Nothing in them depends on the time or the machine, only on the
package versions (and the Python's Unicode version, recorded). --max-train N keeps only the
first N sentences of train.txt (in its hash order, so a fixed, topic-mixed subset; valid.txt
and eval.txt stay whole); the manifest records N and how many were left out.

Usage:
    scripts/distill_corpus [--out DIR] [--debs DIR] [--max-train N]   # installs, then runs this
    python3 scripts/distill_corpus.py [--out DIR] [--debs DIR] [--jobs N] [--max-train N]
"""
import argparse
import gzip
import hashlib
import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import unicodedata
import zlib
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
MAN = r"^/usr/share/man/man[\dn]\w*/[^/]+\.gz$"
MAN_PACKAGES = [
    "systemd", "util-linux", "iproute2", "procps", "mount", "e2fsprogs", "xfsprogs", "btrfs-progs",
    "lvm2", "mdadm", "cryptsetup-bin", "sudo", "rsync", "openssh-client", "openssl", "nmap", "tor",
    "iptables", "gpg", "dnsmasq-base", "exim4-base", "slapd", "samba-common-bin", "mutt",
    "neomutt", "screen", "tmux", "less", "mpv", "wireshark-common", "apt", "dpkg", "dpkg-dev",
    "debhelper", "mercurial-common", "bash", "groff-base", "valgrind", "libssl-doc", "libx11-doc",
    "libcurl4-doc", "tcl8.6-doc", "tk8.6-doc"]
INFO = r"^/usr/share/info/.*\.info(-\d+)?\.gz$"


def sphinx(pkg):
    return (pkg, "html", r"^/usr/share/doc/%s/html/.*\.html$" % re.escape(pkg))


# Read from .deb files fetched with apt-get download (never installed); same fields as SOURCES.
DEB_SOURCES = [
    ("dict-gcide", "gcide", r"^/usr/share/dictd/gcide\.dict\.dz$"),
    ("dict-foldoc", "foldoc", r"^/usr/share/dictd/foldoc\.dict\.dz$"),
    ("dict-devil", "devil", r"^/usr/share/dictd/devil\.dict\.dz$"),
    ("sword-text-web", "sword", r"^/usr/share/sword/modules/texts/ztext/[^/]+/[no]t\.bz[svz]$"),
    ("sword-comm-mhcc", "sword", r"^/usr/share/sword/modules/comments/zcom/[^/]+/[no]t\.bz[svz]$"),
    ("sword-comm-tdavid", "sword", r"^/usr/share/sword/modules/comments/zcom/[^/]+/[no]t\.cz[svz]$"),
    ("sword-comm-scofield", "sword", r"^/usr/share/sword/modules/comments/zcom/[^/]+/[no]t\.bz[svz]$"),
    ("crawl-common", "crawl", r"^/usr/share/crawl/dat/descript/[a-z_]+\.txt$"),
    ("endless-sky-data", "backtick", r"^/usr/share/games/endless-sky/data/.*\.txt$"),
    ("gimp-help-en", "html", r"^/usr/share/gimp/2\.0/help/en/.*\.html$"),
    ("libreoffice-help-en-us", "html", r"^/usr/share/libreoffice/help/en-US/.*\.html$"),
    ("gnome-user-docs", "html", r"^/usr/share/help/C/.*\.page$"),
] + [(p, "man", MAN) for p in MAN_PACKAGES] + [
    ("coreutils", "info", INFO),
    ("groff", "info", INFO),
    ("bash-doc", "info", INFO),
    ("zsh-doc", "info", INFO),
    ("autoconf-doc", "info", INFO),
    ("binutils-doc", "info", INFO),
    ("libtool-doc", "info", INFO),
    ("guile-3.0-doc", "info", INFO),
    ("vim-runtime", "vimhelp", r"^/usr/share/vim/vim\d+/doc/(?!version\d|todo)[^/]+\.txt$"),
    ("perl-modules-5.36", "pod", r"^/usr/share/perl/[^/]+/.*\.(pm|pod)$"),
    ("libperl5.36", "pod", r"^/usr/lib/[^/]+/perl/[^/]+/.*\.(pm|pod)$"),
    ("golang-1.19-doc", "html", r"^/usr/share/doc/golang-1\.19-doc/html/.*\.html$"),
    ("golang-1.19-src", "gocomments", r"^/usr/share/go-1\.19/src/(?!.*/testdata/).*(?<!_test)\.go$"),
    ("openjdk-17-doc", "javadoc", r"^/usr/share/doc/openjdk-17-jre-headless/api/.*\.html$"),
    ("qtbase5-doc-html", "html", r"^/usr/share/qt5/doc/.*\.html$"),
    ("erlang-doc", "html", r"^/usr/share/doc/erlang-doc/.*\.html$"),
    ("racket-doc", "html", r"^/usr/share/doc/racket/.*\.html$"),
    ("rust-doc", "html", r"^/usr/share/doc/rust-doc/html/(?!src/|core/(?:core_)?arch/).*\.html$"),
    ("ghc-doc", "html", r"^/usr/share/doc/ghc-doc/html/.*\.html$"),
    ("libstdc++-12-doc", "doxygen", r"^/usr/share/doc/gcc-12-base/libstdc\+\+/.*\.html$"),
    ("cppreference-doc-en-html", "html", r"^/usr/share/cppreference/doc/html/.*\.html$"),
    ("libboost1.74-doc", "html", r"^/usr/share/doc/libboost1\.74-doc/.*\.html?$"),
    ("sqlite3-doc", "html", r"^/usr/share/doc/sqlite3/.*\.html$"),
    ("cmake-doc", "html", r"^/usr/share/doc/cmake-data/html/.*\.html$"),
    sphinx("python-django-doc"), sphinx("python-sklearn-doc"), sphinx("python-scipy-doc"),
    sphinx("python-sympy-doc"), sphinx("python-sqlalchemy-doc"), sphinx("python-pandas-doc"),
    sphinx("python-astropy-doc"), sphinx("python-ipython-doc"), sphinx("sphinx-doc"),
    ("nodejs-doc", "html", r"^/usr/share/doc/nodejs/api/.*\.html$"),
    ("libglib2.0-doc", "html", r"^/usr/share/gtk-doc/html/.*\.html$"),
    ("libgtk-3-doc", "html", r"^/usr/share/gtk-doc/html/.*\.html$"),
    ("octave-doc", "html", r"^/usr/share/doc/octave/.*\.html$"),
    ("maxima-doc", "html", r"^/usr/share/doc/maxima-doc/html/.*\.html$"),
    ("gap-doc", "html", r"^/usr/share/(gap/doc|doc/gap-doc)/.*\.html$"),
    ("r-doc-html", "html", r"^/usr/share/R/doc/manual/.*\.html$"),
    ("lilypond-doc-html", "html", r"^/usr/share/doc/lilypond/html/.*\.html$"),
    ("apache2-doc", "html", r"^/usr/share/doc/apache2-doc/manual/en/.*\.html$"),
    ("exim4-doc-html", "html", r"^/usr/share/doc/exim4-doc-html/.*\.html$"),
    ("postfix-doc", "html", r"^/usr/share/doc/postfix/html/.*\.html$"),
    ("bind9-doc", "html", r"^/usr/share/doc/bind9-doc/arm/.*\.html$"),
    ("xorg-docs", "html", r"^/usr/share/doc/xorg-docs/.*\.x?html$"),
    ("doxygen-doc", "html", r"^/usr/share/doc/doxygen/html/.*\.html$"),
    ("debian-faq", "html", r"^/usr/share/doc/debian/FAQ/[^/]+\.en\.html$"),
    ("harden-doc", "html", r"^/usr/share/doc/harden-doc/html/en-US/.*\.html$"),
    ("abs-guide", "html", r"^/usr/share/doc/abs-guide/html/.*\.html$"),
    ("debmake-doc", "html", r"^/usr/share/doc/debmake-doc/html/[^/]+\.en\.html$"),
    ("debian-history", "html", r"^/usr/share/doc/debian-history/docs/[^/]+\.en\.html$"),
    ("sbcl-doc", "html", r"^/usr/share/doc/sbcl/.*\.html$"),
]
EXTRA_PACKAGES = ["bible-kjv"]  # the reader of bible-kjv-text's compressed text

# The versions the corpus was built and checked with (Debian 12 bookworm and its security
# updates, as the mirror served them then). Other versions work too, but give a somewhat different corpus: a warning
# says so, and manifest.json always records the versions actually read.
TESTED_VERSIONS = {
    "fortunes-min": "1:1.99.1-7.3", "fortunes": "1:1.99.1-7.3", "fortune-anarchism": "1.8.0-1",
    "bible-kjv-text": "4.38", "bible-kjv": "4.38", "wordnet-base": "1:3.0-37",
    "jargon-text": "4.4.7-4.1", "debian-handbook": "11.20220922", "debian-reference-en": "2.100",
    "maint-guide": "1.2.53", "developers-reference": "12.18", "debian-policy": "4.6.2.0",
    "gnu-standards": "2022.03.23-0.1", "git-doc": "1:2.39.5-0+deb12u3", "manpages": "6.03-2",
    "manpages-dev": "6.03-2", "perl-doc": "5.36.0-7+deb12u4", "python3.11-doc": "3.11.2-6+deb12u9",
    "postgresql-doc-15": "15.20-0+deb12u1", "linux-doc-6.1": "6.1.192-3",
    # downloaded (DEB_SOURCES)
    "dict-gcide": "0.48.5+nmu2", "dict-foldoc": "20230119-1", "dict-devil": "1.0-13.1",
    "sword-text-web": "426.0-1", "sword-comm-mhcc": "2.0-1", "sword-comm-tdavid": "2.1-1",
    "sword-comm-scofield": "2.1-1", "crawl-common": "2:0.28.0-1.1",
    "endless-sky-data": "0.9.8-1.2", "gimp-help-en": "2.10.34-2",
    "libreoffice-help-en-us": "4:7.4.7-1+deb12u14", "gnome-user-docs": "43.0-2",
    "systemd": "252.39-1~deb12u2", "util-linux": "2.38.1-5+deb12u3", "iproute2": "6.1.0-3",
    "procps": "2:4.0.2-3", "mount": "2.38.1-5+deb12u3", "e2fsprogs": "1.47.0-2+b2",
    "xfsprogs": "6.1.0-1", "btrfs-progs": "6.2-1+deb12u2", "lvm2": "2.03.16-2", "mdadm": "4.2-5",
    "cryptsetup-bin": "2:2.6.1-4~deb12u2", "sudo": "1.9.13p3-1+deb12u4",
    "rsync": "3.5.0+ds1-0+deb12u1", "openssh-client": "1:9.2p1-2+deb12u10",
    "openssl": "3.0.22-1~deb12u2", "nmap": "7.93+dfsg1-1", "tor": "0.4.9.11-0+deb12u1",
    "iptables": "1.8.9-2", "gpg": "2.2.40-1.1+deb12u2", "dnsmasq-base": "2.90-4~deb12u2",
    "exim4-base": "4.96-15+deb12u11", "slapd": "2.5.13+dfsg-5",
    "samba-common-bin": "2:4.17.12+dfsg-0+deb12u4", "mutt": "2.2.12-0.1~deb12u2",
    "neomutt": "20220429+dfsg1-4.1", "screen": "4.9.0-4", "tmux": "3.3a-3",
    "less": "590-2.1~deb12u2", "mpv": "0.35.1-4", "wireshark-common": "4.0.17-0+deb12u3",
    "apt": "2.6.2", "dpkg": "1.21.23", "dpkg-dev": "1.21.23", "debhelper": "13.11.4",
    "mercurial-common": "6.3.2-1+deb12u1", "bash": "5.2.15-2+b13", "groff-base": "1.22.4-10",
    "valgrind": "1:3.19.0-1", "libssl-doc": "3.0.22-1~deb12u2", "libx11-doc": "2:1.8.4-2+deb12u2",
    "libcurl4-doc": "7.88.1-10+deb12u15", "tcl8.6-doc": "8.6.13+dfsg-2", "tk8.6-doc": "8.6.13-2",
    "coreutils": "9.1-1", "groff": "1.22.4-10", "bash-doc": "5.2.15-2", "zsh-doc": "5.9-4",
    "autoconf-doc": "2.71-3", "binutils-doc": "2.40-2", "libtool-doc": "2.4.7-7~deb12u1",
    "guile-3.0-doc": "3.0.8-2", "vim-runtime": "2:9.0.1378-2+deb12u2",
    "perl-modules-5.36": "5.36.0-7+deb12u4", "libperl5.36": "5.36.0-7+deb12u4",
    "golang-1.19-doc": "1.19.8-2", "golang-1.19-src": "1.19.8-2",
    "openjdk-17-doc": "17.0.21.1+2-1~deb12u1", "qtbase5-doc-html": "5.15.8+dfsg-11+deb12u3",
    "erlang-doc": "1:25.2.3+dfsg-1+deb12u4", "racket-doc": "8.7+dfsg1-1",
    "rust-doc": "1.63.0+dfsg1-2", "ghc-doc": "9.0.2-4", "libstdc++-12-doc": "12.2.0-14+deb12u1",
    "cppreference-doc-en-html": "20170409-2", "libboost1.74-doc": "1.74.0+ds1-21",
    "sqlite3-doc": "3.40.1-2+deb12u2", "cmake-doc": "3.25.1-1",
    "python-django-doc": "3:3.2.25-0+deb12u7", "python-sklearn-doc": "1.2.1+dfsg-1",
    "python-scipy-doc": "1.10.1-2", "python-sympy-doc": "1.11.1-1",
    "python-sqlalchemy-doc": "1.4.46+ds1-1", "python-pandas-doc": "1.5.3+dfsg-2",
    "python-astropy-doc": "5.2.1-2+deb12u1", "python-ipython-doc": "8.5.0-4",
    "sphinx-doc": "5.3.0-4", "nodejs-doc": "18.20.4+dfsg-1~deb12u3",
    "libglib2.0-doc": "2.74.6-2+deb12u9", "libgtk-3-doc": "3.24.38-2~deb12u3",
    "octave-doc": "7.3.0-2", "maxima-doc": "5.46.0-11", "gap-doc": "4.12.1-2",
    "r-doc-html": "4.2.2.20221110-2", "lilypond-doc-html": "2.24.1-2",
    "apache2-doc": "2.4.71-1~deb12u1", "exim4-doc-html": "4.96-1",
    "postfix-doc": "3.7.11-0+deb12u1", "bind9-doc": "1:9.18.49-1~deb12u3",
    "xorg-docs": "1:1.7.1-1.2", "doxygen-doc": "1.9.4-4", "debian-faq": "11.1",
    "harden-doc": "3.19+nmu1", "abs-guide": "10-4", "debmake-doc": "1.17-7",
    "debian-history": "2.28", "sbcl-doc": "2:2.2.9-1",
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
    if not w or w.isalpha() or ABBR_WORD.fullmatch(w + "."):
        return False  # (CODE_WORD needs a character that is not a letter)
    return bool(CODE_WORD.search(w))


CODE_CHARS_DEL = str.maketrans("", "", "".join(sorted(CODE_CHARS)))
CODE_CHARS_B = "".join(sorted(CODE_CHARS)).encode("ascii")
ASCII_LETTERS_B = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def accept(s, shape=True):
    """The sentence rules of the docstring; s is already normalize()d. A sentence must pass
    every rule, so they are tried cheapest first."""
    if len(s) > MAX_CHARS:
        return False
    words = s.split()
    n = len(words)
    if not MIN_WORDS <= n <= MAX_WORDS:
        return False
    if shape and not (SHAPE_START.match(s) and SHAPE_END.search(s)):
        return False
    if s.isascii():
        b = s.encode("ascii")
        if len(b) - len(b.translate(None, CODE_CHARS_B)) > 2:
            return False
        if not s.isprintable():
            return False  # control characters
        letters, nonascii = len(b) - len(b.translate(None, ASCII_LETTERS_B)), 0
    else:
        if len(s) - len(s.translate(CODE_CHARS_DEL)) > 2:
            return False
        letters = nonascii = 0
        for c in s:
            if c.isalpha():
                letters += 1
                if ord(c) > 127:
                    nonascii += 1
            elif c == "\ufffd" or "\u2500" <= c <= "\u259f" or unicodedata.category(c)[0] == "C":
                return False  # replacement char, box drawing, control/format/private-use
    if letters < 0.75 * (len(s) - n + 1) or nonascii > 0.05 * letters:
        return False
    if BOILERPLATE.match(s):
        return False
    bare = [w.strip(EDGE) for w in words]
    stop = len([w for w in bare if w.lower() in STOP])
    if stop == 0 or stop < 0.1 * n:
        return False
    codey = len([w for w in bare if w and not w.isalpha() and not ABBR_WORD.fullmatch(w + ".")
                 and CODE_WORD.search(w)])  # is_code_word
    return codey <= 2 and codey <= 0.15 * n


# ------------------------------------------------------------------------------------------
# readers: each yields blocks of running text (paragraphs); sentences are cut from them

def read_text(path):
    opener = gzip.open if path.endswith((".gz", ".dz")) else open  # .dz: dictzip, gzip-compatible
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


def read_html(path, doc=None):
    doc = HTML_DROP.sub(" ", read_text(path) if doc is None else doc)
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


DOXYGEN_DROP = re.compile(r"<p class=\"(?:definition|reference|referencedby|reimplements|"
                          r"reimplementedin|inherits)\"[^>]*>.*?</p\s*>", re.S)


def read_doxygen(path):
    """HTML as read_html, less doxygen's "Definition at line ..." and "References ..." lines."""
    yield from read_html(path, DOXYGEN_DROP.sub(" ", read_text(path)))


JAVADOC_BLOCK = re.compile(r"<div class=\"block\">(.*?)</div>", re.S)
HTML_PARA_BREAK = re.compile(r"</?(?:p|ul|ol|li|dl|dt|dd|blockquote|h\d)\b[^>]*>", re.I)


def read_javadoc(path):
    """Javadoc pages: the description blocks (their <p> are rarely closed), cut at paragraphs."""
    doc = HTML_DROP.sub(" ", read_text(path))
    for m in JAVADOC_BLOCK.finditer(doc):
        for para in HTML_PARA_BREAK.split(m.group(1)):
            yield html.unescape(HTML_TAG.sub("", HTML_BR.sub(" ", para)))


GCIDE_TAG = re.compile(r"\[(?:1913 Webster|Webster 1913 Suppl\.|Webster|PJC|WordNet 1\.5|"
                       r"Century Dict\.|RN|JC|MW|NRCD|CIDE|AS|Chambers)[^\]]*\]")


GCIDE_BRACES = re.compile(r"\{([^{}]*)\}")
GCIDE_ATTRIBUTION = re.compile(r"\s--(?=[A-Z])[^.]*(?:\.[^A-Z]*)?")
GCIDE_NUMBER = re.compile(r"^\s*(?:\d+\.|\([a-z]\))\s*")
GCIDE_FIELD = re.compile(r"^\((?:[A-Z][a-z]*\.?\s*)+\)\s*")
PARA_SPLIT = re.compile(r"\n[ \t]*\n")


def read_gcide(path):
    """GCIDE (dictd text): the definition and quotation paragraphs of each entry; headword
    lines with their [etymology], source tags such as [1913 Webster] and "--Author."
    attributions dropped."""
    for block in PARA_SPLIT.split(read_text(path)):
        lines = block.split("\n")
        i = depth = 0  # headword line(s) at column 0, and the [etymology] they open
        while i < len(lines) and (depth > 0 or (lines[i] and not lines[i].startswith("   "))):
            depth += lines[i].count("[") - lines[i].count("]")
            i += 1
        lines = lines[i:]
        body = GCIDE_TAG.sub(" ", " ".join(l.strip() for l in lines))
        body = GCIDE_BRACES.sub(r"\1", body)
        for part in GCIDE_ATTRIBUTION.split(body):
            part = GCIDE_NUMBER.sub("", part.strip())
            yield GCIDE_FIELD.sub("", part)  # (Physiol.)


def read_foldoc(path):
    """FOLDOC (dictd text): entry paragraphs (indented 3); not headwords, examples (indented
    deeper), references ["..."] or dates; <category> tags and {link} braces dropped."""
    for block in re.split(r"\n[ \t]*\n", read_text(path)):
        lines = block.split("\n")
        if not all(l.startswith("   ") and not l.startswith("    ") for l in lines):
            continue
        t = " ".join(l.strip() for l in lines)
        if t.startswith("[") or re.fullmatch(r"\(\d{4}-\d\d-\d\d\)", t):
            continue
        t = re.sub(r"^(?:<[^<>]*>\s*)+", "", t)
        t = re.sub(r"\{\(?(?:https?|ftp)://[^}]*\}", "\ufffd", t)
        yield re.sub(r"\{([^{}]*)\}", r"\1", t)


def read_devil(path):
    """The Devil's Dictionary (dictd text): the definitions, without the headword and part of
    speech; verse (indented) skipped; _italics_ marks dropped."""
    for block in re.split(r"\n[ \t]*\n", read_text(path)):
        lines = block.split("\n")
        if any(l.startswith(" ") for l in lines):
            continue
        t = " ".join(l.strip() for l in lines)
        t = re.sub(r"^[A-Z][A-Z' -]+, (?:n|v|adj|adv|pp|x|v\.t|v\.i|pron|prep|conj|interj|p\.p)\."
                   r"(?:, [a-z.]+)*\s+", "", t)
        yield t.replace("_", "")


SWORD_DROP = re.compile(r"<(note|title|rdg)\b[^>/]*>.*?</\1\s*>", re.S)
SWORD_BREAK = re.compile(r"<(?:div|p|lb|br|l|lg|item|list|table|row|cell)\b[^>]*>|"
                         r"</(?:p|div|l|lg|item|cell|row)\s*>")


def sword_entries(path):
    """A SWORD zText/zCom module, path its block index (*.bzs; *.czs for zCom4): the entries
    (verses, or a commentary's notes) in canonical order, each (block, offset) once."""
    base = path[:-1]
    with open(path, "rb") as f:
        bidx = f.read()
    with open(base + "v", "rb") as f:
        vidx = f.read()
    with open(base + "z", "rb") as f:
        data = f.read()
    fmt = "<III" if path.endswith("czs") else "<IIH"  # entry: block, offset, size
    step = struct.calcsize(fmt)
    cur, blk, done = None, b"", set()
    for i in range(0, len(vidx) - step + 1, step):
        b, off, size = struct.unpack(fmt, vidx[i:i + step])
        if size == 0 or (b, off, size) in done:
            continue  # a commentary note shared by several verses is stored once
        done.add((b, off, size))
        if b != cur:
            o, s, _ = struct.unpack("<III", bidx[12 * b:12 * b + 12])
            cur, blk = b, zlib.decompress(data[o:o + s])
        yield b, blk[off:off + size].decode("utf-8", errors="replace")


def sword_text(entry, breaks):
    entry = SWORD_BREAK.sub("\n\n" if breaks else " ", SWORD_DROP.sub(" ", entry))
    return html.unescape(HTML_TAG.sub("", entry))


def read_sword(path):
    if "/texts/" in path:  # a Bible: its verses joined per block (a chapter or a book)
        cur, verses = None, []
        for b, e in sword_entries(path):
            if b != cur and verses:
                yield " ".join(verses)
                verses = []
            cur = b
            verses.append(sword_text(e, False))
        if verses:
            yield " ".join(verses)
    else:  # a commentary: each note's paragraphs
        for _, e in sword_entries(path):
            yield from re.split(r"\n\s*\n", sword_text(e, True))


def read_crawl(path):
    """Dungeon Crawl's description database: entries between %%%% lines, the first line the
    key; paragraphs with markup or substitutions skipped, "-Author" attributions dropped."""
    for entry in read_text(path).split("%%%%"):
        lines = [l for l in entry.strip().split("\n") if not l.startswith("#")]
        for para in re.split(r"\n[ \t]*\n", "\n".join(lines[1:])):
            para = re.sub(r"\n\s*-[A-Z\"\u201c_].*", "", para, flags=re.S)
            if re.search(r"<\w[^>]*>|\{\{|@\w+@|\$", para):
                continue
            yield para.replace("_", "")


def read_backtick(path):
    """Endless Sky's data files: the `quoted` text of conversations, missions and descriptions;
    one with a <substitution> or &[...] is made unacceptable."""
    for m in re.finditer(r"`([^`]*)`", read_text(path)):
        yield re.sub(r"<[^>]*>|&\[[^\]]*\]", "\ufffd", m.group(1))


def read_info(path):
    """A Texinfo info file: paragraphs of its nodes; not menus, headings, definition lines
    ("-- Function: ..."), or indented blocks (examples, tables); *note cross-references kept
    as their label, quotes '...' made ASCII."""
    for node in read_text(path).split("\x1f")[1:]:
        if node.startswith(("\nTag Table:", "\nIndirect:", "\nEnd Tag Table")):
            continue
        for para in re.split(r"\n[ \t]*\n", "\n".join(node.split("\n")[2:])):
            pl = para.split("\n")
            if not pl[0].strip():
                continue
            if any(l.startswith(("      ", "\t")) for l in pl):
                continue
            if pl[0].startswith("* ") or re.match(r"[=*-]{3,}$", pl[-1].strip()) or \
                    pl[0].lstrip().startswith(("-- ", "\u2019", "\u2018")):
                continue
            t = " ".join(l.strip() for l in pl)
            t = re.sub(r"\*[Nn]ote\s+([^:]*)::", r"\1", t)
            t = re.sub(r"\*[Nn]ote\s+[^:]*:\s*[^.,]*[.,]", "", t)
            yield t.replace("\u2018", "'").replace("\u2019", "'")


def read_vimhelp(path):
    """Vim help: paragraphs without tabs or indentation (examples, tables), headings, rulers
    or *tag* lines; |link| bars dropped, *tags* removed."""
    for block in re.split(r"\n[ \t]*\n", read_text(path)):
        lines = block.split("\n")
        if any(l.startswith(("\t", " ", "*", "=", "-")) or "\t" in l or l.rstrip().endswith("~")
               for l in lines):
            continue
        t = re.sub(r"\s>$", "", " ".join(lines))  # '>' at the end: an example follows
        t = re.sub(r"\|([^|\s]+)\|", r"\1", t)
        yield re.sub(r"\*[^*\s]+\*", " ", t)


def read_gocomments(path):
    """Go source: runs of // comment lines, cut at empty or indented (code) comment lines;
    not //go: directives or build tags."""
    para = []
    for line in read_text(path).split("\n"):
        s = line.strip()
        if s.startswith("//") and not s.startswith(("//go:", "// +build")):
            body = s[2:]
            if body.startswith(("\t", "   ")) or not body.strip():
                if para:
                    yield " ".join(para)
                    para = []
                continue
            para.append(body.strip())
        elif para:
            yield " ".join(para)
            para = []
    if para:
        yield " ".join(para)


READERS = {"fortune": read_fortune, "bible": read_bible, "wordnet": read_wordnet,
           "jargon": read_jargon, "html": read_html, "man": read_man, "pod": read_pod,
           "doxygen": read_doxygen, "javadoc": read_javadoc, "gcide": read_gcide,
           "foldoc": read_foldoc, "devil": read_devil, "sword": read_sword, "crawl": read_crawl,
           "backtick": read_backtick, "info": read_info, "vimhelp": read_vimhelp,
           "gocomments": read_gocomments}


def sentences_of_file(kind, path):
    """All accepted sentences of one file, in order (duplicates included), each with the
    sha256 (hex) of its key."""
    shape = kind != "wordnet"
    out = []
    for block in READERS[kind](path):
        text = normalize(block)
        if not text:
            continue
        for s in ([text] if kind == "wordnet" else split_sentences(text)):
            s = tidy(s.strip())
            if accept(s, shape):
                out.append((s, hashlib.sha256(dedup_key(s).encode("utf-8")).hexdigest()))
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


def keep_file(kind, path):
    if kind == "fortune" and os.path.basename(path) in FORTUNE_SKIP:
        return False
    if kind in ("html", "doxygen", "javadoc") and HTML_SKIP.search(path):
        return False
    if kind == "sword" and not path.endswith("zs"):
        return False  # the block index is read; the verse index and the text lie beside it
    return True


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
        if keep_file(kind, p):
            picked.append(p)
    if absent:  # e.g. a dpkg path-exclude for /usr/share/doc: the corpus would silently shrink
        sys.exit(f"distill_corpus: {len(absent)} files of {pkg} are missing, e.g. {absent[0]} "
                 f"(dpkg path-exclude in /etc/dpkg/dpkg.cfg.d? reinstall the package without it)")
    return sorted(set(picked))


def log(msg):
    print("distill_corpus: " + msg, file=sys.stderr, flush=True)


def as_root(cmd):
    return cmd if os.geteuid() == 0 else ["sudo"] + cmd


def apt_update():
    log("apt-get update")
    subprocess.run(as_root(["apt-get", "update", "-qq"]), check=True)


def apt_records(pkgs):
    """apt's record of each package's candidate version: Version, Architecture, SHA256, ..."""
    r = subprocess.run(["apt-cache", "show", "--no-all-versions", *pkgs], capture_output=True,
                       text=True)
    recs = {}
    for para in r.stdout.split("\n\n"):
        f = dict(re.findall(r"^([\w-]+): (.*)$", para, re.M))
        if "Package" in f and f["Package"] not in recs:
            recs[f["Package"]] = f
    return recs


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def deb_name(rec):
    return "%s_%s_%s.deb" % (rec["Package"], rec["Version"].replace(":", "%3a"),
                             rec["Architecture"])


def fetch_debs(pkgs, debs):
    """Each package's .deb (apt's candidate version) in debs, downloaded where missing and
    checked against apt's SHA256. Returns {package: (apt record, path)}."""
    os.makedirs(debs, exist_ok=True)
    recs = apt_records(pkgs)
    if any(p not in recs for p in pkgs):
        apt_update()
        recs = apt_records(pkgs)
    missing = [p for p in pkgs if p not in recs]
    if missing:
        sys.exit("distill_corpus: apt knows no package " + ", ".join(missing))
    for attempt in (0, 1):
        need = [p for p in pkgs if not os.path.exists(os.path.join(debs, deb_name(recs[p])))]
        if not need:
            break
        log(f"downloading {len(need)} packages ({sum(int(recs[p]['Size']) for p in need) >> 20}"
            f" MiB) into {debs}")
        tmp = tempfile.mkdtemp(prefix="download.", dir=debs)
        os.chmod(tmp, 0o755)
        opts = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
        r = subprocess.run(["apt-get", "download", "-qq", *opts,
                            *[f"{p}={recs[p]['Version']}" for p in need]], cwd=tmp)
        for name in sorted(os.listdir(tmp)):
            f = os.path.join(tmp, name)
            pkg = subprocess.run(["dpkg-deb", "-f", f, "Package"], capture_output=True,
                                 text=True, check=True).stdout.strip()
            if pkg in recs and sha256_file(f) == recs[pkg]["SHA256"]:
                os.replace(f, os.path.join(debs, deb_name(recs[pkg])))
        shutil.rmtree(tmp)
        if r.returncode and attempt == 0:
            apt_update()  # the lists may name versions the mirror no longer has
            recs = apt_records(pkgs)
    out = {}
    for p in pkgs:
        path = os.path.join(debs, deb_name(recs[p]))
        if not os.path.exists(path):
            sys.exit(f"distill_corpus: could not download {p} {recs[p]['Version']}")
        out[p] = (recs[p], path)
    return out


def unpack(deb, pattern, dest):
    """The regular files of a .deb whose path matches pattern, under dest (made once)."""
    if os.path.isdir(dest):
        return dest
    rx = re.compile(pattern)
    tmp = dest + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tf:
        for m in tf:
            name = "/" + (m.name[2:] if m.name.startswith("./") else m.name).lstrip("/")
            if not (m.isfile() and rx.search(name)):
                continue
            out = os.path.join(tmp, name[1:])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with tf.extractfile(m) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
    if proc.wait():
        raise RuntimeError(f"distill_corpus: dpkg-deb failed on {deb}")
    os.rename(tmp, dest)
    return dest


def prune(debs, keep_debs, keep_dirs):
    """Removes the .deb files and unpacked trees of other versions (or patterns) from debs."""
    for name in os.listdir(debs):
        if name.endswith(".deb") and name not in keep_debs:
            os.remove(os.path.join(debs, name))
    xdir = os.path.join(debs, "x")
    for name in os.listdir(xdir):
        if name not in keep_dirs:
            shutil.rmtree(os.path.join(xdir, name))


def unpacked_files(root, kind):
    picked = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for n in files:
            p = os.path.join(d, n)
            if not os.path.islink(p) and keep_file(kind, "/" + os.path.relpath(p, root)):
                picked.append(p)
    return sorted(picked)


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
    ap.add_argument("--debs", default=os.path.join(repo, "data", "distill-debs"),
                    help="where the downloaded .deb files and their unpacked text are kept")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-train", type=int, default=None, metavar="N",
                    help="keep only the first N training sentences (in hash order)")
    args = ap.parse_args()
    all_sources = [(p, k, rx, "installed") for p, k, rx in SOURCES] + \
                  [(p, k, rx, "downloaded") for p, k, rx in DEB_SOURCES]
    names = [s[0] for s in all_sources]
    assert len(set(names)) == len(names)

    versions = {p: dpkg_version(p) for p, _, _ in SOURCES}
    versions.update({p: dpkg_version(p) for p in EXTRA_PACKAGES})
    debs = fetch_debs([p for p, _, _ in DEB_SOURCES], args.debs)
    versions.update({p: rec["Version"] for p, (rec, _) in debs.items()})
    changed = [f"{p} {v} (tested {TESTED_VERSIONS.get(p)})" for p, v in versions.items()
               if v != TESTED_VERSIONS.get(p)]
    if changed:
        print("distill_corpus: warning: package versions differ from the tested ones, so the "
              "corpus will too: " + ", ".join(changed), file=sys.stderr)

    t0 = time.time()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        roots = {}
        for p, _, rx in DEB_SOURCES:
            rec, path = debs[p]
            tag = hashlib.sha256(rx.encode("utf-8")).hexdigest()[:8]  # what was unpacked
            dest = os.path.join(args.debs, "x", "%s_%s_%s" % (p, rec["Version"].replace(":", "%3a"), tag))
            roots[p] = ex.submit(unpack, path, rx, dest)
        roots = {p: f.result() for p, f in roots.items()}
        prune(args.debs, [os.path.basename(path) for _, path in debs.values()],
              [os.path.basename(r) for r in roots.values()])
        log(f"unpacked {len(roots)} packages in {time.time() - t0:.0f} s")

        jobs = []  # (package, kind, path)
        nfiles = {}
        for pkg, kind, pattern, how in all_sources:
            if how == "installed":
                files = package_files(pkg, pattern, kind)
            else:
                files = unpacked_files(roots[pkg], kind)
            if not files:
                sys.exit(f"distill_corpus: no input files found in package {pkg}")
            nfiles[pkg] = len(files)
            jobs += [(pkg, kind, f) for f in files]

        log(f"reading {len(jobs)} files of {len(all_sources)} packages")
        # big files first so the workers finish together; results are put back in job order
        order = sorted(range(len(jobs)), key=lambda i: (-os.path.getsize(jobs[i][2]), i))
        results = [None] * len(jobs)
        futs = {i: ex.submit(sentences_of_file, jobs[i][1], jobs[i][2]) for i in order}
        for i in order:
            results[i] = futs[i].result()
            del futs[i]

    log(f"read in {time.time() - t0:.0f} s")
    seen = {}      # sha256 of the key -> (sentence, package)
    stats = {}
    for pkg, kind, _, how in all_sources:
        st = {"version": versions[pkg], "from": how}
        if how == "downloaded":
            rec, path = debs[pkg]
            st["deb"] = {"file": os.path.basename(path), "bytes": int(rec["Size"]),
                         "sha256": rec["SHA256"]}
        st.update({"files": nfiles[pkg], "accepted": 0, "kept": 0, "train": 0, "valid": 0,
                   "eval": 0})
        stats[pkg] = st
    for (pkg, _, _), sents in zip(jobs, results):
        st = stats[pkg]
        st["accepted"] += len(sents)
        for s, h in sents:
            if h in seen:
                continue
            seen[h] = (s, pkg)
            st["kept"] += 1
    del results

    log(f"{len(seen)} distinct sentences after {time.time() - t0:.0f} s")
    os.makedirs(args.out, exist_ok=True)
    splits = {"train": [], "valid": [], "eval": []}
    train_dropped = 0
    for h in sorted(seen):
        s, pkg = seen[h]
        sp = split_of(h)
        if sp == "train" and args.max_train is not None and len(splits["train"]) >= args.max_train:
            train_dropped += 1
            continue
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
            assert line and line == line.strip() and (line.isprintable() or not any(
                unicodedata.category(c)[0] == "C" for c in line)), (sp, line)
            k = dedup_key(line)
            assert k not in keys_seen, (sp, line)
            assert split_of(hashlib.sha256(k.encode("utf-8")).hexdigest()) == sp, (sp, line)
            keys_seen.add(k)
    log(f"written and checked after {time.time() - t0:.0f} s")
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
        "max_train": args.max_train,
        "train_dropped_by_max_train": train_dropped,
        "downloaded_debs_bytes": sum(int(rec["Size"]) for rec, _ in debs.values()),
        "sources": [dict(package=pkg, kind=kind, **stats[pkg]) for pkg, kind, _, _ in all_sources],
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
            "max_train": "train.txt keeps its first N sentences (in h order); valid/eval whole",
        },
    }
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")

    w = max(len(p) for p in names)
    print(f"{'package':<{w}}  {'version':<28} {'files':>6} {'accepted':>9} {'kept':>8} "
          f"{'train':>8} {'valid':>6} {'eval':>6}")
    for pkg in names:
        st = stats[pkg]
        print(f"{pkg:<{w}}  {st['version']:<28} {st['files']:>6} {st['accepted']:>9} "
              f"{st['kept']:>8} {st['train']:>8} {st['valid']:>6} {st['eval']:>6}")
    for sp in ("train", "valid", "eval"):
        x = files[sp]
        print(f"{sp}.txt: {x['sentences']} sentences, {x['bytes']} bytes, mean "
              f"{x['mean_words']} words / {x['mean_chars']} chars")
    if args.max_train is not None:
        print(f"--max-train {args.max_train}: {train_dropped} training sentences left out")
    t = manifest["total"]
    print(f"total: {t['sentences']} sentences, mean {t['mean_words']} words / "
          f"{t['mean_chars']} chars -> {args.out}")


if __name__ == "__main__":
    main()
