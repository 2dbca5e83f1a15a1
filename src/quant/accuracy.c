#include "quant/accuracy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

#include <dnnl.h>

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

/* Queries per GEMM: the block's similarities [QUERY_BLOCK, n] stay in memory (n = 100,000: 26 MB). */
enum { QUERY_BLOCK = 64 };

/* The k nearest rows (by dot product) to each query row qs[i] of u [n, d] (unit rows), the query
 * itself excluded, into top[i * k ..] (order irrelevant; among equal similarities the lower row
 * wins, so the set is that of repeatedly taking the first maximum). The similarities of a block
 * of queries are one GEMM (oneDNN), so the n x d rows stream from memory once per block, not once
 * per query. sim: scratch [QUERY_BLOCK * n], qbuf: [QUERY_BLOCK * d]. */
static void nearest_block(const float *u, int32_t n, int32_t d, const int32_t *qs, int32_t nq, int32_t k, float *sim,
                          float *qbuf, int32_t *top) {
    for (int32_t i = 0; i < nq; i++) memcpy(qbuf + (size_t)i * d, u + (size_t)qs[i] * d, (size_t)d * sizeof *u);
    const dnnl_status_t st = dnnl_sgemm('N', 'T', nq, n, d, 1.0f, qbuf, d, u, d, 0.0f, sim, n);
    AKE_ASSERT(st == dnnl_success);
#pragma omp parallel for schedule(static)
    for (int32_t i = 0; i < nq; i++) {
        const float *row = sim + (size_t)i * n;
        float best[AKE_RECALL_K]; /* descending; best[m - 1] the k-th so far */
        int32_t *t = top + (size_t)i * k, m = 0;
        for (int32_t j = 0; j < n; j++) {
            const float v = row[j];
            if (j == qs[i] || (m == k && !(v > best[k - 1]))) continue;
            int32_t pos = m < k ? m++ : k - 1;
            for (; pos > 0 && v > best[pos - 1]; pos--) best[pos] = best[pos - 1], t[pos] = t[pos - 1];
            best[pos] = v;
            t[pos] = j;
        }
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
    float *ur = unit_rows(ref, n, d), *uc = unit_rows(cand, n, d);
    if (!ur || !uc) {
        free(ur);
        free(uc);
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
        return ake_errf(err, errlen, AKE_EINVAL,
                        "recall@%d needs more than %d different texts; these %d texts hold %d (repeated or empty "
                        "lines?)",
                        k, k, n, distinct);
    }
    if (out->queries <= 0) {
        out->recall = 1.0;
    } else {
        double hits = 0.0;
        int32_t qs[QUERY_BLOCK], tr[QUERY_BLOCK * AKE_RECALL_K], tc[QUERY_BLOCK * AKE_RECALL_K];
        float *qbuf = malloc((size_t)QUERY_BLOCK * d * sizeof *qbuf);
        float *sim = malloc((size_t)QUERY_BLOCK * n * sizeof *sim);
        if (!qbuf || !sim) {
            free(qbuf);
            free(sim);
            free(ur);
            free(uc);
            return ake_errf(err, errlen, AKE_ENOMEM, "out of memory comparing %d embeddings", n);
        }
        for (int32_t q0 = 0; q0 < out->queries; q0 += QUERY_BLOCK) {
            const int32_t nq = out->queries - q0 < QUERY_BLOCK ? out->queries - q0 : QUERY_BLOCK;
            for (int32_t i = 0; i < nq; i++) qs[i] = first + (int32_t)((int64_t)(q0 + i) * out->n / out->queries);
            nearest_block(ur, n, d, qs, nq, k, sim, qbuf, tr);
            nearest_block(uc, n, d, qs, nq, k, sim, qbuf, tc);
            for (int32_t i = 0; i < nq; i++)
                for (int a = 0; a < k; a++)
                    for (int b = 0; b < k; b++) hits += tr[i * k + a] == tc[i * k + b];
        }
        free(qbuf);
        free(sim);
        out->recall = hits / ((double)out->queries * k);
    }
    free(ur);
    free(uc);
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
