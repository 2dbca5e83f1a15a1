/* OpenAI embeddings API: POST /v1/embeddings.
 *
 *   {"model": "<id>", "input": "text" | ["text", ...] | [id, ...] | [[id, ...], ...],
 *    "encoding_format": "float" | "base64", "dimensions": N, "user": "...",
 *    "truncate": false}                        ("truncate" is ours; OpenAI fails instead)
 *   → {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [...] | "base64"}],
 *      "model": "<id>", "usage": {"prompt_tokens": T, "total_tokens": T}}
 *
 * "model" names a served model, "name" or "name@version" (serve/registry.h resolves it; an
 * unknown one is a 404 there); the response's "model" is the name as sent.
 * Token-id inputs are embedded as given: send [CLS] ... [SEP] (what /tokenize returns).
 * Vectors are L2-normalized when the model says so or when "dimensions" cuts them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/api_impl.h"

/* One token-id sequence from an array of integers. */
static int parse_ids(const cJSON *arr, int32_t index, bool nested, ake_api_input *in, ake_api_error *e) {
    int32_t n = cJSON_GetArraySize(arr);
    char where[48];
    if (nested) snprintf(where, sizeof where, "input[%d]", index);
    else snprintf(where, sizeof where, "input");
    if (n == 0) return ake_api_fail(e, 422, "input", "`%s` is an empty array of token ids", where);
    in->ids = malloc((size_t)n * sizeof *in->ids);
    if (!in->ids) return ake_api_fail(e, 500, NULL, "out of memory");
    in->n_ids = n;
    int32_t k = 0;
    for (const cJSON *it = arr->child; it; it = it->next, k++) {
        if (!cJSON_IsNumber(it))
            return ake_api_fail(e, 422, "input", "`%s[%d]` must be a token id (an integer), not %s", where, k,
                                ake_api_type_name(it));
        double v = it->valuedouble;
        if (!isfinite(v) || v != floor(v) || v < 0 || v > INT32_MAX) /* the vocabulary: ake_api_bind_model */
            return ake_api_fail(e, 422, "input", "`%s[%d]` = %.17g is not a token id (a non-negative integer)",
                                where, k, v);
        in->ids[k] = (int32_t)v;
    }
    return 0;
}

static int parse_input(const cJSON *v, const ake_api_limits *lim, ake_api_request *r, ake_api_error *e) {
    if (!v) return ake_api_fail(e, 422, "input", "missing field `input`");
    int rc;
    if (cJSON_IsString(v)) {
        if ((rc = ake_api_text_input(v, "input", -1, &(ake_api_input){0}, e))) return rc;
        if ((rc = ake_api_alloc_inputs(r, 1, lim, "input", e))) return rc;
        return ake_api_text_input(v, "input", -1, &r->in[0], e);
    }
    if (!cJSON_IsArray(v))
        return ake_api_fail(e, 422, "input",
                            "`input` must be a string, an array of strings, an array of token ids or an array of "
                            "arrays of token ids, not %s", ake_api_type_name(v));
    const cJSON *first = v->child;
    if (!first) return ake_api_fail(e, 422, "input", "`input` is empty");
    if (cJSON_IsNumber(first)) { /* one sequence of token ids */
        if ((rc = ake_api_alloc_inputs(r, 1, lim, "input", e))) return rc;
        return parse_ids(v, 0, false, &r->in[0], e);
    }
    if ((rc = ake_api_alloc_inputs(r, cJSON_GetArraySize(v), lim, "input", e))) return rc;
    int32_t i = 0;
    if (cJSON_IsArray(first)) {
        r->nested_ids = true;
        for (const cJSON *it = v->child; it; it = it->next, i++) {
            if (!cJSON_IsArray(it))
                return ake_api_fail(e, 422, "input", "`input[%d]` must be an array of token ids like `input[0]`, "
                                                     "not %s", i, ake_api_type_name(it));
            if ((rc = parse_ids(it, i, true, &r->in[i], e))) return rc;
        }
        return 0;
    }
    for (const cJSON *it = v->child; it; it = it->next, i++)
        if ((rc = ake_api_text_input(it, "input", i, &r->in[i], e))) return rc;
    return 0;
}

static int parse_body(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *r, ake_api_error *e) {
    int rc = ake_api_parse_json(body, len, &r->json, e);
    if (rc) return rc;
    const cJSON *root = r->json;
    if (!cJSON_IsObject(root))
        return ake_api_fail(e, 422, NULL, "the body must be a JSON object, not %s", ake_api_type_name(root));
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!model) return ake_api_fail(e, 422, "model", "missing field `model`");
    if (!cJSON_IsString(model))
        return ake_api_fail(e, 422, "model", "`model` must be a string, not %s", ake_api_type_name(model));
    r->model = model->valuestring;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "encoding_format");
    if (fmt && !cJSON_IsNull(fmt)) {
        if (cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "float")) r->base64 = false;
        else if (cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "base64")) r->base64 = true;
        else return ake_api_fail(e, 422, "encoding_format", "`encoding_format` must be \"float\" or \"base64\"");
    }
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(root, "dimensions");
    if (dims && !cJSON_IsNull(dims)) {
        double v = cJSON_IsNumber(dims) ? dims->valuedouble : NAN;
        if (!(v >= 1 && v <= INT32_MAX && v == floor(v))) /* at most the model's: ake_api_bind_model */
            return ake_api_fail(e, 422, "dimensions", "`dimensions` must be a positive integer");
        r->dimensions = (int32_t)v;
    }
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(root, "user");
    if (user && !cJSON_IsNull(user) && !cJSON_IsString(user))
        return ake_api_fail(e, 422, "user", "`user` must be a string, not %s", ake_api_type_name(user));
    if ((rc = ake_api_get_bool(root, "truncate", &r->truncate, e))) return rc;
    return parse_input(cJSON_GetObjectItemCaseSensitive(root, "input"), lim, r, e);
}

int ake_api_parse_openai(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *r,
                         ake_api_error *e) {
    memset(r, 0, sizeof *r);
    e->code = NULL;
    r->normalize_as_model = true;
    r->dir = AKE_TRUNCATE_RIGHT;
    int rc = parse_body(body, len, lim, r, e);
    if (rc) ake_api_request_release(r);
    return rc;
}

void ake_api_write_openai(const ake_api_request *req, const ake_api_model *m, float *vecs, int64_t prompt_tokens,
                          ake_buf *out) {
    const int32_t d = m->dim, keep = req->dimensions > 0 ? req->dimensions : d;
    ake_buf_reserve(out, (size_t)req->n * ((size_t)keep * 13 + 64) + 256);
    ake_buf_puts(out, "{\"object\":\"list\",\"data\":[");
    for (int32_t i = 0; i < req->n; i++) {
        float *v = vecs + (size_t)i * d;
        if (req->normalize || req->dimensions > 0) ake_l2_normalize(v, keep);
        ake_buf_printf(out, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":", i ? "," : "", i);
        if (req->base64) {
            ake_buf_put(out, "\"", 1);
            ake_buf_base64_floats(out, v, keep);
            ake_buf_put(out, "\"", 1);
        } else {
            ake_buf_float_array(out, v, keep);
        }
        ake_buf_put(out, "}", 1);
    }
    ake_buf_puts(out, "],\"model\":");
    ake_buf_json_string(out, req->model, strlen(req->model));
    ake_buf_printf(out, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}", (long long)prompt_tokens,
                   (long long)prompt_tokens);
}
