/* Parts shared by the TEI and OpenAI APIs: JSON parsing, tokenization,
 * normalization and error bodies. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "base/json.h"
#include "serve/api_impl.h"

static int vfail(ake_api_error *e, int status, ake_api_err_kind kind, const char *param, const char *fmt, va_list ap) {
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    e->status = status;
    e->kind = kind;
    e->param = param;
    return status;
}

int ake_api_fail(ake_api_error *e, int status, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(e, status, AKE_API_ERR_VALIDATION, param, fmt, ap);
    va_end(ap);
    return status;
}

int ake_api_fail_empty(ake_api_error *e, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(e, 400, AKE_API_ERR_EMPTY, param, fmt, ap);
    va_end(ap);
    return 400;
}

int ake_api_parse_json(const char *body, size_t len, json_object **out, ake_api_error *e) {
    *out = NULL;
    if (len == 0) return ake_api_fail(e, 400, NULL, "the request body is empty; expected a JSON object");
    size_t off, line, col;
    const char *why;
    if (ake_json_parse(body, len, out, &off, &why)) {
        ake_json_line_col(body, off, &line, &col);
        return ake_api_fail(e, 400, NULL, "invalid JSON at byte offset %zu (line %zu, column %zu): %s", off, line,
                            col, why);
    }
    if (!*out) return ake_api_fail(e, 422, NULL, "the body must be a JSON object, not null");
    return 0;
}

const char *ake_api_type_name(const json_object *v) {
    switch (json_object_get_type(v)) {
    case json_type_null: return "null";
    case json_type_boolean: return "a boolean";
    case json_type_int: case json_type_double: return "a number";
    case json_type_string: return "a string";
    case json_type_array: return "an array";
    case json_type_object: return "an object";
    }
    return "invalid";
}

bool ake_api_field(const json_object *root, const char *key, json_object **v) {
    *v = NULL;
    return json_object_object_get_ex(root, key, v);
}

int ake_api_get_bool(const json_object *root, const char *key, bool *out, ake_api_error *e) {
    json_object *v;
    if (!ake_api_field(root, key, &v) || !v) return 0;
    if (!json_object_is_type(v, json_type_boolean))
        return ake_api_fail(e, 422, key, "`%s` must be a boolean, not %s", key, ake_api_type_name(v));
    *out = json_object_get_boolean(v);
    return 0;
}

int ake_api_get_name(const json_object *root, const char *key, const char **out, ake_api_error *e) {
    json_object *v;
    if (!ake_api_field(root, key, &v) || !v) return 0;
    if (!json_object_is_type(v, json_type_string))
        return ake_api_fail(e, 422, key, "`%s` must be a string, not %s", key, ake_api_type_name(v));
    const char *s = json_object_get_string((json_object *)v);
    if (strlen(s) != (size_t)json_object_get_string_len(v)) return ake_api_fail(e, 422, key, "`%s` contains U+0000", key);
    *out = s;
    return 0;
}

int ake_api_get_direction(const json_object *root, const char *key, ake_truncation_dir *out, ake_api_error *e) {
    json_object *v;
    if (!ake_api_field(root, key, &v) || !v) return 0;
    const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string((json_object *)v) : "";
    if (!strcasecmp(s, "right")) *out = AKE_TRUNCATE_RIGHT;
    else if (!strcasecmp(s, "left")) *out = AKE_TRUNCATE_LEFT;
    else return ake_api_fail(e, 422, key, "`%s` must be \"right\" or \"left\"", key);
    return 0;
}

int ake_api_text_input(const json_object *v, const char *field, int32_t index, ake_api_input *in, ake_api_error *e) {
    if (!json_object_is_type(v, json_type_string)) {
        if (index < 0)
            return ake_api_fail(e, 422, field, "`%s` must be a string or an array of strings, not %s", field,
                                ake_api_type_name(v));
        return ake_api_fail(e, 422, field, "`%s[%d]` must be a string, not %s", field, index, ake_api_type_name(v));
    }
    in->text = json_object_get_string((json_object *)v);
    in->len = (size_t)json_object_get_string_len(v);
    if (in->len == 0) {
        if (index < 0) return ake_api_fail_empty(e, field, "`%s` is an empty string", field);
        return ake_api_fail_empty(e, field, "`%s[%d]` is an empty string", field, index);
    }
    return 0;
}

int ake_api_token_ids(const json_object *arr, const char *field, int32_t index, ake_api_input *in, ake_api_error *e) {
    const int32_t n = (int32_t)json_object_array_length(arr);
    char where[48];
    if (index >= 0) snprintf(where, sizeof where, "%s[%d]", field, index);
    else snprintf(where, sizeof where, "%s", field);
    if (n == 0) return ake_api_fail_empty(e, field, "`%s` is an empty array of token ids", where);
    in->ids = malloc((size_t)n * sizeof *in->ids);
    if (!in->ids) return ake_api_fail(e, 500, NULL, "out of memory");
    in->n_ids = n;
    for (int32_t k = 0; k < n; k++) {
        const json_object *it = json_object_array_get_idx(arr, (size_t)k);
        double v; /* 101.0 is 101, as OpenAI's server reads it; an integer past int64 arrives as INT64_MAX */
        if (!ake_json_number(it, &v))
            return ake_api_fail(e, 422, field, "`%s[%d]` must be a token id (an integer), not %s", where, k,
                                ake_api_type_name(it));
        if (!isfinite(v) || v != floor(v) || v < 0 || v > INT32_MAX) /* the vocabulary: ake_api_bind_model */
            return ake_api_fail(e, 422, field, "`%s[%d]` = %.17g is not a token id (a non-negative integer)", where,
                                k, v);
        in->ids[k] = (int32_t)v;
    }
    return 0;
}

int ake_api_parse_inputs(const json_object *v, const char *field, bool mixed, const ake_api_limits *lim,
                         ake_api_request *r, ake_api_error *e) {
    int rc;
    if (json_object_is_type(v, json_type_string)) {
        if ((rc = ake_api_text_input(v, field, -1, &(ake_api_input){0}, e))) return rc;
        if ((rc = ake_api_alloc_inputs(r, 1, lim, field, e))) return rc;
        return ake_api_text_input(v, field, -1, &r->in[0], e);
    }
    if (!json_object_is_type(v, json_type_array))
        return ake_api_fail(e, 422, field, "`%s` must be a string, an array of strings, an array of token ids or an "
                            "array of arrays of token ids, not %s", field, ake_api_type_name(v));
    const int32_t n = (int32_t)json_object_array_length(v);
    if (n == 0) return ake_api_fail_empty(e, field, "`%s` is empty", field);
    const json_object *first = json_object_array_get_idx(v, 0);
    double first_id;
    if (ake_json_number(first, &first_id)) { /* one sequence of token ids */
        if ((rc = ake_api_alloc_inputs(r, 1, lim, field, e))) return rc;
        return ake_api_token_ids(v, field, -1, &r->in[0], e);
    }
    if ((rc = ake_api_alloc_inputs(r, n, lim, field, e))) return rc;
    for (int32_t i = 0; i < n; i++) {
        const json_object *it = json_object_array_get_idx(v, (size_t)i);
        if (json_object_is_type(it, json_type_array) &&
            (mixed || json_object_is_type(first, json_type_array))) {
            r->nested_ids = true;
            rc = ake_api_token_ids(it, field, i, &r->in[i], e);
        } else if (!mixed && json_object_is_type(first, json_type_array)) {
            rc = ake_api_fail(e, 422, field, "`%s[%d]` must be an array of token ids like `%s[0]`, not %s", field, i,
                              field, ake_api_type_name(it));
        } else if (!mixed || json_object_is_type(it, json_type_string)) {
            rc = ake_api_text_input(it, field, i, &r->in[i], e);
        } else {
            rc = ake_api_fail(e, 422, field, "`%s[%d]` must be a string or an array of token ids, not %s", field, i,
                              ake_api_type_name(it));
        }
        if (rc) return rc;
    }
    return 0;
}

int ake_api_get_dimensions(const json_object *root, ake_api_request *r, ake_api_error *e) {
    json_object *dims;
    if (!ake_api_field(root, "dimensions", &dims) || !dims) return 0;
    double v = NAN;
    ake_json_number(dims, &v);
    if (!(v >= 1 && v <= INT32_MAX && v == floor(v))) /* at most the model's: ake_api_bind_model */
        return ake_api_fail(e, 422, "dimensions", "`dimensions` must be a positive integer");
    r->dimensions = (int32_t)v;
    return 0;
}

int ake_api_alloc_inputs(ake_api_request *r, int32_t n, const ake_api_limits *lim, const char *field,
                         ake_api_error *e) {
    if (n == 0) return ake_api_fail_empty(e, field, "`%s` is empty", field);
    if (n > lim->max_client_batch_size)
        return ake_api_fail(e, 422, field, "`%s` has %d inputs; the limit is %d (--max-client-batch-size)", field, n,
                            lim->max_client_batch_size);
    r->in = calloc((size_t)n, sizeof *r->in);
    if (!r->in) return ake_api_fail(e, 500, NULL, "out of memory");
    r->n = n;
    return 0;
}

void ake_api_request_release(ake_api_request *r) {
    if (r->in)
        for (int32_t i = 0; i < r->n; i++) free(r->in[i].ids);
    free(r->in);
    json_object_put(r->json);
    memset(r, 0, sizeof *r);
}

static bool tokens_grow(ake_api_tokens *t, int64_t need) {
    if (need <= t->cap) return true;
    int64_t cap = t->cap ? t->cap : 256;
    while (cap < need) cap *= 2;
    int32_t *ids = realloc(t->ids, (size_t)cap * sizeof *ids);
    if (!ids) return false;
    t->ids = ids;
    t->cap = cap;
    return true;
}

int ake_api_bind_model(ake_api_request *r, const ake_api_model *m, ake_api_error *e) {
    r->prompt = m->default_prompt >= 0 && m->default_prompt < m->n_prompts ? m->prompt_text[m->default_prompt] : NULL;
    if (r->prompt_name) {
        r->prompt = NULL;
        for (int32_t i = 0; i < m->n_prompts && !r->prompt; i++)
            if (!strcmp(m->prompt_name[i], r->prompt_name)) r->prompt = m->prompt_text[i];
        if (!r->prompt) {
            char names[256] = "";
            for (int32_t i = 0; i < m->n_prompts; i++) {
                const size_t l = strlen(names);
                snprintf(names + l, sizeof names - l, "%s\"%s\"", i ? ", " : "", m->prompt_name[i]);
            }
            if (m->n_prompts == 0)
                return ake_api_fail(e, 422, "prompt_name", "`prompt_name` \"%.64s\": this model has no prompts "
                                    "(config_sentence_transformers.json)", r->prompt_name);
            return ake_api_fail(e, 422, "prompt_name", "`prompt_name` \"%.64s\" is not a prompt of this model; it has %s",
                                r->prompt_name, names);
        }
    }
    if (r->dimensions > m->dim)
        return ake_api_fail(e, 422, "dimensions", "`dimensions` must be an integer in 1..%d", m->dim);
    if (r->normalize_as_model) r->normalize = m->normalizes;
    for (int32_t i = 0; i < r->n; i++)
        for (int32_t k = 0; k < r->in[i].n_ids; k++)
            if (r->in[i].ids[k] >= m->vocab_size) {
                const char *field = r->ids_field ? r->ids_field : "input";
                char where[48];
                if (r->nested_ids) snprintf(where, sizeof where, "%s[%d]", field, i);
                else snprintf(where, sizeof where, "%s", field);
                return ake_api_fail(e, 422, field, "`%s[%d]` = %d is not a token id of this model (0..%d)", where,
                                    k, r->in[i].ids[k], m->vocab_size - 1);
            }
    return 0;
}

/* The text the tokenizer is given for input `in`: the prompt then the input when there is a
 * prompt (what sentence-transformers and TEI tokenize), else the input itself. *buf / *cap are
 * the caller's scratch, grown here; NULL when out of memory. */
static const char *prompted(const char *prompt, size_t plen, const ake_api_input *in, char **buf, size_t *cap) {
    if (!plen) return in->text;
    if (plen + in->len > *cap) {
        char *b = realloc(*buf, plen + in->len);
        if (!b) return NULL;
        *buf = b;
        *cap = plen + in->len;
    }
    memcpy(*buf, prompt, plen);
    memcpy(*buf + plen, in->text, in->len);
    return *buf;
}

int ake_api_encode(const ake_tokenizer *tok, const ake_api_model *m, const ake_api_request *req, bool for_embed,
                   ake_api_tokens *out, ake_api_error *e) {
    memset(out, 0, sizeof *out);
    out->n = req->n;
    out->off = malloc(((size_t)req->n + 1) * sizeof *out->off);
    if (!out->off) return ake_api_fail(e, 500, NULL, "out of memory");
    out->off[0] = 0;
    ake_tokens toks = {0};
    char err[256];
    int rc = 0;
    char *joined = NULL; /* prompt + text */
    size_t joined_cap = 0, plen = req->prompt ? strlen(req->prompt) : 0;
    for (int32_t i = 0; i < req->n && !rc; i++) {
        const ake_api_input *in = &req->in[i];
        const int32_t *ids;
        int32_t n;
        if (in->text) {
            int32_t max = for_embed ? m->max_seq_tokens : 0;
            const char *text = prompted(req->prompt, plen, in, &joined, &joined_cap);
            if (!text) {
                rc = ake_api_fail(e, 500, NULL, "out of memory");
                break;
            }
            if (ake_tokenizer_encode(tok, text, plen + in->len, max, req->dir, &toks, err, sizeof err) != AKE_OK) {
                rc = ake_api_fail(e, 422, NULL, "input %d: %s", i, err);
                e->kind = AKE_API_ERR_TOKENIZER;
                break;
            }
            if (for_embed && !req->truncate && toks.n_untruncated > m->max_seq_tokens) {
                rc = ake_api_fail(e, 422, NULL,
                                  "input %d has %d tokens; the limit is %d (send \"truncate\": true to cut it)", i,
                                  toks.n_untruncated, m->max_seq_tokens);
                break;
            }
            ids = toks.ids;
            n = toks.n;
            if (!req->add_special_tokens && !for_embed && n >= 2) { /* drop [CLS] and [SEP] */
                ids++;
                n -= 2;
            }
        } else {
            ids = in->ids;
            n = in->n_ids;
            if (for_embed && n > m->max_seq_tokens && !req->truncate) {
                rc = ake_api_fail(e, 422, NULL,
                                  "input %d has %d token ids; the limit is %d (send \"truncate\": true to cut it)", i, n,
                                  m->max_seq_tokens);
                break;
            }
        }
        if (!tokens_grow(out, out->total + n)) {
            rc = ake_api_fail(e, 500, NULL, "out of memory");
            break;
        }
        if (!in->text && for_embed && n > m->max_seq_tokens) {
            /* truncate as the tokenizer would: keep a leading [CLS] and a trailing [SEP] where the
             * list has them, and cut the ids between them in the requested direction */
            const int32_t head = tok && ids[0] == ake_tokenizer_cls_id(tok);
            const int32_t tail = tok && n > 1 && ids[n - 1] == ake_tokenizer_sep_id(tok) && head < m->max_seq_tokens;
            const int32_t keep = m->max_seq_tokens - head - tail, body = n - head - tail;
            int32_t *o = out->ids + out->total;
            if (head) *o++ = ids[0];
            memcpy(o, ids + head + (req->dir == AKE_TRUNCATE_LEFT ? body - keep : 0), (size_t)keep * sizeof *ids);
            if (tail) o[keep] = ids[n - 1];
            n = m->max_seq_tokens;
        } else {
            memcpy(out->ids + out->total, ids, (size_t)n * sizeof *ids);
        }
        out->total += n;
        out->off[i + 1] = (int32_t)out->total;
    }
    ake_tokens_release(&toks);
    free(joined);
    if (!rc && for_embed && m->max_request_tokens > 0 && out->total > m->max_request_tokens)
        rc = ake_api_fail(e, 413, NULL,
                          "the request has %lld tokens; this model takes at most %lld tokens per request "
                          "(--max-request-tokens: by default what its engines embed within --request-timeout-ms); "
                          "split it into smaller requests", (long long)out->total, (long long)m->max_request_tokens);
    if (rc) ake_api_tokens_release(out);
    return rc;
}

void ake_api_tokens_release(ake_api_tokens *t) {
    free(t->ids);
    free(t->off);
    memset(t, 0, sizeof *t);
}

void ake_l2_normalize(float *v, int32_t d) {
    /* Same loop and order as the CPU engine's pool_normalize (torch.nn.functional.normalize). */
    float ss = 0.0f;
    for (int32_t c = 0; c < d; c++) ss += v[c] * v[c];
    const float inv = 1.0f / fmaxf(sqrtf(ss), 1e-12f);
    for (int32_t c = 0; c < d; c++) v[c] *= inv;
}

int ake_api_write_tokenize(const ake_tokenizer *tok, const ake_api_request *req, ake_buf *out, ake_api_error *e) {
    ake_tokens toks = {0};
    char err[256], *joined = NULL;
    size_t joined_cap = 0;
    const size_t plen = req->prompt ? strlen(req->prompt) : 0;
    int rc = 0;
    ake_buf_put(out, "[", 1);
    for (int32_t i = 0; i < req->n && !rc; i++) {
        const ake_api_input *in = &req->in[i];
        const char *text = prompted(req->prompt, plen, in, &joined, &joined_cap); /* TEI's offsets count both */
        if (!text) {
            rc = ake_api_fail(e, 500, NULL, "out of memory");
            break;
        }
        if (ake_tokenizer_encode_spans(tok, text, plen + in->len, 0, req->dir, &toks, err, sizeof err) != AKE_OK) {
            rc = ake_api_fail(e, 422, NULL, "input %d: %s", i, err);
            e->kind = AKE_API_ERR_TOKENIZER;
            break;
        }
        ake_buf_put(out, i ? ",[" : "[", i ? 2 : 1);
        bool first = true;
        for (int32_t k = 0; k < toks.n; k++) {
            const ake_token_span *sp = &toks.spans[k];
            if (sp->special && !req->add_special_tokens) continue;
            ake_buf_puts(out, first ? "{\"id\":" : ",{\"id\":");
            first = false;
            ake_buf_int(out, toks.ids[k]);
            ake_buf_puts(out, ",\"text\":");
            if (sp->special) {
                size_t len;
                const char *piece = ake_tokenizer_id_to_token(tok, toks.ids[k], &len);
                ake_buf_json_string(out, piece ? piece : "", piece ? len : 0);
                ake_buf_puts(out, ",\"special\":true,\"start\":null,\"stop\":null}");
            } else {
                ake_buf_json_string(out, text + sp->start, sp->stop - sp->start);
                ake_buf_printf(out, ",\"special\":false,\"start\":%u,\"stop\":%u}", sp->start, sp->stop);
            }
        }
        ake_buf_put(out, "]", 1);
    }
    ake_buf_put(out, "]", 1);
    ake_tokens_release(&toks);
    free(joined);
    return rc;
}

int ake_api_write_decode(const ake_tokenizer *tok, const ake_api_request *req, ake_buf *out, ake_api_error *e) {
    char err[256];
    ake_buf_put(out, "[", 1);
    for (int32_t i = 0; i < req->n; i++) {
        char *text = NULL;
        size_t len = 0;
        if (ake_tokenizer_decode(tok, req->in[i].ids, (size_t)req->in[i].n_ids, req->skip_special_tokens, &text, &len,
                                 err, sizeof err) != AKE_OK)
            return ake_api_fail(e, 422, "ids", "sequence %d: %s", i, err);
        if (i) ake_buf_put(out, ",", 1);
        ake_buf_json_string(out, text, len);
        free(text);
    }
    ake_buf_put(out, "]", 1);
    return 0;
}

void ake_api_write_tei_embed_all(const ake_api_tokens *t, const ake_api_model *m, const float *rows, ake_buf *out) {
    const int32_t d = m->dim;
    ake_buf_reserve(out, (size_t)t->total * ((size_t)d * 13 + 3) + (size_t)t->n * 3 + 2);
    ake_buf_put(out, "[", 1);
    for (int32_t i = 0; i < t->n; i++) {
        ake_buf_put(out, i ? ",[" : "[", i ? 2 : 1);
        for (int32_t k = t->off[i]; k < t->off[i + 1]; k++) {
            if (k > t->off[i]) ake_buf_put(out, ",", 1);
            ake_buf_float_array(out, rows + (size_t)k * d, d);
        }
        ake_buf_put(out, "]", 1);
    }
    ake_buf_put(out, "]", 1);
}

static const char *tei_error_type(const ake_api_error *e) {
    switch (e->kind) {
    case AKE_API_ERR_EMPTY: return "Empty";
    case AKE_API_ERR_TOKENIZER: return "Tokenizer";
    case AKE_API_ERR_BACKEND: return "Backend";
    case AKE_API_ERR_VALIDATION: break;
    }
    switch (e->status) {
    case 401: case 403: return "Unauthorized";
    case 404: case 405: return "NotFound";
    case 429: return "Overloaded";
    case 503: return "Unhealthy";
    default: return e->status >= 500 ? "Backend" : "Validation";
    }
}

int ake_api_http_status(const ake_api_error *e, bool openai) {
    if (!openai) return e->status;
    switch (e->status) {
    case 401: case 403: case 404: case 405: case 429: case 503: return e->status;
    case 424: return 500;
    default: return e->status >= 400 && e->status < 500 ? 400 : e->status;
    }
}

static const char *openai_error_code(const ake_api_error *e, int status) {
    if (e->code) return e->code;
    switch (status) {
    case 401: return "invalid_api_key";
    case 404: return e->param && !strcmp(e->param, "model") ? "model_not_found" : NULL;
    case 429: return "rate_limit_exceeded";
    default: return NULL;
    }
}

static const char *openai_error_type(int status) {
    switch (status) {
    case 401: case 403: return "authentication_error";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

void ake_api_write_error(const ake_api_error *e, bool openai, ake_buf *out) {
    if (!openai) {
        ake_buf_puts(out, "{\"error\":");
        ake_buf_json_string(out, e->msg, strlen(e->msg));
        ake_buf_printf(out, ",\"error_type\":\"%s\"}", tei_error_type(e));
        return;
    }
    const int status = ake_api_http_status(e, true);
    const char *code = openai_error_code(e, status);
    ake_buf_puts(out, "{\"error\":{\"message\":");
    ake_buf_json_string(out, e->msg, strlen(e->msg));
    ake_buf_printf(out, ",\"type\":\"%s\",\"param\":", openai_error_type(status));
    if (e->param) ake_buf_json_string(out, e->param, strlen(e->param));
    else ake_buf_puts(out, "null");
    ake_buf_puts(out, ",\"code\":");
    if (code) ake_buf_json_string(out, code, strlen(code));
    else ake_buf_puts(out, "null");
    ake_buf_puts(out, "}}");
}
