#!/usr/bin/env bash
# Run HERE (not on the GPU machine): fills .carry/ (ignored through .git/info/exclude) with what a
# GPU-machine call needs beyond the working tree. The copy limit is 64 MiB, so two sets:
#   .carry/ake.tar.gz             the committed tree (HEAD): others' uncommitted work in a shared
#                                 checkout cannot break the build there, and results name a commit
#   .carry/debs/*.deb             oneDNN, json-c, utf8proc, libmicrohttpd (+ -dev, and GnuTLS with the
#                                 libraries it links), OpenSSL, protobuf-c with protoc-c, make, and wrk
#                                 with LuaJIT (bench/loadgen_vs_wrk.sh), for images without them
#   .carry/tok/                   all-MiniLM-L6-v2's tokenizer files (for synthesized models)
#   .carry/all-MiniLM-L6-v2-f16/  the real model with F32 weights rounded to F16 (87 -> 45 MB)
# First call, carry [".carry/ake.tar.gz", ".carry/debs", ".carry/tok"] (build, tests on synthesized
# models, benchmarks); second call on the warm machine, carry [".carry/all-MiniLM-L6-v2-f16"]
# (the real MiniLM against the CPU engine, with the first call's build in /tmp/ake). See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.carry/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.carry/' >>.git/info/exclude; }
mkdir -p .carry/debs .carry/tok
git archive --format=tar HEAD | gzip -9 >.carry/ake.tar.gz
(cd .carry/debs && [ -n "$(ls ./wrk_*.deb 2>/dev/null)" ] ||
    apt-get download libdnnl2 libdnnl-dev libjson-c5 libjson-c-dev libutf8proc2 libutf8proc-dev libmicrohttpd12 \
        libmicrohttpd-dev libssl-dev libssl3 libidn2-0 libp11-kit0 libunistring2 libtasn1-6 libnettle8 libhogweed6 \
        libgmp10 libffi8 libgnutls30 ocl-icd-libopencl1 make libprotobuf-c1 libprotobuf-c-dev protobuf-c-compiler libprotoc32 libprotobuf32 \
        wrk libluajit-5.1-2 libluajit-5.1-common)
src=models/all-MiniLM-L6-v2 dst=.carry/all-MiniLM-L6-v2-f16
for f in tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt; do cp "$src/$f" .carry/tok/; done
if [ ! -f "$dst/model.safetensors" ]; then
    make build/tests/gpu/to_f16
    mkdir -p "$dst/1_Pooling"
    for f in config.json modules.json sentence_bert_config.json special_tokens_map.json tokenizer.json \
             tokenizer_config.json vocab.txt 1_Pooling/config.json; do cp "$src/$f" "$dst/$f"; done
    build/tests/gpu/to_f16 "$src/model.safetensors" "$dst/model.safetensors"
fi
du -sh .carry/*
