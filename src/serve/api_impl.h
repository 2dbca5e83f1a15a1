/* Helpers shared by api_common.c, api_tei.c and api_openai.c. */
#ifndef AKE_SERVE_API_IMPL_H
#define AKE_SERVE_API_IMPL_H

#include "serve/api.h"

/* UTF-8 check, NUL bytes, cJSON parse (with offset, line and column on failure),
 * trailing data and \u0000 escapes. *out owned by the caller (cJSON_Delete). */
int ake_api_parse_json(const char *body, size_t len, cJSON **out, ake_api_error *e);
/* "a string", "an array", ... for messages; "missing" for NULL. */
const char *ake_api_type_name(const cJSON *v);
/* Optional boolean field; absent or null leaves *out alone. */
int ake_api_get_bool(const cJSON *root, const char *key, bool *out, ake_api_error *e);
/* Optional "right" / "left" (any case) field. */
int ake_api_get_direction(const cJSON *root, const char *key, ake_truncation_dir *out, ake_api_error *e);
/* A non-empty string input; index < 0 for a lone string. */
int ake_api_text_input(const cJSON *v, const char *field, int32_t index, ake_api_input *in, ake_api_error *e);
/* Checks n against the limits (0 → 422, too many → 413) and allocates r->in. */
int ake_api_alloc_inputs(ake_api_request *r, int32_t n, const ake_api_limits *lim, const char *field,
                         ake_api_error *e);

#endif
