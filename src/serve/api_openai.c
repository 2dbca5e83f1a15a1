/* OpenAI embeddings API: POST /v1/embeddings.
 *
 *   {"model": "<id>", "input": "text" | ["text", ...] | [id, ...] | [[id, ...], ...],
 *    "encoding_format": "float" | "base64", "dimensions": N, "user": "...",
 *    "truncate": false, "truncation_direction": "right", "prompt_name"}   (the last three are ours,
 *                                              as on the TEI routes; OpenAI fails instead of truncating)
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

static int parse_body(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *r, ake_api_error *e) {
    int rc = ake_api_parse_json(body, len, &r->json, e);
    if (rc) return rc;
    const json_object *root = r->json;
    if (!json_object_is_type(root, json_type_object))
        return ake_api_fail(e, 422, NULL, "the body must be a JSON object, not %s", ake_api_type_name(root));
    if ((rc = ake_api_get_name(root, "model", &r->model, e))) return rc; /* absent: the default model (TEI) */
    const char *fmt = NULL;
    if ((rc = ake_api_get_name(root, "encoding_format", &fmt, e))) return rc;
    if (fmt) {
        if (!strcmp(fmt, "float")) r->base64 = false;
        else if (!strcmp(fmt, "base64")) r->base64 = true;
        else return ake_api_fail(e, 422, "encoding_format", "`encoding_format` must be \"float\" or \"base64\"");
    }
    if ((rc = ake_api_get_dimensions(root, r, e))) return rc;
    json_object *user = NULL;
    if (ake_api_field(root, "user", &user) && user && !json_object_is_type(user, json_type_string))
        return ake_api_fail(e, 422, "user", "`user` must be a string, not %s", ake_api_type_name(user));
    if (user) r->user = json_object_get_string(user);
    /* ours, as on the TEI routes (OpenAI's API has none of them) */
    if ((rc = ake_api_get_bool(root, "truncate", &r->truncate, e))) return rc;
    if ((rc = ake_api_get_direction(root, "truncation_direction", &r->dir, e))) return rc;
    if ((rc = ake_api_get_name(root, "prompt_name", &r->prompt_name, e))) return rc;
    json_object *input;
    if (!ake_api_field(root, "input", &input)) return ake_api_fail(e, 422, "input", "missing field `input`");
    return ake_api_parse_inputs(input, "input", false, lim, r, e);
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
