/* Model folder -> ake_tokenizer: tokenizer.json (HF `tokenizers` format, see tokenizer_impl.h),
 * or, when it is absent, vocab.txt with tokenizer_config.json / special_tokens_map.json as
 * transformers' BertTokenizerFast would convert them. Every file is treated as hostile: each
 * field is type-checked and every failure names the file and the field. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "base/fs.h"
#include "base/json.h"
#include "text/tokenizer_impl.h"

#define MAX_FILE_BYTES (1u << 30)         /* refuse tokenizer files over 1 GiB */
#define MAX_CHARS_PER_WORD (1 << 20)      /* max_input_chars_per_word we accept */
#define MAX_SANE_MODEL_LENGTH (1 << 24)   /* transformers writes 1e30 for "no limit" */

typedef struct {
    const char *path; /* file being read, for messages */
    char *err;
    size_t errlen;
} ctx;

/* ---- small helpers ------------------------------------------------------------------------ */

/* The JSON object in file `path` (ake_json_parse: strict, as every JSON the project reads). */
static ake_status read_json(const char *path, json_object **out, char *err, size_t errlen) {
    char *buf;
    size_t len = 0, at, line, col;
    const char *why;
    *out = NULL;
    ake_status st = ake_read_file(path, MAX_FILE_BYTES, &buf, &len, err, errlen);
    if (st) return st;
    json_object *j;
    if (ake_json_parse(buf, len, &j, &at, &why)) {
        ake_json_line_col(buf, at, &line, &col);
        st = ake_errf(err, errlen, AKE_EFORMAT, "%s: not valid JSON (parse error near byte %zu, line %zu, column %zu: %s)",
                      path, at, line, col, why);
    } else if (!json_object_is_type(j, json_type_object)) {
        json_object_put(j);
        j = NULL;
        st = ake_errf(err, errlen, AKE_EFORMAT, "%s: top level is not a JSON object", path);
    }
    free(buf);
    *out = j;
    return st;
}

/* Field `key` of object o: NULL when absent or JSON null, or when o is not an object. */
static json_object *field(const json_object *o, const char *key) { return json_object_object_get(o, key); }

static ake_status get_bool(ctx *c, const json_object *o, const char *where, const char *key, bool dflt, bool *out) {
    const json_object *v = field(o, key);
    if (!v) {
        *out = dflt;
        return AKE_OK;
    }
    if (!json_object_is_type(v, json_type_boolean))
        return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: %s.%s is not true or false", c->path, where, key);
    *out = json_object_get_boolean(v);
    return AKE_OK;
}

/* A JSON number that is an integer in [lo, hi]. */
static bool as_int(const json_object *v, double lo, double hi, int32_t *out) {
    double d;
    if (!ake_json_number(v, &d)) return false;
    if (!(d >= lo && d <= hi) || d != (double)(int64_t)d) return false;
    *out = (int32_t)d;
    return true;
}

static ake_status get_int(ctx *c, const json_object *o, const char *where, const char *key, int32_t lo, int32_t hi,
                          int32_t dflt, int32_t *out) {
    const json_object *v = field(o, key);
    if (!v) {
        *out = dflt;
        return AKE_OK;
    }
    if (!as_int(v, lo, hi, out))
        return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: %s.%s is not an integer in [%d, %d]", c->path, where, key,
                        (int)lo, (int)hi);
    return AKE_OK;
}

static ake_status get_str(ctx *c, const json_object *o, const char *where, const char *key, const char *dflt,
                          const char **out) {
    json_object *v = field(o, key);
    if (!v) {
        *out = dflt;
        if (!dflt) return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: %s.%s is missing", c->path, where, key);
        return AKE_OK;
    }
    if (!json_object_is_type(v, json_type_string))
        return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: %s.%s is not a string", c->path, where, key);
    *out = json_object_get_string(v);
    return AKE_OK;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

static ake_status nomem(ctx *c) { return ake_errf(c->err, c->errlen, AKE_ENOMEM, "%s: out of memory", c->path); }

/* ---- the tokenizer ----------------------------------------------------------------------- */

void ake_tokenizer_free(ake_tokenizer *tok) {
    if (!tok) return;
    ake_vocab_free(&tok->vocab);
    for (size_t i = 0; i < tok->n_raw; i++) free(tok->raw[i].content);
    for (size_t i = 0; i < tok->n_norm; i++) {
        free(tok->norm[i].content);
        free(tok->norm[i].ncps);
    }
    free(tok->raw);
    free(tok->norm);
    free(tok->cont_prefix);
    free(tok->dec_prefix);
    free(tok->id_tokens);
    free(tok);
}

static ake_tokenizer *tok_new(void) {
    ake_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->unk_id = t->cls_id = t->sep_id = t->pad_id = -1;
    return t;
}

/* Largest id among the added tokens so far, -1 if none. */
static int32_t max_added_id(const ake_tokenizer *t) {
    int32_t m = -1;
    for (size_t i = 0; i < t->n_raw; i++)
        if (t->raw[i].id > m) m = t->raw[i].id;
    for (size_t i = 0; i < t->n_norm; i++)
        if (t->norm[i].id > m) m = t->norm[i].id;
    return m;
}

/* Adds an added token (content copied). Duplicate contents keep the first, as HF ignores a
 * token it already has. The id is the one HF's AddedVocabulary gives, whatever the file
 * says: the model vocab's id for that content, else the next id after the model vocab
 * (counted in distinct tokens) and the added tokens so far. Normalized tokens get their
 * normalized form now: the normalizer flags must be set before. */
static ake_status add_token(ctx *c, ake_tokenizer *t, const char *content, bool single_word, bool lstrip, bool rstrip,
                            bool normalized, bool special) {
    size_t len = strlen(content);
    if (len == 0) return AKE_OK; /* HF ignores empty added tokens */
    for (size_t i = 0; i < t->n_raw; i++)
        if (t->raw[i].len == len && memcmp(t->raw[i].content, content, len) == 0) return AKE_OK;
    for (size_t i = 0; i < t->n_norm; i++)
        if (t->norm[i].len == len && memcmp(t->norm[i].content, content, len) == 0) return AKE_OK;
    ake_added_token a = {.len = len, .single_word = single_word, .lstrip = lstrip, .rstrip = rstrip,
                         .normalized = normalized, .special = special};
    a.id = ake_vocab_get(&t->vocab, content, len);
    if (a.id < 0) {
        int32_t nv = (int32_t)t->vocab.n, m = max_added_id(t);
        a.id = m < 0 ? nv : (m >= nv || nv == 0) ? m + 1 : nv;
        if (a.id < 0 || a.id == INT32_MAX)
            return ake_errf(c->err, c->errlen, AKE_ETOOLONG, "%s: too many added tokens", c->path);
    }
    if (!(a.content = dup_str(content))) return nomem(c);
    if (normalized) {
        ake_status st = ake_tokenizer_normalize_cps(t, content, len, &a.ncps, &a.nlen);
        if (st == AKE_EINVAL) {
            free(a.content);
            return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: added token \"%s\" is not valid UTF-8", c->path, content);
        }
        if (st) {
            free(a.content);
            return nomem(c);
        }
    }
    ake_added_token **list = normalized ? &t->norm : &t->raw;
    size_t *n = normalized ? &t->n_norm : &t->n_raw;
    ake_added_token *p = realloc(*list, (*n + 1) * sizeof *p);
    if (!p) {
        free(a.content);
        free(a.ncps);
        return nomem(c);
    }
    /* keep sorted by decreasing length, stable: the first match at a position is the longest */
    size_t at = *n;
    while (at > 0 && (normalized ? p[at - 1].nlen < a.nlen : p[at - 1].len < a.len)) {
        p[at] = p[at - 1];
        at--;
    }
    p[at] = a;
    *list = p;
    (*n)++;
    if (!normalized) t->raw_first[(uint8_t)content[0] >> 3] |= (uint8_t)(1u << ((uint8_t)content[0] & 7));
    if (a.id >= t->vocab_size) t->vocab_size = a.id + 1;
    return AKE_OK;
}

/* Common checks once a tokenizer is assembled. */
static ake_status finish(ctx *c, ake_tokenizer *t) {
    if (t->n_prefix > 0) t->cls_id = t->prefix_ids[0];
    if (t->n_suffix > 0) t->sep_id = t->suffix_ids[t->n_suffix - 1];
    if (t->unk_id < 0) return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: no unknown token in the vocabulary", c->path);
    return AKE_OK;
}

/* ---- tokenizer.json ---------------------------------------------------------------------- */

static ake_status parse_model(ctx *c, ake_tokenizer *t, const json_object *root) {
    const json_object *m = field(root, "model");
    if (!json_object_is_type(m, json_type_object)) return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: \"model\" is missing or not an object", c->path);
    const char *type = NULL, *unk = NULL, *prefix = NULL;
    ake_status st;
    if ((st = get_str(c, m, "model", "type", "WordPiece", &type))) return st;
    if (strcmp(type, "WordPiece") != 0)
        return ake_errf(c->err, c->errlen, AKE_EUNSUPPORTED, "%s: model type \"%s\" is not supported (only WordPiece)",
                        c->path, type);
    if ((st = get_str(c, m, "model", "unk_token", "[UNK]", &unk))) return st;
    if ((st = get_str(c, m, "model", "continuing_subword_prefix", "##", &prefix))) return st;
    if ((st = get_int(c, m, "model", "max_input_chars_per_word", 0, MAX_CHARS_PER_WORD, 100,
                      &t->max_input_chars_per_word)))
        return st;
    if (!(t->cont_prefix = dup_str(prefix))) return nomem(c);
    t->cont_prefix_len = strlen(prefix);

    const json_object *vocab = field(m, "vocab");
    if (!json_object_is_type(vocab, json_type_object))
        return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: model.vocab is missing or not an object", c->path);
    size_t k = 0;
    json_object_object_foreach(vocab, token, e) {
        int32_t id = -1;
        if (!as_int(e, 0, INT32_MAX - 1, &id))
            return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: model.vocab entry %zu (\"%s\") is not an id in [0, 2^31-2]",
                            c->path, k, token);
        if ((st = ake_vocab_put(&t->vocab, token, strlen(token), id)))
            return ake_errf(c->err, c->errlen, st, "%s: model.vocab: %s", c->path, ake_status_str(st));
        if (id >= t->vocab_size) t->vocab_size = id + 1;
        k++;
    }
    t->unk_id = ake_vocab_get(&t->vocab, unk, strlen(unk));
    if (t->unk_id < 0)
        return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: model.unk_token \"%s\" is not in model.vocab", c->path, unk);
    return AKE_OK;
}

static ake_status parse_normalizer(ctx *c, ake_tokenizer *t, const json_object *root) {
    const json_object *n = field(root, "normalizer");
    if (!n) return AKE_OK; /* no normalizer: text goes to the pre-tokenizer as it is */
    if (!json_object_is_type(n, json_type_object)) return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: \"normalizer\" is not an object", c->path);
    const char *type = NULL;
    ake_status st;
    if ((st = get_str(c, n, "normalizer", "type", NULL, &type))) return st;
    if (strcmp(type, "BertNormalizer") != 0)
        return ake_errf(c->err, c->errlen, AKE_EUNSUPPORTED,
                        "%s: normalizer type \"%s\" is not supported (only BertNormalizer)", c->path, type);
    if ((st = get_bool(c, n, "normalizer", "clean_text", true, &t->clean_text))) return st;
    if ((st = get_bool(c, n, "normalizer", "handle_chinese_chars", true, &t->handle_chinese_chars))) return st;
    if ((st = get_bool(c, n, "normalizer", "lowercase", true, &t->lowercase))) return st;
    /* strip_accents: null means "as lowercase" (HF BertNormalizer) */
    return get_bool(c, n, "normalizer", "strip_accents", t->lowercase, &t->strip_accents);
}

static ake_status parse_pre_tokenizer(ctx *c, const json_object *root) {
    const json_object *p = field(root, "pre_tokenizer");
    const char *type = "null";
    if (p) {
        if (!json_object_is_type(p, json_type_object)) return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: \"pre_tokenizer\" is not an object", c->path);
        ake_status st = get_str(c, p, "pre_tokenizer", "type", NULL, &type);
        if (st) return st;
        if (strcmp(type, "BertPreTokenizer") == 0) return AKE_OK;
    }
    return ake_errf(c->err, c->errlen, AKE_EUNSUPPORTED,
                    "%s: pre_tokenizer \"%s\" is not supported (only BertPreTokenizer)", c->path, type);
}

static ake_status push_id(ctx *c, ake_tokenizer *t, bool before, int32_t id) {
    int32_t *n = before ? &t->n_prefix : &t->n_suffix;
    if (*n >= AKE_TOK_MAX_TEMPLATE)
        return ake_errf(c->err, c->errlen, AKE_EUNSUPPORTED, "%s: post_processor adds more than %d tokens on a side", c->path,
                        AKE_TOK_MAX_TEMPLATE);
    (before ? t->prefix_ids : t->suffix_ids)[(*n)++] = id;
    if (id >= t->vocab_size) t->vocab_size = id + 1;
    return AKE_OK;
}

static ake_status parse_post_processor(ctx *c, ake_tokenizer *t, const json_object *root) {
    const json_object *p = field(root, "post_processor");
    if (!json_object_is_type(p, json_type_object))
        return ake_errf(c->err, c->errlen, AKE_EUNSUPPORTED,
                        "%s: post_processor is missing; a BERT tokenizer needs its [CLS] ... [SEP] template", c->path);
    const char *type = NULL;
    ake_status st;
    if ((st = get_str(c, p, "post_processor", "type", NULL, &type))) return st;
    if (strcmp(type, "BertProcessing") == 0) {
        const char *keys[2] = {"cls", "sep"};
        for (int i = 0; i < 2; i++) {
            const json_object *pair = field(p, keys[i]);
            int32_t id = -1;
            if (!json_object_is_type(pair, json_type_array) || json_object_array_length(pair) != 2 ||
                !as_int(json_object_array_get_idx(pair, 1), 0, INT32_MAX - 1, &id))
                return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: post_processor.%s is not [token, id]", c->path, keys[i]);
            if ((st = push_id(c, t, i == 0, id))) return st;
        }
        return AKE_OK;
    }
    if (strcmp(type, "TemplateProcessing") != 0)
        return ake_errf(c->err, c->errlen, AKE_EUNSUPPORTED,
                        "%s: post_processor type \"%s\" is not supported (TemplateProcessing, BertProcessing)", c->path,
                        type);
    const json_object *single = field(p, "single"), *specials = field(p, "special_tokens");
    if (!json_object_is_type(single, json_type_array))
        return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: post_processor.single is not an array", c->path);
    bool seen_a = false;
    const size_t n_single = json_object_array_length(single);
    for (size_t i = 0; i < n_single; i++) {
        const json_object *item = json_object_array_get_idx(single, i);
        const json_object *sp = field(item, "SpecialToken"), *seq = field(item, "Sequence");
        if (seq) {
            const char *id = NULL;
            if ((st = get_str(c, seq, "post_processor.single[].Sequence", "id", NULL, &id))) return st;
            if (strcmp(id, "A") != 0 || seen_a)
                return ake_errf(c->err, c->errlen, AKE_EUNSUPPORTED,
                                "%s: post_processor.single must hold sequence A once", c->path);
            seen_a = true;
            continue;
        }
        const char *name = NULL;
        if (!sp) return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: post_processor.single has an item that is neither SpecialToken nor Sequence", c->path);
        if ((st = get_str(c, sp, "post_processor.single[].SpecialToken", "id", NULL, &name))) return st;
        const json_object *ids = field(field(specials, name), "ids");
        if (!json_object_is_type(ids, json_type_array))
            return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: post_processor.special_tokens has no ids for \"%s\"",
                            c->path, name);
        const size_t n_ids = json_object_array_length(ids);
        for (size_t k = 0; k < n_ids; k++) {
            int32_t id = -1;
            if (!as_int(json_object_array_get_idx(ids, k), 0, INT32_MAX - 1, &id))
                return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: post_processor.special_tokens.%s.ids has a bad id",
                                c->path, name);
            if ((st = push_id(c, t, !seen_a, id))) return st;
        }
    }
    if (!seen_a) return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: post_processor.single has no sequence A", c->path);
    return AKE_OK;
}

static ake_status parse_added_tokens(ctx *c, ake_tokenizer *t, const json_object *root) {
    const json_object *arr = field(root, "added_tokens");
    if (!arr) return AKE_OK;
    if (!json_object_is_type(arr, json_type_array))
        return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: added_tokens is not an array", c->path);
    const size_t n = json_object_array_length(arr);
    for (size_t i = 0; i < n; i++) {
        const json_object *a = json_object_array_get_idx(arr, i);
        char where[48];
        snprintf(where, sizeof where, "added_tokens[%zu]", i);
        if (!json_object_is_type(a, json_type_object)) return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: %s is not an object", c->path, where);
        const char *content = NULL;
        int32_t id = -1;
        bool sw = false, ls = false, rs = false, norm = false, special = false;
        ake_status st;
        if ((st = get_str(c, a, where, "content", NULL, &content)) || (st = get_int(c, a, where, "id", 0, INT32_MAX - 1, -1, &id)) ||
            (st = get_bool(c, a, where, "special", false, &special)) || (st = get_bool(c, a, where, "single_word", false, &sw)) ||
            (st = get_bool(c, a, where, "lstrip", false, &ls)) || (st = get_bool(c, a, where, "rstrip", false, &rs)) ||
            (st = get_bool(c, a, where, "normalized", !special, &norm)))
            return st;
        if (id < 0) return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: %s.id is missing", c->path, where);
        if ((st = add_token(c, t, content, sw, ls, rs, norm, special))) return st;
    }
    return AKE_OK;
}

/* "decoder": only ake_tokenizer_decode reads it, so an unknown type is remembered, not refused:
 * encoding (all the server needs to embed) does not depend on it. */
static ake_status parse_decoder(ctx *c, ake_tokenizer *t, const json_object *root) {
    const json_object *d = field(root, "decoder");
    if (!d) {
        t->decoder = AKE_DECODER_NONE;
        return AKE_OK;
    }
    if (!json_object_is_type(d, json_type_object)) return ake_errf(c->err, c->errlen, AKE_EFORMAT, "%s: decoder is not an object", c->path);
    const char *type = NULL, *prefix = NULL;
    ake_status st;
    if ((st = get_str(c, d, "decoder", "type", NULL, &type))) return st;
    if (strcmp(type, "WordPiece") != 0) {
        t->decoder = AKE_DECODER_UNSUPPORTED;
        snprintf(t->dec_type, sizeof t->dec_type, "%s", type);
        return AKE_OK;
    }
    /* the defaults of decoders/wordpiece.rs WordPiece::default() */
    if ((st = get_str(c, d, "decoder", "prefix", "##", &prefix)) ||
        (st = get_bool(c, d, "decoder", "cleanup", true, &t->dec_cleanup)))
        return st;
    if (!(t->dec_prefix = dup_str(prefix))) return nomem(c);
    t->dec_prefix_len = strlen(prefix);
    t->decoder = AKE_DECODER_WORDPIECE;
    return AKE_OK;
}

/* Optional tokenizer_config.json next to tokenizer.json: only model_max_length and pad_token are used. */
static ake_status load_json(const char *dir, const char *path, ake_tokenizer *t, char *err, size_t errlen) {
    ctx c = {.path = path, .err = err, .errlen = errlen};
    json_object *root;
    ake_status st = read_json(path, &root, err, errlen);
    if (st) return st;
    if ((st = parse_model(&c, t, root)) || (st = parse_normalizer(&c, t, root)) || (st = parse_pre_tokenizer(&c, root)) ||
        (st = parse_post_processor(&c, t, root)) || (st = parse_added_tokens(&c, t, root)) ||
        (st = parse_decoder(&c, t, root)))
        goto out;
    const json_object *trunc = field(root, "truncation"), *pad = field(root, "padding");
    if (trunc && (st = get_int(&c, trunc, "truncation", "max_length", 0, INT32_MAX, 0, &t->max_length))) goto out;
    if (pad && (st = get_int(&c, pad, "padding", "pad_id", 0, INT32_MAX - 1, -1, &t->pad_id))) goto out;
    if ((st = finish(&c, t))) goto out;

    /* tokenizer_config.json: fill what tokenizer.json left open */
    char *cfg_path = ake_path_join(dir, "tokenizer_config.json");
    if (!cfg_path) {
        st = nomem(&c);
        goto out;
    }
    if ((t->max_length == 0 || t->pad_id < 0) && ake_file_exists(cfg_path)) {
        json_object *cfg;
        if (!(st = read_json(cfg_path, &cfg, err, errlen))) {
            const json_object *ml = field(cfg, "model_max_length");
            int32_t v = 0;
            if (t->max_length == 0 && ml && as_int(ml, 1, MAX_SANE_MODEL_LENGTH, &v)) t->max_length = v;
            json_object *pt = field(cfg, "pad_token");
            if (json_object_is_type(pt, json_type_object)) pt = field(pt, "content");
            if (t->pad_id < 0 && json_object_is_type(pt, json_type_string))
                t->pad_id = ake_vocab_get(&t->vocab, json_object_get_string(pt), strlen(json_object_get_string(pt)));
            json_object_put(cfg);
        }
    }
    free(cfg_path);
out:
    json_object_put(root);
    return st;
}

/* ---- vocab.txt fallback ------------------------------------------------------------------- */

/* Token name from tokenizer_config.json / special_tokens_map.json: a string, or an AddedToken
 * object with "content". NULL if absent. */
static const char *special_name(const json_object *cfg, const char *key) {
    json_object *v = field(cfg, key);
    if (json_object_is_type(v, json_type_object)) v = field(v, "content");
    return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Length of line s[0..n) without trailing White_Space (Rust str::trim_end). */
static size_t trim_end(const char *s, size_t n) {
    while (n > 0) {
        size_t i = n - 1;
        while (i > 0 && ((uint8_t)s[i] & 0xC0) == 0x80) i--;
        const uint8_t *u = (const uint8_t *)s + i;
        int32_t cp;
        size_t k = n - i;
        if (k == 1) cp = u[0];
        else if (k == 2) cp = ((u[0] & 0x1F) << 6) | (u[1] & 0x3F);
        else if (k == 3) cp = ((u[0] & 0x0F) << 12) | ((u[1] & 0x3F) << 6) | (u[2] & 0x3F);
        else cp = ((u[0] & 0x07) << 18) | ((u[1] & 0x3F) << 12) | ((u[2] & 0x3F) << 6) | (u[3] & 0x3F);
        if (!ake_text_is_white_space(cp)) break;
        n = i;
    }
    return n;
}

static ake_status load_vocab_txt(const char *dir, const char *path, ake_tokenizer *t, char *err, size_t errlen) {
    ctx c = {.path = path, .err = err, .errlen = errlen};
    char *buf = NULL, *cfg_path = ake_path_join(dir, "tokenizer_config.json"), *map_path = ake_path_join(dir, "special_tokens_map.json");
    json_object *cfg = NULL, *map = NULL;
    size_t len = 0;
    ake_status st = AKE_OK;
    if (!cfg_path || !map_path) {
        st = nomem(&c);
        goto out;
    }
    if ((st = ake_read_file(path, MAX_FILE_BYTES, &buf, &len, err, errlen))) goto out;
    if (ake_file_exists(cfg_path) && (st = read_json(cfg_path, &cfg, err, errlen))) goto out;
    if (ake_file_exists(map_path) && (st = read_json(map_path, &map, err, errlen))) goto out;

    /* one token per line, id = line number; lines end at \n or \r\n (Rust BufRead::lines) */
    int32_t id = 0;
    for (size_t i = 0; i < len; id++) {
        const char *line = buf + i;
        const char *nl = memchr(line, '\n', len - i);
        size_t n = nl ? (size_t)(nl - line) : len - i;
        i += n + (nl ? 1 : 0);
        if (n > 0 && line[n - 1] == '\r') n--;
        /* each line must be UTF-8, as HF reads it into a String */
        size_t bad = ake_text_utf8_invalid_at((const uint8_t *)line, n);
        if (bad < n) {
            st = ake_errf(err, errlen, AKE_EFORMAT, "%s: line %d is not valid UTF-8 (byte %zu of the line)", path,
                          (int)id + 1, bad);
            goto out;
        }
        if (id == INT32_MAX - 1) {
            st = ake_errf(err, errlen, AKE_ETOOLONG, "%s: more than 2^31-1 lines", path);
            goto out;
        }
        n = trim_end(line, n);
        if ((st = ake_vocab_put(&t->vocab, line, n, id))) {
            st = ake_errf(err, errlen, st, "%s: line %d: %s", path, (int)id + 1, ake_status_str(st));
            goto out;
        }
    }
    t->vocab_size = id;

    /* BertTokenizerFast defaults, overridden by tokenizer_config.json */
    ctx cc = {.path = cfg_path, .err = err, .errlen = errlen};
    bool strip_set = false;
    t->clean_text = t->handle_chinese_chars = t->lowercase = true;
    t->max_input_chars_per_word = 100;
    if (!(t->cont_prefix = dup_str("##"))) {
        st = nomem(&c);
        goto out;
    }
    t->cont_prefix_len = 2;
    /* transformers' converter (convert_slow_tokenizer.py, BertConverter) gives the fast
     * tokenizer decoders.WordPiece(prefix="##"), cleanup on by default */
    if (!(t->dec_prefix = dup_str("##"))) {
        st = nomem(&c);
        goto out;
    }
    t->dec_prefix_len = 2;
    t->dec_cleanup = true;
    t->decoder = AKE_DECODER_WORDPIECE;
    if (cfg) {
        if ((st = get_bool(&cc, cfg, "tokenizer_config", "do_lower_case", true, &t->lowercase)) ||
            (st = get_bool(&cc, cfg, "tokenizer_config", "tokenize_chinese_chars", true, &t->handle_chinese_chars)))
            goto out;
        if (field(cfg, "strip_accents")) {
            if ((st = get_bool(&cc, cfg, "tokenizer_config", "strip_accents", false, &t->strip_accents))) goto out;
            strip_set = true;
        }
        const json_object *ml = field(cfg, "model_max_length");
        int32_t v = 0;
        if (ml && as_int(ml, 1, MAX_SANE_MODEL_LENGTH, &v)) t->max_length = v;
    }
    if (!strip_set) t->strip_accents = t->lowercase;

    /* special tokens: tokenizer_config.json, then special_tokens_map.json, then BERT's names
     * (only when neither file exists) */
    static const char *const keys[] = {"unk_token", "sep_token", "pad_token", "cls_token", "mask_token"};
    static const char *const dflt[] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};
    int32_t ids[5];
    for (int k = 0; k < 5; k++) {
        const char *name = special_name(cfg, keys[k]);
        const char *from = cfg_path;
        if (!name) {
            name = special_name(map, keys[k]);
            from = map_path;
        }
        if (!name && !cfg && !map) {
            name = dflt[k];
            from = "the BERT defaults";
        }
        ids[k] = -1;
        if (!name) continue;
        ids[k] = ake_vocab_get(&t->vocab, name, strlen(name));
        if (ids[k] < 0) {
            st = ake_errf(err, errlen, AKE_EFORMAT, "%s: %s \"%s\" (from %s) is not in the vocabulary", path, keys[k], name,
                          from);
            goto out;
        }
        if ((st = add_token(&c, t, name, false, false, false, false, true))) goto out;
    }
    const json_object *extra = cfg ? field(cfg, "additional_special_tokens") : NULL;
    if (!extra && map) extra = field(map, "additional_special_tokens");
    const size_t n_extra = json_object_is_type(extra, json_type_array) ? json_object_array_length(extra) : 0;
    for (size_t i = 0; i < n_extra; i++) {
        json_object *x = json_object_array_get_idx(extra, i);
        const char *name = json_object_is_type(x, json_type_string) ? json_object_get_string(x) : NULL;
        if (!name && json_object_is_type(x, json_type_object)) name = special_name(x, "content");
        if (!name) continue;
        if ((st = add_token(&c, t, name, false, false, false, false, true))) goto out;
    }
    t->unk_id = ids[0];
    t->pad_id = ids[2];
    if (ids[3] < 0 || ids[1] < 0) {
        st = ake_errf(err, errlen, AKE_EFORMAT, "%s: no cls_token / sep_token named in %s or %s", path, cfg_path, map_path);
        goto out;
    }
    t->prefix_ids[t->n_prefix++] = ids[3];
    t->suffix_ids[t->n_suffix++] = ids[1];
    st = finish(&c, t);
out:
    json_object_put(cfg);
    json_object_put(map);
    free(buf);
    free(cfg_path);
    free(map_path);
    return st;
}

/* The id -> token table, as HF Tokenizer::id_to_token: an added token's content wins over the
 * model vocab's token with the same id. Built once everything is loaded, so the pointers into
 * vocab.pool no longer move. */
static ake_status build_id_tokens(ake_tokenizer *t) {
    if (t->vocab_size <= 0) return AKE_OK;
    ake_id_token *tab = calloc((size_t)t->vocab_size, sizeof *tab);
    if (!tab) return AKE_ENOMEM;
    const ake_vocab *v = &t->vocab;
    for (uint32_t k = 0; k < v->n; k++) {
        const ake_vocab_entry *e = &v->entries[k];
        tab[e->id] = (ake_id_token){.s = v->pool + e->off, .len = e->len};
    }
    for (int pass = 0; pass < 2; pass++) {
        const ake_added_token *list = pass ? t->norm : t->raw;
        size_t n = pass ? t->n_norm : t->n_raw;
        for (size_t i = 0; i < n; i++) tab[list[i].id] = (ake_id_token){.s = list[i].content, .len = (uint32_t)list[i].len};
    }
    /* HF skips a token in decode when its text is a special token's content, whatever its id:
     * mark the special token's own id and the model vocab's id of that text */
    for (int pass = 0; pass < 2; pass++) {
        const ake_added_token *list = pass ? t->norm : t->raw;
        size_t n = pass ? t->n_norm : t->n_raw;
        for (size_t i = 0; i < n; i++) {
            const ake_added_token *a = &list[i];
            if (!a->special) continue;
            int32_t ids[2] = {a->id, ake_vocab_get(v, a->content, a->len)};
            for (int k = 0; k < 2; k++) {
                ake_id_token *r = ids[k] >= 0 ? &tab[ids[k]] : NULL;
                if (r && r->s && r->len == a->len && memcmp(r->s, a->content, a->len) == 0) r->special = true;
            }
        }
    }
    t->id_tokens = tab;
    return AKE_OK;
}

ake_status ake_tokenizer_load(const char *model_dir, ake_tokenizer **out, char *err, size_t errlen) {
    if (!out) return ake_errf(err, errlen, AKE_EINVAL, "ake_tokenizer_load: out is NULL");
    *out = NULL;
    if (!model_dir || !*model_dir) return ake_errf(err, errlen, AKE_EINVAL, "ake_tokenizer_load: no model folder given");
    struct stat sb;
    if (stat(model_dir, &sb) != 0)
        return ake_errf(err, errlen, AKE_ENOTFOUND, "model folder %s: %s", model_dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return ake_errf(err, errlen, AKE_ENOTFOUND, "model folder %s is not a folder", model_dir);
    char *json = ake_path_join(model_dir, "tokenizer.json"), *txt = ake_path_join(model_dir, "vocab.txt");
    ake_tokenizer *t = tok_new();
    ake_status st;
    if (!json || !txt || !t) st = ake_errf(err, errlen, AKE_ENOMEM, "out of memory loading the tokenizer of %s", model_dir);
    else if (ake_file_exists(json)) st = load_json(model_dir, json, t, err, errlen);
    else if (ake_file_exists(txt)) st = load_vocab_txt(model_dir, txt, t, err, errlen);
    else st = ake_errf(err, errlen, AKE_ENOTFOUND, "model folder %s has neither tokenizer.json nor vocab.txt", model_dir);
    if (!st && build_id_tokens(t))
        st = ake_errf(err, errlen, AKE_ENOMEM, "out of memory loading the tokenizer of %s", model_dir);
    free(json);
    free(txt);
    if (st) {
        ake_tokenizer_free(t);
        return st;
    }
    *out = t;
    return AKE_OK;
}
