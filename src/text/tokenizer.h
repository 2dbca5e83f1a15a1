/* BERT WordPiece tokenizer, equal to Hugging Face `tokenizers` (BertNormalizer +
 * BertPreTokenizer + WordPiece + the [CLS] A [SEP] template) on every input.
 *
 * Loaded from a model folder's tokenizer.json (vocab.txt + tokenizer_config.json
 * as fallback). Special tokens and their ids come from those files, never from
 * literals. A loaded tokenizer is immutable: ake_tokenizer_encode may be called
 * from many threads at once on the same tokenizer.
 *
 * Supported tokenizer.json pieces: model WordPiece, normalizer BertNormalizer (or
 * none), pre_tokenizer BertPreTokenizer, post_processor TemplateProcessing or
 * BertProcessing, added_tokens with their single_word / lstrip / rstrip / normalized
 * flags. Anything else is refused at load with AKE_EUNSUPPORTED rather than
 * tokenized differently. Internals: tokenizer_impl.h. */
#ifndef AKE_TEXT_TOKENIZER_H
#define AKE_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct ake_tokenizer ake_tokenizer;

/* Loads the tokenizer of the model folder `model_dir`. On success *out owns all
 * its memory; free with ake_tokenizer_free. On failure *out is NULL and err
 * names the file and what is wrong with it. */
ake_status ake_tokenizer_load(const char *model_dir, ake_tokenizer **out, char *err, size_t errlen);
void ake_tokenizer_free(ake_tokenizer *tok);

typedef enum { AKE_TRUNCATE_RIGHT = 0, AKE_TRUNCATE_LEFT = 1 } ake_truncation_dir;

/* Result of one encode. ids is owned by the struct and grown as needed, so one
 * ake_tokens can be reused across calls; start from a zeroed struct
 * (ake_tokens t = {0};) and release with ake_tokens_release. */
typedef struct {
    int32_t *ids;         /* [n] token ids, [CLS] first and [SEP] last */
    int32_t n;            /* tokens kept, specials included */
    int32_t n_untruncated; /* tokens the text would have without truncation, specials included */
    int32_t cap;          /* allocated length of ids */
} ake_tokens;

void ake_tokens_release(ake_tokens *t);

/* Encodes `len` bytes of UTF-8 `text` into out. max_tokens > 0 truncates to that
 * many tokens counting [CLS] and [SEP] (as HF truncation max_length does),
 * dropping word pieces from the end (RIGHT) or the start (LEFT); max_tokens <= 0
 * keeps everything. Invalid UTF-8 is rejected with AKE_EINVAL and an error
 * naming the byte offset. Empty text gives [CLS] [SEP].
 *
 * Details: text need not be NUL-terminated and may contain NUL bytes (U+0000 is
 * text; the BERT normalizer removes it); text may be NULL when len is 0. Invalid
 * UTF-8 means RFC 3629: overlong forms, UTF-16 surrogates (ED A0..BF xx), code
 * points past U+10FFFF, stray continuation bytes and truncated sequences; the
 * error names the offset of the first byte of the first bad sequence, and out->n
 * is 0. A max_tokens between 1 and the number of special tokens minus one (1 for
 * [CLS] A [SEP]) is refused with AKE_EINVAL: HF silently skips truncation there.
 * AKE_ETOOLONG if the text has more tokens than an int32 holds; AKE_ENOMEM if
 * growing out->ids fails. Takes O(len) time; allocates nothing beyond out->ids
 * for ordinary text. */
ake_status ake_tokenizer_encode(const ake_tokenizer *tok, const char *text, size_t len, int32_t max_tokens,
                                ake_truncation_dir dir, ake_tokens *out, char *err, size_t errlen);

/* 1 + the largest id the tokenizer can produce (model vocab and added tokens). */
int32_t ake_tokenizer_vocab_size(const ake_tokenizer *tok);
/* Ids of the specials; -1 where the files name none (pad: tokenizer.json padding,
 * else the pad_token of tokenizer_config.json). cls / sep: first / last special
 * id of the post-processor template. */
int32_t ake_tokenizer_cls_id(const ake_tokenizer *tok);
int32_t ake_tokenizer_sep_id(const ake_tokenizer *tok);
int32_t ake_tokenizer_pad_id(const ake_tokenizer *tok);
int32_t ake_tokenizer_unk_id(const ake_tokenizer *tok);
/* Truncation max_length from tokenizer.json (or model_max_length), 0 if none. */
int32_t ake_tokenizer_max_length(const ake_tokenizer *tok);

#endif
