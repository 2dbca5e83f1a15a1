/* A tokenized text corpus and embedding it with an engine: what calibration, the accuracy
 * gate and `akidb-embed validate` all run over. */
#ifndef AKE_QUANT_CORPUS_H
#define AKE_QUANT_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "engine/engine.h"
#include "text/tokenizer.h"

typedef struct {
    int32_t n;          /* texts */
    int32_t *ids;       /* owned [cu[n]]: each text's token ids, [CLS] ... [SEP], end to end */
    int64_t *cu;        /* owned [n+1]: text i is ids[cu[i] .. cu[i+1]) */
    int32_t max_len;    /* longest text in tokens */
} ake_corpus;

/* Tokenizes texts[0..n) (lens[i] bytes each, UTF-8) with tok, truncated to max_tokens
 * (the model's sequence limit, as sentence-transformers does). Fails (AKE_EINVAL) on a text
 * the tokenizer refuses, naming its index. Release with ake_corpus_release. */
ake_status ake_corpus_tokenize(const ake_tokenizer *tok, const char *const *texts, const size_t *lens, int32_t n,
                               int32_t max_tokens, ake_corpus *out, char *err, size_t errlen);
void ake_corpus_release(ake_corpus *c);

/* Embeds texts [first, first+count) of c with e, `batch` texts per call (each call within
 * the engine's limits), into out [count, dim]. *seconds (may be NULL): wall time of the
 * engine calls alone. progress (may be NULL) is called after every batch with the texts
 * done so far. */
ake_status ake_corpus_embed(const ake_corpus *c, int32_t first, int32_t count, ake_engine *e, int32_t batch,
                            float *out, double *seconds, void (*progress)(void *ctx, int32_t done), void *ctx,
                            char *err, size_t errlen);

#endif
