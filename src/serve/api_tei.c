/* Text Embeddings Inference (TEI) API: POST /embed, /embed_all, /similarity, /, /tokenize, /decode.
 *
 *   POST /embed     {"inputs": "text" | [id, ...] | ["text" | [id, ...], ...], "normalize": true,
 *                    "dimensions": N, "truncate": false, "truncation_direction": "right" | "left",
 *                    "prompt_name", "model": "name[@version]"}
 *                   →  [[float, ...], ...]   (token ids are embedded as given, like OpenAI's)
 * "model" is ours (TEI serves one model): absent, the server's default model answers.
 *   POST /similarity {"inputs": {"source_sentence": "text", "sentences": ["text", ...]},
 *                    "parameters": {"truncate", "truncation_direction", "prompt_name"}, "model"}
 *                    →  [cosine, ...]   one per sentence
 *   POST /          what the Hugging Face client (huggingface_hub.InferenceClient) posts for every
 *                   task: an object `inputs` is a similarity request, anything else an embedding one
 *   POST /embed_all {"inputs", "truncate", "truncation_direction", "prompt_name", "model"}
 *                   →  [[[float, ...] per token] per input]   the last hidden state, no pooling
 *   POST /tokenize  {"inputs": "text" | ["text", ...], "add_special_tokens": true, "prompt_name"}
 *                   →  [[{"id", "text", "special", "start", "stop"}, ...], ...]   byte offsets
 *   POST /decode    {"ids": [id, ...] | [[id, ...], ...], "skip_special_tokens": true}  →  ["text", ...]
 * Unknown fields are ignored, as TEI does. */
#include <string.h>

#include "serve/api_impl.h"

/* "inputs": TEI's Input (texts and token-id sequences). */
static int parse_inputs(const json_object *root, const ake_api_limits *lim, ake_api_request *r, ake_api_error *e) {
    json_object *v;
    if (!ake_api_field(root, "inputs", &v)) return ake_api_fail(e, 422, "inputs", "missing field `inputs`");
    return ake_api_parse_inputs(v, "inputs", true, lim, r, e);
}

/* The JSON object and the fields every TEI request may carry: model, prompt_name. */
static int parse_object(const char *body, size_t len, ake_api_request *r, ake_api_error *e) {
    memset(r, 0, sizeof *r);
    r->normalize = true;
    r->add_special_tokens = true;
    r->dir = AKE_TRUNCATE_RIGHT;
    int rc = ake_api_parse_json(body, len, &r->json, e);
    if (rc) return rc;
    if (!json_object_is_type(r->json, json_type_object))
        return ake_api_fail(e, 422, NULL, "the body must be a JSON object, not %s", ake_api_type_name(r->json));
    rc = ake_api_get_name(r->json, "model", &r->model, e);
    return rc ? rc : ake_api_get_name(r->json, "prompt_name", &r->prompt_name, e);
}

static int parse_common(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *r,
                        ake_api_error *e) {
    int rc = parse_object(body, len, r, e);
    return rc ? rc : parse_inputs(r->json, lim, r, e);
}

/* The embedding fields of /embed (and of / without an object `inputs`). */
static int embed_fields(ake_api_request *r, ake_api_error *e) {
    r->ids_field = "inputs";
    int rc = ake_api_get_bool(r->json, "normalize", &r->normalize, e);
    if (!rc) rc = ake_api_get_dimensions(r->json, r, e);
    if (!rc) rc = ake_api_get_bool(r->json, "truncate", &r->truncate, e);
    if (!rc) rc = ake_api_get_direction(r->json, "truncation_direction", &r->dir, e);
    return rc;
}

/* inputs = {"source_sentence": "...", "sentences": [...]} into in[0] and in[1..]. */
static int similarity_fields(const ake_api_limits *lim, ake_api_request *r, ake_api_error *e) {
    json_object *in = NULL, *src = NULL, *sents = NULL;
    ake_api_field(r->json, "inputs", &in);
    if (!json_object_is_type(in, json_type_object))
        return ake_api_fail(e, 422, "inputs", "`inputs` must be an object with `source_sentence` and `sentences`, not %s",
                            ake_api_type_name(in));
    if (!ake_api_field(in, "source_sentence", &src))
        return ake_api_fail(e, 422, "inputs", "missing field `inputs.source_sentence`");
    ake_api_field(in, "sentences", &sents);
    if (!json_object_is_type(sents, json_type_array))
        return ake_api_fail(e, 422, "inputs", "`inputs.sentences` must be an array of strings, not %s",
                            ake_api_type_name(sents));
    const int32_t k = (int32_t)json_object_array_length(sents);
    if (k == 0) return ake_api_fail_empty(e, "inputs", "`inputs.sentences` is empty");
    int rc = ake_api_text_input(src, "inputs.source_sentence", -1, &(ake_api_input){0}, e);
    if (rc) return rc;
    /* the source and every sentence are embedded: together within the input limit */
    if ((rc = ake_api_alloc_inputs(r, k + 1, lim, "inputs.sentences", e))) return rc;
    r->similarity = true;
    if ((rc = ake_api_text_input(src, "inputs.source_sentence", -1, &r->in[0], e))) return rc;
    for (int32_t i = 0; i < k; i++)
        if ((rc = ake_api_text_input(json_object_array_get_idx(sents, (size_t)i), "inputs.sentences", i, &r->in[i + 1], e)))
            return rc;
    /* TEI's SimilarityParameters: {"parameters": {"truncate", "truncation_direction", "prompt_name"}} */
    json_object *p = NULL;
    if (!ake_api_field(r->json, "parameters", &p) || !p) return 0;
    if (!json_object_is_type(p, json_type_object))
        return ake_api_fail(e, 422, "parameters", "`parameters` must be an object, not %s", ake_api_type_name(p));
    rc = ake_api_get_bool(p, "truncate", &r->truncate, e);
    if (!rc) rc = ake_api_get_direction(p, "truncation_direction", &r->dir, e);
    if (!rc && !r->prompt_name) rc = ake_api_get_name(p, "prompt_name", &r->prompt_name, e);
    return rc;
}

int ake_api_parse_tei_similarity(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *r,
                                 ake_api_error *e) {
    int rc = parse_object(body, len, r, e);
    if (!rc) rc = similarity_fields(lim, r, e);
    if (rc) ake_api_request_release(r);
    return rc;
}

int ake_api_parse_tei_root(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *r,
                           ake_api_error *e) {
    int rc = parse_object(body, len, r, e);
    if (!rc) {
        json_object *in = NULL;
        ake_api_field(r->json, "inputs", &in);
        if (json_object_is_type(in, json_type_object)) rc = similarity_fields(lim, r, e);
        else if (!(rc = parse_inputs(r->json, lim, r, e))) rc = embed_fields(r, e);
    }
    if (rc) ake_api_request_release(r);
    return rc;
}

int ake_api_parse_tei_embed(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *r,
                            ake_api_error *e) {
    int rc = parse_common(body, len, lim, r, e);
    if (!rc) rc = embed_fields(r, e);
    if (rc) ake_api_request_release(r);
    return rc;
}

int ake_api_parse_tei_embed_all(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *r,
                                ake_api_error *e) {
    int rc = parse_common(body, len, lim, r, e);
    r->token_states = true;
    r->ids_field = "inputs";
    if (!rc) rc = ake_api_get_bool(r->json, "truncate", &r->truncate, e);
    if (!rc) rc = ake_api_get_direction(r->json, "truncation_direction", &r->dir, e);
    if (rc) ake_api_request_release(r);
    return rc;
}

int ake_api_parse_tei_decode(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *r,
                             ake_api_error *e) {
    int rc = parse_object(body, len, r, e);
    r->skip_special_tokens = true;
    r->ids_field = "ids";
    json_object *ids = NULL;
    if (!rc && !ake_api_field(r->json, "ids", &ids)) rc = ake_api_fail(e, 422, "ids", "missing field `ids`");
    if (!rc && !json_object_is_type(ids, json_type_array))
        rc = ake_api_fail(e, 422, "ids", "`ids` must be an array of token ids or an array of such arrays, not %s",
                          ake_api_type_name(ids));
    if (!rc) {
        const json_object *first = json_object_array_get_idx(ids, 0);
        if (json_object_is_type(first, json_type_array)) { /* a batch of sequences */
            rc = ake_api_alloc_inputs(r, (int32_t)json_object_array_length(ids), lim, "ids", e);
            for (int32_t i = 0; !rc && i < r->n; i++) {
                const json_object *it = json_object_array_get_idx(ids, (size_t)i);
                if (!json_object_is_type(it, json_type_array))
                    rc = ake_api_fail(e, 422, "ids", "`ids[%d]` must be an array of token ids like `ids[0]`, not %s",
                                      i, ake_api_type_name(it));
                else rc = ake_api_token_ids(it, "ids", i, &r->in[i], e);
            }
            r->nested_ids = true;
        } else if (!(rc = ake_api_alloc_inputs(r, 1, lim, "ids", e))) {
            rc = ake_api_token_ids(ids, "ids", -1, &r->in[0], e);
        }
    }
    if (!rc) rc = ake_api_get_bool(r->json, "skip_special_tokens", &r->skip_special_tokens, e);
    if (rc) ake_api_request_release(r);
    return rc;
}

int ake_api_parse_tei_tokenize(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *r,
                               ake_api_error *e) {
    int rc = parse_common(body, len, lim, r, e);
    for (int32_t i = 0; !rc && i < r->n; i++) /* TEI's TokenizeInput: texts only */
        if (!r->in[i].text)
            rc = ake_api_fail(e, 422, "inputs", "`inputs` of /tokenize must be a string or an array of strings");
    if (!rc) rc = ake_api_get_bool(r->json, "add_special_tokens", &r->add_special_tokens, e);
    if (rc) ake_api_request_release(r);
    return rc;
}

void ake_api_write_tei_embed(const ake_api_request *req, const ake_api_model *m, float *vecs, ake_buf *out) {
    const int32_t d = m->dim, keep = req->dimensions > 0 ? req->dimensions : d; /* TEI: cut, then normalize */
    ake_buf_reserve(out, (size_t)req->n * ((size_t)keep * 13 + 3) + 2);
    ake_buf_put(out, "[", 1);
    for (int32_t i = 0; i < req->n; i++) {
        float *v = vecs + (size_t)i * d;
        if (req->normalize) ake_l2_normalize(v, keep);
        if (i) ake_buf_put(out, ",", 1);
        ake_buf_float_array(out, v, keep);
    }
    ake_buf_put(out, "]", 1);
}

void ake_api_write_tei_similarity(const ake_api_request *req, const ake_api_model *m, float *vecs, ake_buf *out) {
    const int32_t d = m->dim;
    for (int32_t i = 0; i < req->n; i++) ake_l2_normalize(vecs + (size_t)i * d, d);
    ake_buf_put(out, "[", 1);
    for (int32_t i = 1; i < req->n; i++) {
        double dot = 0.0;
        for (int32_t c = 0; c < d; c++) dot += (double)vecs[c] * vecs[(size_t)i * d + c];
        if (i > 1) ake_buf_put(out, ",", 1);
        ake_buf_float(out, (float)dot);
    }
    ake_buf_put(out, "]", 1);
}
