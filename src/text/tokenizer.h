/* BERT WordPiece tokenizer, equal to Hugging Face `tokenizers` (BertNormalizer +
 * BertPreTokenizer + WordPiece + the [CLS] A [SEP] template) on every input.
 *
 * Loaded from a model folder's tokenizer.json (vocab.txt + tokenizer_config.json
 * as fallback). Special tokens and their ids come from those files, never from
 * literals. A loaded tokenizer is immutable: ake_tokenizer_encode may be called
 * from many threads at once on the same tokenizer, as may every other function here.
 *
 * Supported tokenizer.json pieces: model WordPiece, normalizer BertNormalizer (or
 * none), pre_tokenizer BertPreTokenizer, post_processor TemplateProcessing or
 * BertProcessing, added_tokens with their single_word / lstrip / rstrip / normalized
 * flags. Anything else is refused at load with AKE_EUNSUPPORTED rather than
 * tokenized differently. The decoder (WordPiece or none) is used only by
 * ake_tokenizer_decode, which refuses another (the tokenizer still loads and encodes).
 * Internals: tokenizer_impl.h. */
#ifndef AKE_TEXT_TOKENIZER_H
#define AKE_TEXT_TOKENIZER_H

#include <stdbool.h>
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

/* Where one token came from, for ake_tokenizer_encode_spans (TEI's POST /tokenize). */
typedef struct {
    uint32_t start, stop; /* bytes [start, stop) of the input text (not code points); 0, 0 when special */
    uint8_t special;      /* 1: added by the post-processor template ([CLS], [SEP]), not from the text */
} ake_token_span;

/* Result of one encode. ids (and spans) are owned by the struct and grown as needed, so one
 * ake_tokens can be reused across calls; start from a zeroed struct (ake_tokens t = {0};)
 * and release with ake_tokens_release. */
typedef struct {
    int32_t *ids;         /* [n] token ids, [CLS] first and [SEP] last */
    int32_t n;            /* tokens kept, specials included */
    int32_t n_untruncated; /* tokens the text would have without truncation, specials included */
    int32_t cap;          /* allocated length of ids */
    ake_token_span *spans; /* [n_spans] span of ids[i]; filled only by ake_tokenizer_encode_spans */
    int32_t n_spans;      /* n after ake_tokenizer_encode_spans, 0 after ake_tokenizer_encode */
    int32_t spans_cap;    /* allocated length of spans */
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

/* ake_tokenizer_encode, and for every token kept also where it came from: out->spans[i] is
 * the span of out->ids[i] (out->n_spans == out->n). Equal to HF `tokenizers` Encoding.offsets
 * as the Rust crate gives them (bytes of the original text; the Python binding gives code
 * points over the same spans) and to its special_tokens_mask:
 *   - a template special ([CLS], [SEP]) has special = 1 and start = stop = 0;
 *   - a word piece spans the original characters its first and last normalized characters
 *     came from (HF NormalizedString alignments): a character the BertNormalizer removes
 *     (controls, U+0000) never starts or ends a span, but lies inside one between kept
 *     characters ("a\0b" -> "ab" spans [0, 3)); one it expands (U+0130 -> i U+0307 when
 *     lowercasing, CJK ideographs given spaces) gives all its pieces its own span; a
 *     [UNK] spans its whole word;
 *   - with strip_accents, HF hands out spans by position inside a reordered run of combining
 *     marks (canonical ordering), not by where each mark came from, and so do we; spans of
 *     the non-special tokens never decrease;
 *   - an added token matched in the text (tokenizer.json added_tokens, special or not) has
 *     special = 0 and spans its match, with the whitespace lstrip / rstrip took;
 *   - truncation keeps the spans of the kept tokens.
 * Errors as ake_tokenizer_encode, plus AKE_ETOOLONG for a text of more than UINT32_MAX bytes
 * (the spans are uint32) and AKE_ENOMEM if growing out->spans fails. Slower than
 * ake_tokenizer_encode (each character carries its span through the pipeline) and allocates
 * a little scratch memory per call: use it only where the spans are wanted. */
ake_status ake_tokenizer_encode_spans(const ake_tokenizer *tok, const char *text, size_t len, int32_t max_tokens,
                                      ake_truncation_dir dir, ake_tokens *out, char *err, size_t errlen);

/* The token string of id (the vocab piece, e.g. "##ing", or an added token's content, e.g.
 * "[CLS]"), as HF Tokenizer.id_to_token: added tokens first, then the model vocab. Returns a
 * pointer into the tokenizer's memory, valid until ake_tokenizer_free, NOT NUL-terminated,
 * with its length in bytes in *len (len may be NULL). NULL (and *len = 0) when no token has
 * that id: id < 0, id >= ake_tokenizer_vocab_size, or a hole in the vocab's ids. */
const char *ake_tokenizer_id_to_token(const ake_tokenizer *tok, int32_t id, size_t *len);

/* Ids -> text, equal to HF `tokenizers` Tokenizer.decode(ids, skip_special_tokens): each id
 * becomes its token (ake_tokenizer_id_to_token); with skip_special_tokens, tokens whose text is
 * a special added token's content ([CLS], [SEP], [PAD], [MASK], ...) are left out; then the
 * tokenizer.json decoder joins them. Supported decoders: WordPiece (decoders/wordpiece.rs: a
 * token after the first loses its "##" prefix or gets a leading space, then, with cleanup,
 * each token on its own gets clean_up_tokenization: " ." -> ".", " n't" -> "n't", ...) and
 * none (tokens joined by single spaces, as HF without a decoder). The vocab.txt fallback
 * decodes as transformers' BertTokenizerFast does: WordPiece, "##", cleanup.
 *
 * On success *out is a malloc'd NUL-terminated UTF-8 string (free with free()) of *out_len
 * bytes (out_len may be NULL); n == 0 gives "". Errors (*out NULL): AKE_EINVAL when an id has
 * no token (negative, >= ake_tokenizer_vocab_size, or a hole), naming its position and value:
 * HF drops such ids silently, but an id the model never produces is a caller's bug, and a
 * text with a silent gap in it would hide it; AKE_EINVAL for NULL arguments; AKE_EUNSUPPORTED
 * when tokenizer.json names another decoder (the tokenizer still encodes); AKE_ENOMEM. O(n +
 * output length) time. */
ake_status ake_tokenizer_decode(const ake_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special_tokens,
                                char **out, size_t *out_len, char *err, size_t errlen);

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
