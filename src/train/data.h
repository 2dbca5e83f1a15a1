/* Training data: a text corpus tokenized once into a packed token file, and the batches of a
 * run drawn from it in a seeded order that depends on the step alone (so a resumed run needs
 * nothing but its step count to continue where it stopped).
 *
 * Token file (little-endian), written atomically beside the checkpoint and reused when its
 * header matches the corpus, the tokenizer's vocabulary size and the length limit:
 *   char     magic[8]      "AKETOKS1"
 *   uint32   max_len       sequences were truncated to this many tokens ([CLS], [SEP] included)
 *   uint32   vocab_size
 *   uint64   n             sentences
 *   uint64   tokens        total tokens
 *   uint8    sha256[32]    of the corpus file's bytes
 *   int64    cu[n + 1]     sentence i is ids[cu[i] .. cu[i+1])
 *   int32    ids[tokens]
 *
 * Batch order: epoch e = step / (n / batch) visits the sentences in the permutation
 * Fisher-Yates draws from splitmix64 seeded with (seed, e); step s takes the `batch` sentences
 * at (s mod (n / batch)) * batch of it. A final part-batch of each epoch is left out. */
#ifndef AKE_TRAIN_DATA_H
#define AKE_TRAIN_DATA_H

#include <stdint.h>

#include "base/status.h"
#include "text/tokenizer.h"

typedef struct {
    int64_t n;            /* sentences */
    int64_t *cu;          /* owned [n + 1] */
    int32_t *ids;         /* owned [cu[n]] */
    int32_t max_len;      /* the truncation limit */
    uint8_t sha256[32];   /* of the corpus file */
    char sha256_hex[65];
} ake_token_corpus;

/* Tokenizes corpus_path (UTF-8, one sentence per line; empty lines skipped) with tok, each
 * sentence truncated to max_len tokens, or reads cache_path when it holds that corpus's tokens
 * (cache_path may be NULL: no cache; else written after tokenizing). AKE_ENOTFOUND / AKE_EIO for
 * the file, AKE_EINVAL for a corpus with no sentence or a line the tokenizer refuses (naming
 * the line), AKE_EFORMAT for a damaged cache (then re-tokenized, not an error: only a cache that
 * cannot be rewritten fails). Release with ake_token_corpus_release. */
ake_status ake_token_corpus_load(const char *corpus_path, const ake_tokenizer *tok, int32_t max_len,
                                 const char *cache_path, ake_token_corpus *out, char *err, size_t errlen);
void ake_token_corpus_release(ake_token_corpus *c);

/* The batches of a run over c: `batch` sentences per step, epochs shuffled by `seed`. */
typedef struct {
    const ake_token_corpus *c; /* borrowed */
    int32_t batch;
    uint64_t seed;
    int64_t epoch;             /* the epoch whose permutation `perm` holds (-1: none yet) */
    int64_t *perm;             /* owned [c->n] */
} ake_train_batches;

/* AKE_EINVAL when the corpus has fewer than `batch` sentences. */
ake_status ake_train_batches_init(ake_train_batches *b, const ake_token_corpus *c, int32_t batch, uint64_t seed,
                               char *err, size_t errlen);
void ake_train_batches_release(ake_train_batches *b);
/* Packs the batch of `step` into ids [batch * max_len] and cu [batch + 1]; returns its n. */
int32_t ake_train_batches_get(ake_train_batches *b, int64_t step, int32_t *ids, int32_t *cu);
int64_t ake_train_batches_per_epoch(const ake_train_batches *b);

#endif
