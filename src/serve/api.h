/* Request parsing, validation and response writing of the HTTP APIs, free of any
 * HTTP library so that tests and fuzzers can drive them on plain bytes.
 *
 *   body bytes ─► ake_api_parse_*  (json-c: UTF-8, JSON; then types, limits → ake_api_request)
 *              ─► ake_api_encode   (tokenize / check token ids → packed ids per input)
 *              ─► [batcher]        (pooled vectors)
 *              ─► ake_api_write_*  (normalize / cut dimensions, JSON or base64)
 *
 * Every function returns 0 on success or the HTTP status of the failure, with the
 * message (naming the field, input index and value at fault) in an ake_api_error. The status
 * is the one TEI answers (router/src/http/server.rs, `impl From<&ErrorType> for StatusCode`);
 * the OpenAI routes answer ake_api_http_status's mapping of it:
 *   400 body not UTF-8, not JSON (with byte offset, line and column); empty inputs (TEI's Empty)
 *   404 unknown model (the registry's answer, serve/registry.h)
 *   413 a body over --max-payload-bytes
 *   422 wrong types, missing fields, token ids outside the vocabulary, more inputs than
 *       max_client_batch_size, an input over the token limit (TEI's Validation); text the
 *       tokenizer refuses (TEI's Tokenizer)
 * Texts may hold U+0000 (the "\u0000" escape): json-c keeps each string's length, and the
 * tokenizer drops U+0000 as HF `tokenizers` does, so "a\u0000b" embeds as "ab". Names
 * (model, prompt_name) may not hold it. */
#ifndef AKE_SERVE_API_H
#define AKE_SERVE_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json_types.h>

#include "serve/jsonw.h"
#include "text/tokenizer.h"

/* The failure's kind where the status alone does not say it: TEI's error_type names it. */
typedef enum {
    AKE_API_ERR_VALIDATION = 0,  /* the default: the request breaks a rule (or the status says more) */
    AKE_API_ERR_EMPTY,           /* an empty input or input list (TEI: 400 "Empty") */
    AKE_API_ERR_TOKENIZER,       /* the tokenizer refused a text (TEI: 422 "Tokenizer") */
    AKE_API_ERR_BACKEND,         /* the engine failed (TEI: 424 "Backend") */
} ake_api_err_kind;

typedef struct {
    int status;         /* HTTP status as TEI answers it */
    ake_api_err_kind kind;
    char msg[512];
    const char *param;  /* request field at fault (OpenAI's error.param), static string or NULL */
    const char *code;   /* OpenAI's error.code, static string or NULL */
} ake_api_error;

typedef struct {
    const char *text;   /* UTF-8 text, pointing into the request's JSON tree; NULL for token ids */
    size_t len;         /* bytes of text (it may hold NUL bytes) */
    int32_t *ids;       /* owned token ids (OpenAI token input), used as given: no [CLS]/[SEP] added */
    int32_t n_ids;
} ake_api_input;

typedef struct {
    int32_t n;                 /* inputs, >= 1 after a successful parse */
    ake_api_input *in;         /* owned [n] */
    bool normalize;            /* L2-normalize the pooled vector */
    bool truncate;             /* cut over-long texts instead of failing with 413 */
    ake_truncation_dir dir;
    bool base64;               /* OpenAI encoding_format=base64 */
    int32_t dimensions;        /* keep the first N values and re-normalize; 0 = all */
    bool add_special_tokens;   /* /tokenize */
    bool nested_ids;           /* the token ids came as an array of arrays (for messages) */
    const char *ids_field;     /* the field that held token ids ("input", /decode's "ids"; for messages) */
    bool similarity;           /* TEI /similarity: in[0] is the source sentence, in[1..] the sentences */
    bool token_states;         /* TEI /embed_all: every token's last hidden state, not a pooled vector */
    bool skip_special_tokens;  /* TEI /decode */
    const char *prompt_name;   /* TEI "prompt_name", NULL when absent; points into json */
    const char *prompt;        /* the prompt text put before every text input (ake_api_bind_model: the
                                  named one, else the model's default), NULL for none; the model's */
    bool normalize_as_model;   /* OpenAI: normalize when the model does (set by ake_api_bind_model) */
    const char *model;         /* the "model" field as sent ("name" or "name@version"), NULL when absent;
                                  points into json */
    const char *user;          /* OpenAI "user" (an A/B experiment's sticky key), NULL when absent; points into json */
    json_object *json;         /* owned parse tree the texts point into (json_object_put) */
} ake_api_request;

/* Server-wide limits, known before the request names its model. */
typedef struct {
    int32_t max_client_batch_size;
} ake_api_limits;

/* Facts of the model version a request is bound to, checked only once the registry has
 * resolved the request's "model" (serve/registry.h). */
typedef struct {
    int32_t max_seq_tokens;    /* longest sequence the engine is given */
    int32_t vocab_size;
    int32_t dim;
    bool normalizes;           /* the model folder lists a Normalize module */
    int64_t max_request_tokens; /* most tokens one request may hold (413 beyond); 0: no limit */
    /* sentence-transformers prompts (ake_model's, borrowed): names, texts, the default's index (none
     * when outside 0..n_prompts-1, so a zeroed struct has no prompts) */
    int32_t n_prompts;
    char *const *prompt_name;
    char *const *prompt_text;
    int32_t default_prompt;
} ake_api_model;

/* Parsing checks what needs no model: JSON, types, the input count; token ids are
 * integers in 0..INT32_MAX and `dimensions` a positive integer until ake_api_bind_model
 * checks them against the model. */
int ake_api_parse_tei_embed(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *out,
                            ake_api_error *e);
/* POST /similarity: {"inputs": {"source_sentence": "...", "sentences": ["...", ...]}, "parameters":
 * {"truncate", "truncation_direction", "prompt_name"}, "model"} → r->similarity, in[0] the source,
 * in[1..n) the sentences. */
int ake_api_parse_tei_similarity(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *out,
                                 ake_api_error *e);
/* POST / (TEI's route for every task of the Hugging Face client): `inputs` an object with
 * source_sentence and sentences → similarity, a string or an array → embeddings. */
int ake_api_parse_tei_root(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *out,
                           ake_api_error *e);
int ake_api_parse_tei_tokenize(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *out,
                               ake_api_error *e);
/* POST /embed_all: {"inputs", "truncate", "truncation_direction", "prompt_name", "model"} → r->token_states. */
int ake_api_parse_tei_embed_all(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *out,
                                ake_api_error *e);
/* POST /decode: {"ids": [id, ...] | [[id, ...], ...], "skip_special_tokens": true, "model"} → one
 * token-id input per sequence. */
int ake_api_parse_tei_decode(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *out,
                             ake_api_error *e);
int ake_api_parse_openai(const char *body, size_t len, const ake_api_limits *lim, ake_api_request *out,
                         ake_api_error *e);
void ake_api_request_release(ake_api_request *r);

/* Checks a parsed request against the model that will answer it: token ids within the
 * vocabulary (422), `dimensions` at most the model's (422), a `prompt_name` the model has (422
 * naming the prompts it has, or saying it has none: never ignored). Sets r->prompt: the named
 * prompt, else the model's default_prompt_name (as SentenceTransformer.encode applies it). An
 * OpenAI request takes the model's normalization. */
int ake_api_bind_model(ake_api_request *r, const ake_api_model *m, ake_api_error *e);

/* Token ids of every input, packed: input i is ids[off[i] .. off[i+1]). */
typedef struct {
    int32_t *ids;   /* owned */
    int32_t *off;   /* owned [n+1] */
    int32_t n;
    int64_t total;  /* off[n] */
    int64_t cap;
} ake_api_tokens;

/* Tokenizes texts, each after req->prompt when there is one (prompt + text is what is tokenized,
 * so token counts and truncation include the prompt, as in sentence-transformers and TEI; the
 * model's max_seq_tokens applies unless add_special_tokens is false for /tokenize) and checks
 * the length of token-id inputs; for embedding, a request over
 * m->max_request_tokens in all is a 413 naming both numbers. */
int ake_api_encode(const ake_tokenizer *tok, const ake_api_model *m, const ake_api_request *req, bool for_embed,
                   ake_api_tokens *out, ake_api_error *e);
void ake_api_tokens_release(ake_api_tokens *t);

/* Normalizes v in place as the engine does (same arithmetic, so results are equal). */
void ake_l2_normalize(float *v, int32_t d);

/* Response bodies. vecs [n, m->dim] are the pooled vectors, modified in place. The OpenAI
 * body's "model" is req->model: the name the client sent, or (set by the caller when the request
 * named none) the name of the model that answered; it must not be NULL. */
void ake_api_write_tei_embed(const ake_api_request *req, const ake_api_model *m, float *vecs, ake_buf *out);
void ake_api_write_openai(const ake_api_request *req, const ake_api_model *m, float *vecs, int64_t prompt_tokens,
                          ake_buf *out);
/* /tokenize's body, TEI's per-token objects: [[{"id", "text", "special", "start", "stop"}, ...], ...].
 * start and stop are byte offsets into the text as tokenized (the prompt, when one applies, then
 * the input: TEI's offsets); special tokens ([CLS], [SEP]) carry their own string as text and null
 * offsets. add_special_tokens false leaves them out. 0 or the status of a failure. */
int ake_api_write_tokenize(const ake_tokenizer *tok, const ake_api_request *req, ake_buf *out, ake_api_error *e);
/* /decode's body: one string per sequence, HF `tokenizers` decode (serve: 422 for an id outside
 * the vocabulary, which HF would drop silently). */
int ake_api_write_decode(const ake_tokenizer *tok, const ake_api_request *req, ake_buf *out, ake_api_error *e);
/* /embed_all's body: per input, its tokens' rows [[[float x dim] x tokens] x inputs]; rows
 * [t->total, m->dim] in the order of t's packed ids. */
void ake_api_write_tei_embed_all(const ake_api_tokens *t, const ake_api_model *m, const float *rows, ake_buf *out);
/* [cos(source, sentence_1), ...] from the pooled vectors of a similarity request (normalized here). */
void ake_api_write_tei_similarity(const ake_api_request *req, const ake_api_model *m, float *vecs, ake_buf *out);
/* The status a route answers with. TEI routes: e->status. OpenAI routes, as OpenAI's API does:
 * 400 for every invalid request (422, 413 and the rest of 4xx), but 401, 403, 404 (unknown model
 * or route), 405 and 429 as they are; 500 for an engine failure (TEI's 424); 503 as it is. */
int ake_api_http_status(const ake_api_error *e, bool openai);
/* {"error": msg, "error_type": ...} (TEI: Empty, Validation, Tokenizer, Backend, Overloaded,
 * Unhealthy, and ours: Unauthorized, NotFound) or {"error": {"message", "type", "param", "code"}}
 * (OpenAI: type invalid_request_error / authentication_error / rate_limit_error / server_error;
 * code model_not_found, invalid_api_key, rate_limit_exceeded or e->code). */
void ake_api_write_error(const ake_api_error *e, bool openai, ake_buf *out);

/* Fills e and returns status. */
int ake_api_fail(ake_api_error *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
