/* The one interface every backend (cpu/, cuda/) implements.
 *
 * A batch is packed with no padding: the token ids of n sequences laid end to
 * end, ids[T], and cu_seqlens[n+1] with cu_seqlens[0] = 0 and
 * cu_seqlens[i+1] - cu_seqlens[i] = length of sequence i (>= 1, [CLS]/[SEP]
 * included). The engine returns one pooled (and, when the model says so,
 * L2-normalized) vector per sequence. */
#ifndef AKE_ENGINE_ENGINE_H
#define AKE_ENGINE_ENGINE_H

#include <stdint.h>

#include "base/status.h"
#include "model/model.h"

typedef struct ake_engine ake_engine;

typedef struct {
    const char *device;  /* "cpu" (default when NULL) */
    int32_t max_tokens;  /* largest T of one call; buffers are sized for it once */
    int32_t max_batch;   /* largest n of one call */
    int32_t threads;     /* CPU threads; <= 0 means all cores */
} ake_engine_opts;

/* Creates an engine over `model`, which must outlive it. All working memory is
 * allocated here; ake_engine_embed allocates nothing. Free with ake_engine_free. */
ake_status ake_engine_create(const ake_model *model, const ake_engine_opts *opts, ake_engine **out, char *err,
                             size_t errlen);
void ake_engine_free(ake_engine *e);

/* ids [T] (T = cu_seqlens[n]), cu_seqlens [n+1] → out [n, hidden] row-major.
 * Rejects (AKE_EINVAL) n or T over the creation limits, a sequence longer than
 * the model's max_position or empty, and token ids outside the vocabulary.
 * One engine serves one thread at a time. */
ake_status ake_engine_embed(ake_engine *e, const int32_t *ids, const int32_t *cu_seqlens, int32_t n, float *out,
                            char *err, size_t errlen);

int32_t ake_engine_dim(const ake_engine *e);
const char *ake_engine_device(const ake_engine *e);

#endif
