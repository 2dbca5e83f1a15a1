#include "quant/corpus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

ake_status ake_corpus_tokenize(const ake_tokenizer *tok, const char *const *texts, const size_t *lens, int32_t n,
                               int32_t max_tokens, ake_corpus *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    ake_tokens t = {0};
    size_t cap = 0;
    out->cu = malloc(((size_t)n + 1) * sizeof *out->cu);
    if (!out->cu) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory tokenizing %d texts", n);
    out->cu[0] = 0;
    for (int32_t i = 0; i < n; i++) {
        ake_status st = ake_tokenizer_encode(tok, texts[i], lens[i], max_tokens, AKE_TRUNCATE_RIGHT, &t, err, errlen);
        if (st != AKE_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", err);
            ake_tokens_release(&t);
            ake_corpus_release(out);
            return ake_errf(err, errlen, st, "text %d: %s", i + 1, why);
        }
        const size_t need = (size_t)out->cu[i] + (size_t)t.n;
        if (need > cap) {
            size_t c = cap ? cap * 2 : 4096;
            while (c < need) c *= 2;
            int32_t *ids = realloc(out->ids, c * sizeof *ids);
            if (!ids) {
                ake_tokens_release(&t);
                ake_corpus_release(out);
                return ake_errf(err, errlen, AKE_ENOMEM, "out of memory tokenizing %d texts", n);
            }
            out->ids = ids;
            cap = c;
        }
        memcpy(out->ids + out->cu[i], t.ids, (size_t)t.n * sizeof *t.ids);
        out->cu[i + 1] = (int64_t)need;
        if (t.n > out->max_len) out->max_len = t.n;
    }
    out->n = n;
    ake_tokens_release(&t);
    return AKE_OK;
}

void ake_corpus_release(ake_corpus *c) {
    free(c->ids);
    free(c->cu);
    memset(c, 0, sizeof *c);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

ake_status ake_corpus_embed(const ake_corpus *c, int32_t first, int32_t count, ake_engine *e, int32_t batch,
                            float *out, double *seconds, void (*progress)(void *ctx, int32_t done), void *ctx,
                            char *err, size_t errlen) {
    AKE_ASSERT(first >= 0 && count >= 0 && first + count <= c->n && batch > 0);
    const int32_t d = ake_engine_dim(e);
    int32_t *cu = malloc(((size_t)batch + 1) * sizeof *cu);
    if (!cu) return ake_errf(err, errlen, AKE_ENOMEM, "out of memory");
    double spent = 0.0;
    ake_status st = AKE_OK;
    for (int32_t i = 0; i < count && st == AKE_OK; i += batch) {
        const int32_t nb = count - i < batch ? count - i : batch;
        const int64_t base = c->cu[first + i];
        for (int32_t j = 0; j <= nb; j++) cu[j] = (int32_t)(c->cu[first + i + j] - base);
        const double t0 = now_s();
        st = ake_engine_embed(e, c->ids + base, cu, nb, out + (size_t)i * d, err, errlen);
        spent += now_s() - t0;
        if (progress && st == AKE_OK) progress(ctx, i + nb);
    }
    free(cu);
    if (seconds) *seconds = spent;
    return st;
}
