/* libFuzzer target: arbitrary bytes through ake_tokenizer_encode, with and without
 * truncation, in both directions. The tokenizer is loaded once, from $AKE_MODEL_DIR or
 * models/all-MiniLM-L6-v2 (run from the repository root).
 *
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
 *     tests/fuzz/fuzz_tokenizer.c src/base/status.c src/base/fs.c src/base/json.c src/text/[a-z]*.c \
 *     -ljson-c -lutf8proc -lm -o /tmp/ft
 *   /tmp/ft -max_total_time=30 tests/fuzz/fuzz_tokenizer.seed
 *
 * Checks, beyond "no crash, no sanitizer report": invalid UTF-8 is refused with an error
 * naming a byte offset inside the input; a valid text gives [CLS] ... [SEP] with ids inside
 * the vocabulary; truncation keeps a prefix (RIGHT) or suffix (LEFT) of the untruncated
 * content and the same n_untruncated. ake_tokenizer_encode_spans gives the same ids, and
 * spans that are: special [0, 0) for the template's tokens only; for the others non-empty,
 * inside the text, on UTF-8 character boundaries, with starts and stops that never decrease
 * (HF's alignments are monotonic); under truncation, the spans of the tokens kept. The ids
 * of an encode decode (ake_tokenizer_decode, with and without special tokens). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"

static ake_tokenizer *tok;
static ake_tokens full, cut, fsp, csp;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *dir = getenv("AKE_MODEL_DIR");
    char err[512];
    if (ake_tokenizer_load(dir && *dir ? dir : "models/all-MiniLM-L6-v2", &tok, err, sizeof err) != AKE_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err);
        abort();
    }
    return 0;
}

static void check(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_tokenizer: broken invariant: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    const char *text = (const char *)data;
    ake_status st = ake_tokenizer_encode(tok, text, size, 0, AKE_TRUNCATE_RIGHT, &full, err, sizeof err);
    if (st != AKE_OK) {
        check(st == AKE_EINVAL, "only invalid UTF-8 is refused");
        size_t at = (size_t)-1;
        const char *p = strstr(err, "byte offset ");
        check(p && sscanf(p, "byte offset %zu", &at) == 1 && at < size, "the error names an offset in the text");
        return 0;
    }
    int32_t n = full.n, vocab = ake_tokenizer_vocab_size(tok);
    check(n >= 2 && full.n_untruncated == n, "untruncated: [CLS] ... [SEP]");
    check(full.ids[0] == ake_tokenizer_cls_id(tok) && full.ids[n - 1] == ake_tokenizer_sep_id(tok), "specials at the ends");
    for (int32_t i = 0; i < n; i++) check(full.ids[i] >= 0 && full.ids[i] < vocab, "ids inside the vocabulary");

    /* a limit from the input itself, so the fuzzer explores around it */
    int32_t max = 2 + (size ? data[0] % 16 : 0);
    for (int dir = 0; dir < 2; dir++) {
        st = ake_tokenizer_encode(tok, text, size, max, (ake_truncation_dir)dir, &cut, err, sizeof err);
        check(st == AKE_OK, "a valid text encodes with truncation too");
        int32_t keep = (n < max ? n : max) - 2;
        check(cut.n == keep + 2 && cut.n_untruncated == n, "truncated length and n_untruncated");
        check(cut.ids[0] == full.ids[0] && cut.ids[cut.n - 1] == full.ids[n - 1], "specials kept");
        const int32_t *from = dir == AKE_TRUNCATE_RIGHT ? full.ids + 1 : full.ids + 1 + (n - 2 - keep);
        check(memcmp(cut.ids + 1, from, (size_t)keep * sizeof *from) == 0, "a prefix (RIGHT) or suffix (LEFT) is kept");
    }

    /* spans */
    st = ake_tokenizer_encode_spans(tok, text, size, 0, AKE_TRUNCATE_RIGHT, &fsp, err, sizeof err);
    check(st == AKE_OK && fsp.n == n && fsp.n_spans == n, "encode_spans takes what encode takes");
    check(memcmp(fsp.ids, full.ids, (size_t)n * sizeof *full.ids) == 0, "encode_spans gives encode's ids");
    for (int32_t i = 0; i < n; i++) {
        ake_token_span sp = fsp.spans[i];
        if (i == 0 || i == n - 1) {
            check(sp.special == 1 && sp.start == 0 && sp.stop == 0, "template specials are special, [0, 0)");
            continue;
        }
        check(sp.special == 0, "tokens from the text are not special");
        check(sp.start < sp.stop && sp.stop <= size, "a span is non-empty and inside the text");
        check((data[sp.start] & 0xC0) != 0x80 && (sp.stop == size || (data[sp.stop] & 0xC0) != 0x80),
              "spans start and stop on character boundaries");
        if (i > 1)
            check(sp.start >= fsp.spans[i - 1].start && sp.stop >= fsp.spans[i - 1].stop, "spans never go back");
    }
    for (int dir = 0; dir < 2; dir++) {
        st = ake_tokenizer_encode_spans(tok, text, size, max, (ake_truncation_dir)dir, &csp, err, sizeof err);
        int32_t keep = (n < max ? n : max) - 2;
        check(st == AKE_OK && csp.n == keep + 2 && csp.n_spans == csp.n, "truncated spans: one per token");
        const ake_token_span *from = dir == AKE_TRUNCATE_RIGHT ? fsp.spans + 1 : fsp.spans + 1 + (n - 2 - keep);
        for (int32_t i = 0; i < keep; i++)
            check(csp.spans[1 + i].start == from[i].start && csp.spans[1 + i].stop == from[i].stop,
                  "truncation keeps the spans of the kept tokens");
        check(csp.spans[0].special && csp.spans[csp.n - 1].special, "truncation keeps the specials");
    }

    /* decode: every id an encode gives has a token */
    for (int skip = 0; skip < 2; skip++) {
        char *dec = NULL;
        size_t dlen = 0;
        st = ake_tokenizer_decode(tok, full.ids, (size_t)n, skip, &dec, &dlen, err, sizeof err);
        check(st == AKE_OK && dec && strlen(dec) <= dlen, "the ids of an encode decode");
        free(dec);
    }
    return 0;
}
