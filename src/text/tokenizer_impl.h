/* Internals of the tokenizer, shared by tokenizer_load.c (files -> struct), vocab.c (the
 * token -> id hash) and tokenizer.c (text -> ids). Not for use outside src/text/.
 *
 * What is loaded, and from where (HF `tokenizers` 0.21 tokenizer.json, format version "1.0"):
 *   model            {"type": "WordPiece", "vocab": {token: id}, "unk_token", "continuing_subword_prefix",
 *                     "max_input_chars_per_word"}
 *   normalizer       {"type": "BertNormalizer", "clean_text", "handle_chinese_chars",
 *                     "strip_accents" (null = follow "lowercase"), "lowercase"} or null
 *   pre_tokenizer    {"type": "BertPreTokenizer"}
 *   post_processor   {"type": "TemplateProcessing", "single": [...], "special_tokens": {...}} or
 *                    {"type": "BertProcessing", "cls": [tok, id], "sep": [tok, id]}
 *   added_tokens     [{"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"}]
 *   truncation       {"max_length"} or null;  padding {"pad_id"} or null (only pad_id is used)
 *   decoder          {"type": "WordPiece", "prefix", "cleanup"} or null; another type loads, but
 *                    ake_tokenizer_decode refuses it (encoding never uses the decoder)
 * Any other normalizer / pre-tokenizer / model / post-processor type is refused at load
 * (AKE_EUNSUPPORTED) rather than tokenized differently from HF. */
#ifndef AKE_TEXT_TOKENIZER_IMPL_H
#define AKE_TEXT_TOKENIZER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "text/tokenizer.h"

/* ---- vocab.c: token string -> id, open addressing with linear probing ---------------- */

typedef struct {
    uint32_t off;  /* token bytes at pool + off */
    uint32_t len;  /* token length in bytes */
    uint32_t hash; /* ake_vocab_hash of the bytes */
    int32_t id;
} ake_vocab_entry;

typedef struct {
    char *pool;               /* all token bytes, back to back; owned */
    size_t pool_len, pool_cap;
    ake_vocab_entry *entries; /* [n] owned */
    uint32_t n, entries_cap;
    uint32_t *slots;          /* [mask + 1] entry index + 1, 0 = empty; owned */
    uint32_t mask;
    uint32_t max_len;         /* longest token in bytes: no longer key can match */
} ake_vocab;

/* FNV-1a over a then b (either may be empty): lets "##" + piece be looked up without a copy. */
uint32_t ake_vocab_hash2(const char *a, size_t alen, const char *b, size_t blen);

/* Inserts or overwrites (the later id wins, as a Rust HashMap insert does). AKE_ENOMEM on
 * allocation failure, AKE_ETOOLONG past 2^31 tokens or 4 GiB of token text. */
ake_status ake_vocab_put(ake_vocab *v, const char *tok, size_t len, int32_t id);

/* Id of the token a ++ b, or -1. */
int32_t ake_vocab_get2(const ake_vocab *v, const char *a, size_t alen, const char *b, size_t blen);

static inline int32_t ake_vocab_get(const ake_vocab *v, const char *tok, size_t len) {
    return ake_vocab_get2(v, "", 0, tok, len);
}

void ake_vocab_free(ake_vocab *v);

/* ---- the loaded tokenizer -------------------------------------------------------------- */

/* An added token (tokenizer.json "added_tokens"), matched in the text before the model. */
typedef struct {
    char *content;    /* UTF-8, owned */
    size_t len;       /* bytes */
    int32_t *ncps;    /* normalized: content after the normalizer, as code points; owned */
    size_t nlen;      /* code points in ncps */
    int32_t id;
    bool single_word, lstrip, rstrip, normalized, special;
} ake_added_token;

/* One row of the id -> token table (ake_tokenizer_id_to_token, ake_tokenizer_decode). */
typedef struct {
    const char *s; /* token bytes, not NUL-terminated: in vocab.pool or an added token's content; NULL = no token */
    uint32_t len;  /* bytes */
    bool special;  /* s is the content of a special added token (HF AddedVocabulary::is_special_token) */
} ake_id_token;

typedef enum {
    AKE_DECODER_NONE = 0,    /* tokenizer.json "decoder": null: tokens joined by ' ' */
    AKE_DECODER_WORDPIECE,   /* decoders/wordpiece.rs */
    AKE_DECODER_UNSUPPORTED, /* any other type: decode refuses, naming it */
} ake_decoder_type;

#define AKE_TOK_MAX_TEMPLATE 8 /* special ids before / after the sequence in the template */

struct ake_tokenizer {
    ake_vocab vocab;

    /* BertNormalizer; all false when the file has no normalizer */
    bool clean_text, handle_chinese_chars, strip_accents, lowercase;

    /* WordPiece */
    char *cont_prefix;        /* continuing_subword_prefix, "##"; owned */
    size_t cont_prefix_len;
    int32_t max_input_chars_per_word;
    int32_t unk_id;

    /* Added tokens. raw: normalized == false, matched on the input text; norm: matched on
     * the normalized text. Each list sorted by decreasing length so the first match at a
     * position is the longest (Aho-Corasick LeftmostLongest, as HF). */
    ake_added_token *raw, *norm;
    size_t n_raw, n_norm;
    uint8_t raw_first[32]; /* bitmap of the first bytes of raw contents */

    /* Post-processor template: [prefix] A [suffix] */
    int32_t prefix_ids[AKE_TOK_MAX_TEMPLATE], suffix_ids[AKE_TOK_MAX_TEMPLATE];
    int32_t n_prefix, n_suffix;

    /* Decoder (ake_tokenizer_decode only) */
    ake_decoder_type decoder;
    char *dec_prefix;      /* WordPiece prefix, "##"; owned */
    size_t dec_prefix_len;
    bool dec_cleanup;      /* WordPiece cleanup: clean_up_tokenization on each token */
    char dec_type[32];     /* the unsupported type's name, for the error */

    /* id -> token: [vocab_size], built at the end of loading (the pointers into vocab.pool
     * are stable from then on); owned */
    ake_id_token *id_tokens;

    int32_t cls_id, sep_id, pad_id; /* -1 when the files do not name one */
    int32_t max_length;             /* truncation max_length, else model_max_length, else 0 */
    int32_t vocab_size;             /* 1 + largest id of the model vocab and added tokens */
};

/* tokenizer.c: runs the tokenizer's normalizer over `len` bytes of valid UTF-8 and returns
 * the code points in *out (malloc'd, caller frees; *out may be NULL when *n == 0). Used at
 * load time to normalize the contents of normalized added tokens, as HF does. */
ake_status ake_tokenizer_normalize_cps(const ake_tokenizer *tok, const char *s, size_t len, int32_t **out,
                                       size_t *n);

/* tokenizer.c: offset of the first byte of s[0..len) that does not start a well-formed UTF-8
 * sequence (no overlongs, surrogates or code points past U+10FFFF); len if all is valid. */
size_t ake_text_utf8_invalid_at(const uint8_t *s, size_t len);

/* tokenizer.c: the Unicode version of the utf8proc that unicode_compat_impl.h was measured
 * against. With another utf8proc the corrections may be incomplete: regenerate them
 * (tests/golden/make_unicode_compat.py); test_tokenizer checks the two agree. */
const char *ake_text_unicode_compat_version(void);

/* tokenizer.c: Rust char::is_whitespace (Unicode White_Space). */
bool ake_text_is_white_space(int32_t c);

#endif
