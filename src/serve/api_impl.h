/* Helpers shared by api_common.c, api_tei.c and api_openai.c. */
#ifndef AKE_SERVE_API_IMPL_H
#define AKE_SERVE_API_IMPL_H

#include <json-c/json.h>

#include "serve/api.h"

/* Parses a request body with json-c in strict mode: UTF-8, one JSON value and nothing after it
 * but white space (400 with byte offset, line and column and json-c's reason); strings may hold
 * U+0000. A body that is the JSON literal null is refused here (json-c represents null as NULL).
 * *out owned by the caller (json_object_put). */
int ake_api_parse_json(const char *body, size_t len, json_object **out, ake_api_error *e);
/* ake_api_fail for an empty input or input list: 400, TEI's "Empty". */
int ake_api_fail_empty(ake_api_error *e, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* "a string", "an array", ... for messages; NULL (json-c's null) is "null". */
const char *ake_api_type_name(const json_object *v);
/* Field `key` of object root: true with *v set (NULL for a JSON null) when present. */
bool ake_api_field(const json_object *root, const char *key, json_object **v);
/* Optional boolean field; absent or null leaves *out alone. */
int ake_api_get_bool(const json_object *root, const char *key, bool *out, ake_api_error *e);
/* Optional string field naming something (model, prompt_name): absent or null leaves *out
 * alone; a U+0000 inside is refused (422), since names are C strings from here on. */
int ake_api_get_name(const json_object *root, const char *key, const char **out, ake_api_error *e);
/* Optional "right" / "left" (any case) field. */
int ake_api_get_direction(const json_object *root, const char *key, ake_truncation_dir *out, ake_api_error *e);
/* A non-empty string input; index < 0 for a lone string. */
int ake_api_text_input(const json_object *v, const char *field, int32_t index, ake_api_input *in, ake_api_error *e);
/* One sequence of token ids from a JSON array of integers (0..INT32_MAX; the vocabulary is
 * checked by ake_api_bind_model): field names the request field, index >= 0 the sequence's
 * place in an array of them (for messages). */
int ake_api_token_ids(const json_object *arr, const char *field, int32_t index, ake_api_input *in, ake_api_error *e);
/* TEI's Input (router/src/http/types.rs `Input`): a string, an array of token ids, or an array of
 * items each a string or an array of token ids, into r->in (field names it in messages). mixed:
 * strings and token-id arrays may share one array (TEI); OpenAI's `input` keeps to one kind. */
int ake_api_parse_inputs(const json_object *v, const char *field, bool mixed, const ake_api_limits *lim,
                         ake_api_request *r, ake_api_error *e);
/* Optional `dimensions`: a positive integer (at most the model's: ake_api_bind_model). */
int ake_api_get_dimensions(const json_object *root, ake_api_request *r, ake_api_error *e);
/* Checks n against the limits (0 → 422, too many → 413) and allocates r->in. */
int ake_api_alloc_inputs(ake_api_request *r, int32_t n, const ake_api_limits *lim, const char *field,
                         ake_api_error *e);

#endif
