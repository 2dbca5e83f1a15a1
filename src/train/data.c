#include "train/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "base/fs.h"

#define CORPUS_MAX_BYTES ((size_t)4 << 30)
static const char TOKENS_MAGIC[8] = {'A', 'K', 'E', 'T', 'O', 'K', 'S', '1'};

typedef struct {
    char magic[8];
    uint32_t max_len, vocab_size;
    uint64_t n, tokens;
    uint8_t sha256[32];
} tokens_header;
_Static_assert(sizeof(tokens_header) == 64, "the token file's header is 64 bytes");

void ake_token_corpus_release(ake_token_corpus *c) {
    free(c->cu);
    free(c->ids);
    memset(c, 0, sizeof *c);
}

/* Reads cache_path into c when its header matches; false otherwise (absent, stale or damaged). */
static bool read_cache(const char *cache_path, ake_token_corpus *c, uint32_t vocab_size) {
    FILE *f = fopen(cache_path, "rb");
    if (!f) return false;
    tokens_header h;
    bool ok = fread(&h, sizeof h, 1, f) == 1 && memcmp(h.magic, TOKENS_MAGIC, 8) == 0 &&
              h.max_len == (uint32_t)c->max_len && h.vocab_size == vocab_size && memcmp(h.sha256, c->sha256, 32) == 0 &&
              h.n > 0 && h.n < ((uint64_t)1 << 40) && h.tokens >= 2 * h.n && h.tokens <= h.n * h.max_len;
    if (ok) {
        c->n = (int64_t)h.n;
        c->cu = malloc((h.n + 1) * sizeof *c->cu);
        c->ids = malloc(h.tokens * sizeof *c->ids);
        ok = c->cu && c->ids && fread(c->cu, sizeof *c->cu, h.n + 1, f) == h.n + 1 &&
             fread(c->ids, sizeof *c->ids, h.tokens, f) == h.tokens && fgetc(f) == EOF;
        /* every sentence within bounds and every id in the vocabulary, or the cache is not used */
        for (uint64_t i = 0; ok && i < h.n; i++)
            ok = c->cu[i] >= 0 && c->cu[i + 1] - c->cu[i] >= 2 && c->cu[i + 1] - c->cu[i] <= c->max_len;
        ok = ok && c->cu[0] == 0 && (uint64_t)c->cu[h.n] == h.tokens;
        for (uint64_t t = 0; ok && t < h.tokens; t++) ok = c->ids[t] >= 0 && (uint32_t)c->ids[t] < vocab_size;
    }
    fclose(f);
    if (!ok) {
        free(c->cu);
        free(c->ids);
        c->cu = NULL;
        c->ids = NULL;
        c->n = 0;
    }
    return ok;
}

static ake_status write_cache(const char *cache_path, const ake_token_corpus *c, uint32_t vocab_size, char *err,
                              size_t errlen) {
    tokens_header h = {.max_len = (uint32_t)c->max_len, .vocab_size = vocab_size, .n = (uint64_t)c->n,
                       .tokens = (uint64_t)c->cu[c->n]};
    memcpy(h.magic, TOKENS_MAGIC, 8);
    memcpy(h.sha256, c->sha256, 32);
    const size_t len = sizeof h + (size_t)(c->n + 1) * sizeof *c->cu + (size_t)c->cu[c->n] * sizeof *c->ids;
    char *buf = malloc(len);
    if (!buf) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory writing %s", cache_path);
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, c->cu, (size_t)(c->n + 1) * sizeof *c->cu);
    memcpy(buf + sizeof h + (size_t)(c->n + 1) * sizeof *c->cu, c->ids, (size_t)c->cu[c->n] * sizeof *c->ids);
    ake_status rc = ake_write_file_atomic(cache_path, buf, len, err, errlen);
    free(buf);
    return rc;
}

ake_status ake_token_corpus_load(const char *corpus_path, const ake_tokenizer *tok, int32_t max_len,
                                 const char *cache_path, ake_token_corpus *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (max_len < 2) return ake_errf(err, errlen, AKE_EINVAL, "max length %d: at least 2 tokens ([CLS] [SEP])", max_len);
    char *text = NULL;
    size_t len = 0;
    ake_status rc = ake_read_file(corpus_path, CORPUS_MAX_BYTES, &text, &len, err, errlen);
    if (rc != AKE_OK) return rc;
    out->max_len = max_len;
    unsigned md_len = 0;
    if (!EVP_Digest(text, len, out->sha256, &md_len, EVP_sha256(), NULL) || md_len != 32) {
        free(text);
        return ake_errf(err, errlen, AKE_EIO, "%s: sha256 failed", corpus_path);
    }
    for (int i = 0; i < 32; i++) snprintf(out->sha256_hex + 2 * i, 3, "%02x", out->sha256[i]);
    const uint32_t vocab = (uint32_t)ake_tokenizer_vocab_size(tok);
    if (cache_path && read_cache(cache_path, out, vocab)) {
        free(text);
        return AKE_OK;
    }
    int64_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    lines++;
    out->cu = malloc((size_t)(lines + 1) * sizeof *out->cu);
    int64_t cap = lines * 8 + 64;
    out->ids = malloc((size_t)cap * sizeof *out->ids);
    if (!out->cu || !out->ids) {
        rc = ake_errf(err, errlen, AKE_ENOMEM, "out of memory tokenizing %s", corpus_path);
        goto fail;
    }
    out->cu[0] = 0;
    ake_tokens t = {0};
    int64_t line_no = 0;
    for (char *p = text, *end = text + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        const size_t n = (size_t)((nl ? nl : end) - p) - (nl && nl > p && nl[-1] == '\r');
        line_no++;
        if (n > 0) {
            char msg[256];
            rc = ake_tokenizer_encode(tok, p, n, max_len, AKE_TRUNCATE_RIGHT, &t, msg, sizeof msg);
            if (rc != AKE_OK) {
                ake_tokens_release(&t);
                rc = ake_errf(err, errlen, AKE_EINVAL, "%s line %lld: %s", corpus_path, (long long)line_no, msg);
                goto fail;
            }
            const int64_t at = out->cu[out->n];
            if (at + t.n > cap) {
                cap = 2 * cap + t.n;
                int32_t *grown = realloc(out->ids, (size_t)cap * sizeof *out->ids);
                if (!grown) {
                    ake_tokens_release(&t);
                    rc = ake_errf(err, errlen, AKE_ENOMEM, "out of memory tokenizing %s", corpus_path);
                    goto fail;
                }
                out->ids = grown;
            }
            memcpy(out->ids + at, t.ids, (size_t)t.n * sizeof *t.ids);
            out->cu[++out->n] = at + t.n;
        }
        p = nl ? nl + 1 : end;
    }
    ake_tokens_release(&t);
    free(text);
    text = NULL;
    if (out->n == 0) {
        rc = ake_errf(err, errlen, AKE_EINVAL, "%s holds no sentence (one per line)", corpus_path);
        goto fail;
    }
    if (cache_path && (rc = write_cache(cache_path, out, vocab, err, errlen)) != AKE_OK) goto fail;
    return AKE_OK;
fail:
    free(text);
    ake_token_corpus_release(out);
    return rc;
}

/* splitmix64 (Steele, Lea, Flood 2014): the stream of an epoch's shuffle */
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

ake_status ake_train_batches_init(ake_train_batches *b, const ake_token_corpus *c, int32_t batch, uint64_t seed,
                                  char *err, size_t errlen) {
    memset(b, 0, sizeof *b);
    if (batch < 1 || c->n < batch)
        return ake_errf(err, errlen, AKE_EINVAL, "the corpus has %lld sentences, fewer than one batch of %d",
                        (long long)c->n, batch);
    b->c = c;
    b->batch = batch;
    b->seed = seed;
    b->epoch = -1;
    b->perm = malloc((size_t)c->n * sizeof *b->perm);
    return b->perm ? AKE_OK : ake_errf(err, errlen, AKE_ENOMEM, "out of memory for the batch order");
}

void ake_train_batches_release(ake_train_batches *b) {
    free(b->perm);
    memset(b, 0, sizeof *b);
}

int64_t ake_train_batches_per_epoch(const ake_train_batches *b) { return b->c->n / b->batch; }

int32_t ake_train_batches_get(ake_train_batches *b, int64_t step, int32_t *ids, int32_t *cu) {
    const int64_t per = ake_train_batches_per_epoch(b), epoch = step / per, first = (step % per) * b->batch;
    if (epoch != b->epoch) {
        uint64_t s = b->seed ^ splitmix64(&(uint64_t){(uint64_t)epoch});
        for (int64_t i = 0; i < b->c->n; i++) b->perm[i] = i;
        for (int64_t i = b->c->n - 1; i > 0; i--) { /* Fisher-Yates; the modulo bias is < 2^-20 */
            const int64_t j = (int64_t)(splitmix64(&s) % (uint64_t)(i + 1)), keep = b->perm[i];
            b->perm[i] = b->perm[j];
            b->perm[j] = keep;
        }
        b->epoch = epoch;
    }
    cu[0] = 0;
    for (int32_t k = 0; k < b->batch; k++) {
        const int64_t i = b->perm[first + k], len = b->c->cu[i + 1] - b->c->cu[i];
        memcpy(ids + cu[k], b->c->ids + b->c->cu[i], (size_t)len * sizeof *ids);
        cu[k + 1] = cu[k] + (int32_t)len;
    }
    return b->batch;
}
