/* Text Embeddings Inference (TEI) API: POST /embed and POST /tokenize.
 *
 *   POST /embed     {"inputs": "text" | ["text", ...], "normalize": true, "truncate": false,
 *                    "truncation_direction": "right" | "left", "model": "name[@version]"}
 *                   →  [[float, ...], ...]
 * "model" is ours (TEI serves one model): absent, the server's default model answers.
 *   POST /tokenize  {"inputs": "text" | ["text", ...], "add_special_tokens": true}
 *                   →  [[id, ...], ...]   (ids only: TEI's token objects with offsets are not given)
 * Unknown fields are ignored, as TEI does. */
#include <string.h>

#include "serve/api_impl.h"

/* "inputs": a string or a non-empty array of non-empty strings. */
static int parse_inputs(const cJSON *root, const ake_api_limits *lim, ake_api_request *r, ake_api_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    if (!v) return ake_api_fail(e, 422, "inputs", "missing field `inputs`");
    if (cJSON_IsArray(v)) {
        int rc = ake_api_alloc_inputs(r, cJSON_GetArraySize(v), lim, "inputs", e);
        if (rc) return rc;
        int32_t i = 0;
        for (const cJSON *it = v->child; it; it = it->next, i++)
            if ((rc = ake_api_text_input(it, "inputs", i, &r->in[i], e))) return rc;
        return 0;
    }
    int rc = ake_api_text_input(v, "inputs", -1, &(ake_api_input){0}, e);
    if (rc) return rc;
    if ((rc = ake_api_alloc_inputs(r, 1, lim, "inputs", e))) return rc;
    return ake_api_text_input(v, "inputs", -1, &r->in[0], e);
}

static int parse_common(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *r,
                        ake_api_error *e) {
    memset(r, 0, sizeof *r);
    r->normalize = true;
    r->add_special_tokens = true;
    r->dir = AKE_TRUNCATE_RIGHT;
    int rc = ake_api_parse_json(body, len, &r->json, e);
    if (rc) return rc;
    if (!cJSON_IsObject(r->json))
        return ake_api_fail(e, 422, NULL, "the body must be a JSON object, not %s", ake_api_type_name(r->json));
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(r->json, "model");
    if (model && !cJSON_IsNull(model)) {
        if (!cJSON_IsString(model))
            return ake_api_fail(e, 422, "model", "`model` must be a string, not %s", ake_api_type_name(model));
        r->model = model->valuestring;
    }
    return parse_inputs(r->json, lim, r, e);
}

int ake_api_parse_tei_embed(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *r,
                            ake_api_error *e) {
    int rc = parse_common(body, len, lim, r, e);
    if (!rc) rc = ake_api_get_bool(r->json, "normalize", &r->normalize, e);
    if (!rc) rc = ake_api_get_bool(r->json, "truncate", &r->truncate, e);
    if (!rc) rc = ake_api_get_direction(r->json, "truncation_direction", &r->dir, e);
    if (rc) ake_api_request_release(r);
    return rc;
}

int ake_api_parse_tei_tokenize(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *r,
                               ake_api_error *e) {
    int rc = parse_common(body, len, lim, r, e);
    if (!rc) rc = ake_api_get_bool(r->json, "add_special_tokens", &r->add_special_tokens, e);
    if (rc) ake_api_request_release(r);
    return rc;
}

void ake_api_write_tei_embed(const ake_api_request *req, const ake_api_model *m, float *vecs, ake_buf *out) {
    const int32_t d = m->dim;
    ake_buf_reserve(out, (size_t)req->n * ((size_t)d * 13 + 3) + 2);
    ake_buf_put(out, "[", 1);
    for (int32_t i = 0; i < req->n; i++) {
        float *v = vecs + (size_t)i * d;
        if (req->normalize) ake_l2_normalize(v, d);
        if (i) ake_buf_put(out, ",", 1);
        ake_buf_float_array(out, v, d);
    }
    ake_buf_put(out, "]", 1);
}
