#include "quant/accuracy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

/* Copies the rows of x [n, d] normalized to unit length (zero rows stay zero). */
static float *unit_rows(const float *x, int32_t n, int32_t d) {
    float *u = malloc((size_t)n * d * sizeof *u);
    if (!u) return NULL;
    for (int32_t i = 0; i < n; i++) {
        double ss = 0.0;
        for (int32_t c = 0; c < d; c++) ss += (double)x[(size_t)i * d + c] * x[(size_t)i * d + c];
        const float inv = ss > 0.0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int32_t c = 0; c < d; c++) u[(size_t)i * d + c] = x[(size_t)i * d + c] * inv;
    }
    return u;
}

/* The k nearest rows to row q of u [n, d] (unit rows) by dot product, q excluded, into
 * top[k] (order irrelevant). sim: scratch [n]. */
static void nearest(const float *u, int32_t n, int32_t d, int32_t q, int32_t k, float *sim, int32_t *top) {
    const float *uq = u + (size_t)q * d;
#pragma omp parallel for schedule(static)
    for (int32_t j = 0; j < n; j++) {
        float s = 0.0f;
        for (int32_t c = 0; c < d; c++) s += uq[c] * u[(size_t)j * d + c];
        sim[j] = s;
    }
    sim[q] = -INFINITY;
    for (int32_t r = 0; r < k; r++) { /* k passes: k is 10 */
        int32_t best = -1;
        for (int32_t j = 0; j < n; j++)
            if (best < 0 || sim[j] > sim[best]) best = j;
        top[r] = best;
        sim[best] = -INFINITY;
    }
}

/* Rows of ref [n, d] that differ from every earlier row (a text repeated gives the same
 * vector bit for bit: the engines are deterministic). Stops counting past AKE_RECALL_K: enough
 * to know the corpus is not degenerate. */
static int32_t distinct_rows(const float *ref, int32_t n, int32_t d) {
    const float *seen[AKE_RECALL_K + 1];
    int32_t m = 0;
    for (int32_t i = 0; i < n && m <= AKE_RECALL_K; i++) {
        const float *r = ref + (size_t)i * d;
        bool dup = false;
        for (int32_t j = 0; j < m && !dup; j++) dup = memcmp(seen[j], r, (size_t)d * sizeof *r) == 0;
        if (!dup) seen[m++] = r;
    }
    return m;
}

ake_status ake_accuracy_measure(const float *ref, const float *cand, int32_t n, int32_t d, int32_t first,
                                int32_t queries, ake_accuracy *out, char *err, size_t errlen) {
    AKE_ASSERT(first >= 0 && first < n);
    memset(out, 0, sizeof *out);
    out->n = n - first;
    out->min_cos = 1.0;
    float *ur = unit_rows(ref, n, d), *uc = unit_rows(cand, n, d), *sim = malloc((size_t)n * sizeof *sim);
    if (!ur || !uc || !sim) {
        free(ur);
        free(uc);
        free(sim);
        return ake_errf(err, errlen, AKE_ENOMEM, "out of memory comparing %d embeddings", n);
    }
    double sum = 0.0;
    for (int32_t i = first; i < n; i++) {
        double dot = 0.0;
        for (int32_t c = 0; c < d; c++) dot += (double)ur[(size_t)i * d + c] * uc[(size_t)i * d + c];
        sum += dot;
        if (dot < out->min_cos || i == first) {
            out->min_cos = dot;
            out->min_index = i;
        }
    }
    out->mean_cos = sum / out->n;
    const int32_t k = AKE_RECALL_K;
    out->queries = queries < out->n ? queries : out->n;
    const int32_t distinct = distinct_rows(ref, n, d);
    if (distinct <= k) { /* fewer than k + 1 different texts: every neighbour list is trivial */
        free(ur);
        free(uc);
        free(sim);
        return ake_errf(err, errlen, AKE_EINVAL,
                        "recall@%d needs more than %d different texts; these %d texts hold %d (repeated or empty "
                        "lines?)",
                        k, k, n, distinct);
    }
    if (out->queries <= 0) {
        out->recall = 1.0;
    } else {
        double hits = 0.0;
        int32_t tr[AKE_RECALL_K], tc[AKE_RECALL_K];
        for (int32_t qi = 0; qi < out->queries; qi++) {
            const int32_t q = first + (int32_t)((int64_t)qi * out->n / out->queries);
            nearest(ur, n, d, q, k, sim, tr);
            nearest(uc, n, d, q, k, sim, tc);
            for (int a = 0; a < k; a++)
                for (int b = 0; b < k; b++) hits += tr[a] == tc[b];
        }
        out->recall = hits / ((double)out->queries * k);
    }
    free(ur);
    free(uc);
    free(sim);
    return AKE_OK;
}

bool ake_gate_check(const ake_gate *g, const ake_accuracy *a, char *why, size_t whylen) {
    size_t o = 0;
    why[0] = 0;
#define FAILS(val, lim, name)                                                                                         \
    if (!((val) >= (lim)))                                                                                            \
        o += (size_t)snprintf(why + o, o < whylen ? whylen - o : 0, "%s%s %.4f < %g", o ? "; " : "", name, (val), (lim));
    FAILS(a->mean_cos, g->mean_cos, "mean cosine")
    FAILS(a->min_cos, g->min_cos, "minimum cosine")
    FAILS(a->recall, g->recall, "recall@10")
#undef FAILS
    return o == 0;
}

bool ake_gate_parse(const char *s, ake_gate *g, char *err, size_t errlen) {
    ake_gate out = *g;
    char buf[256];
    if (!s || strlen(s) >= sizeof buf) {
        ake_errf(err, errlen, AKE_EINVAL, "--gate expects mean=X,min=Y,recall=Z");
        return false;
    }
    strcpy(buf, s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '='), *end;
        double v = eq ? strtod(eq + 1, &end) : NAN;
        if (!eq || end == eq + 1 || *end || !(v >= -1.0 && v <= 1.0)) {
            ake_errf(err, errlen, AKE_EINVAL, "--gate: '%s' is not NAME=VALUE with VALUE in -1..1", tok);
            return false;
        }
        *eq = 0;
        if (!strcmp(tok, "mean")) out.mean_cos = v;
        else if (!strcmp(tok, "min")) out.min_cos = v;
        else if (!strcmp(tok, "recall") && v >= 0.0) out.recall = v;
        else {
            ake_errf(err, errlen, AKE_EINVAL, "--gate: unknown measure '%s' (mean, min, recall; recall in 0..1)", tok);
            return false;
        }
    }
    *g = out;
    return true;
}
