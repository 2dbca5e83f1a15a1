/* libFuzzer target for the HTTP request parsers: the bytes of a request body go through
 * the TEI /embed, TEI /tokenize and OpenAI /v1/embeddings parsers (json-c: UTF-8 check, JSON,
 * field types and limits), then the tokenizer of the default model, then the response
 * writers; and as an admin body, through the A/B experiment and snapshot readers
 * (serve/rollout.h) and, where both parse, the decision. Any status is fine; a crash, a leak,
 * UB, or a success with inconsistent fields is a bug. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "base/json.h"
#include "serve/api.h"
#include "serve/pipeline.h"
#include "serve/rollout.h"

static ake_pipeline pipe_;
static bool have_pipe;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char err[512];
    const char *dir = getenv("AKE_MODEL_DIR");
    have_pipe = ake_pipeline_load(dir && *dir ? dir : "models/all-MiniLM-L6-v2", &pipe_, err, sizeof err) == AKE_OK;
    if (!have_pipe) fprintf(stderr, "fuzz_serve_request: no model (%s); the tokenizer stage is skipped\n", err);
    return 0;
}

/* An experiment plan read back from what it writes is the same plan; a snapshot is decided on. */
static void fuzz_experiment(const uint8_t *data, size_t size) {
    json_object *root = NULL;
    size_t off;
    const char *why;
    if (ake_json_parse((const char *)data, size, &root, &off, &why) != 0) return;
    char err[512];
    ake_ab_plan p, q;
    const bool plan_ok = ake_ab_plan_parse(root, &p, err, sizeof err) == AKE_OK;
    if (!plan_ok && !err[0]) __builtin_trap();
    if (plan_ok) {
        ake_buf b = {0};
        ake_ab_plan_write(&p, &b);
        json_object *again = NULL;
        if (ake_json_parse(b.data, b.len, &again, &off, &why) != 0 || ake_ab_plan_parse(again, &q, err, sizeof err))
            __builtin_trap();
        json_object_put(again);
        ake_buf_release(&b);
    }
    ake_ab_snapshot s;
    if (ake_ab_snapshot_parse(root, &s, err, sizeof err) == AKE_OK && s.step < AKE_AB_MAX_STEPS) {
        ake_ab_plan dflt;
        json_object *min = json_tokener_parse("{\"name\":\"f\",\"model\":\"m\",\"arms\":[{\"version\":\"1\","
                                              "\"role\":\"control\"},{\"version\":\"2\",\"role\":\"canary\"}],"
                                              "\"rollout\":{\"steps\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}}");
        if (ake_ab_plan_parse(min, &dflt, err, sizeof err) != AKE_OK) __builtin_trap();
        json_object_put(min);
        ake_ab_decision d;
        ake_ab_decide(plan_ok && p.has_rollout && s.step < p.rollout.n_steps ? &p : &dflt, &s, &d);
        if (d.outcome < AKE_AB_WAIT || d.outcome > AKE_AB_ROLLBACK) __builtin_trap();
    }
    ake_ab_snapshot_release(&s);
    json_object_put(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_experiment(data, size);
    static const int32_t dim = 8; /* a small fake dimension keeps the writers cheap */
    const ake_api_limits lim = {.max_client_batch_size = 64};
    const ake_api_model facts = {.max_seq_tokens = 128, .vocab_size = 30522, .dim = dim, .normalizes = true};
    for (int which = 0; which < 7; which++) { /* /embed, /tokenize, /v1/embeddings, /similarity, /, /embed_all, /decode */
        ake_api_request r;
        ake_api_error e = {0};
        const char *body = (const char *)data;
        int rc = which == 0   ? ake_api_parse_tei_embed(body, size, &lim, &r, &e)
                 : which == 1 ? ake_api_parse_tei_tokenize(body, size, &lim, &r, &e)
                 : which == 2 ? ake_api_parse_openai(body, size, &lim, &r, &e)
                 : which == 3 ? ake_api_parse_tei_similarity(body, size, &lim, &r, &e)
                 : which == 4 ? ake_api_parse_tei_root(body, size, &lim, &r, &e)
                 : which == 5 ? ake_api_parse_tei_embed_all(body, size, &lim, &r, &e)
                              : ake_api_parse_tei_decode(body, size, &lim, &r, &e);
        if (!rc && (rc = ake_api_bind_model(&r, &facts, &e))) ake_api_request_release(&r);
        if (rc) {
            if (rc < 400 || rc > 599 || !e.msg[0]) __builtin_trap();
            ake_buf b = {0};
            ake_api_write_error(&e, which == 2, &b);
            ake_buf_release(&b);
            continue;
        }
        if (r.n < 1 || r.n > lim.max_client_batch_size) __builtin_trap();
        if (which == 2 && !r.model) r.model = "default-model"; /* the server names the model that answered */
        if ((which == 3 && !r.similarity) || (r.similarity && r.n < 2)) __builtin_trap();
        if ((which == 5) != r.token_states) __builtin_trap();
        if (which == 6) { /* /decode: ids only */
            for (int32_t i = 0; i < r.n; i++)
                if (r.in[i].text || r.in[i].n_ids < 1) __builtin_trap();
            if (have_pipe) {
                ake_buf b = {0};
                if (ake_api_write_decode(pipe_.tok, &r, &b, &e) != 0 && !e.msg[0]) __builtin_trap();
                ake_buf_release(&b);
            }
            ake_api_request_release(&r);
            continue;
        }
        for (int32_t i = 0; i < r.n; i++)
            if (r.in[i].text ? r.in[i].len == 0 : r.in[i].n_ids < 1) __builtin_trap();
        ake_api_tokens t;
        bool all_ids = true; /* token-id inputs need no tokenizer */
        for (int32_t i = 0; i < r.n; i++) all_ids = all_ids && !r.in[i].text;
        bool can_encode = have_pipe || all_ids;
        if (can_encode && ake_api_encode(have_pipe ? pipe_.tok : NULL, &facts, &r, which != 1, &t, &e) == 0) {
            if (t.n != r.n || t.off[t.n] != t.total) __builtin_trap();
            float *v = calloc((size_t)r.n * dim, sizeof *v);
            ake_buf b = {0};
            if (r.similarity) ake_api_write_tei_similarity(&r, &facts, v, &b);
            else if (which == 0 || which == 4) ake_api_write_tei_embed(&r, &facts, v, &b);
            else if (which == 1 && have_pipe && ake_api_write_tokenize(pipe_.tok, &r, &b, &e) != 0 && !e.msg[0])
                __builtin_trap();
            else if (which == 2) ake_api_write_openai(&r, &facts, v, t.total, &b);
            else if (which == 5) {
                float *rows = calloc((size_t)t.total * dim + 1, sizeof *rows);
                ake_api_write_tei_embed_all(&t, &facts, rows, &b);
                free(rows);
            }
            ake_buf_release(&b);
            free(v);
            ake_api_tokens_release(&t);
        }
        ake_api_request_release(&r);
    }
    return 0;
}
