/* How far a quantized (or any other) model's embeddings are from a reference model's, and
 * the gate that decides whether they are close enough to ship.
 *
 * Measures, over the same n texts embedded by both models:
 *   cosine per text         mean and minimum of cos(ref_i, cand_i)
 *   recall@k                for each of `queries` query texts (evenly spaced over the
 *                           corpus), the share of the reference's k nearest neighbours (by
 *                           cosine, the query itself excluded) that the candidate's k nearest
 *                           neighbours also hold; averaged over the queries
 * The defaults are the plan's "at most 1 % accuracy loss": mean cosine >= 0.995, minimum
 * >= 0.98, recall@10 >= 0.95 (ONNX Runtime's quantize_dynamic reaches 0.967 / 0.913 / 0.788
 * on all-MiniLM-L6-v2, measured: ../shared/notes/peer-measurements.md). */
#ifndef AKE_QUANT_ACCURACY_H
#define AKE_QUANT_ACCURACY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

#define AKE_RECALL_K 10

typedef struct {
    int32_t n, queries;    /* texts whose cosines were measured (n - first), recall queries */
    double mean_cos, min_cos;
    int32_t min_index;     /* the text with the lowest cosine */
    double recall;         /* recall@AKE_RECALL_K */
} ake_accuracy;

typedef struct {
    double mean_cos, min_cos, recall; /* lowest values that pass */
} ake_gate;

#define AKE_GATE_DEFAULT ((ake_gate){0.995, 0.98, 0.95})

/* ref, cand: [n, d] row-major (need not be normalized). Cosines are measured over the rows
 * first..n-1 and the queries are drawn evenly from them; neighbours are searched among all n
 * rows (rows before `first` only widen the corpus: `quantize` gates on held-back texts while
 * searching among the calibration texts too). queries is clamped to n - first. AKE_EINVAL
 * when the n rows hold AKE_RECALL_K or fewer different vectors (a corpus of repeated or empty
 * texts: every neighbour list would match, and a broken model would pass); AKE_ENOMEM. */
ake_status ake_accuracy_measure(const float *ref, const float *cand, int32_t n, int32_t d, int32_t first,
                                int32_t queries, ake_accuracy *out, char *err, size_t errlen);

/* True when every measure is at or above the gate; otherwise false with `why` naming each
 * failing measure and both numbers ("mean cosine 0.9921 < 0.995; ..."). */
bool ake_gate_check(const ake_gate *g, const ake_accuracy *a, char *why, size_t whylen);

/* Parses "mean=0.995,min=0.98,recall=0.95" (any subset, in any order) over *g.
 * Returns false, with a message in err, on anything else. */
bool ake_gate_parse(const char *s, ake_gate *g, char *err, size_t errlen);

#endif
