/* Serving pieces that need no HTTP: the float writer and base64, the batch policy,
 * request parsing and tokenization, and the batcher on the real default model
 * (replicas, reassembly, equality with direct engine calls, cancelled jobs). */
#include "test_util.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "engine/engine.h"
#include "serve/api.h"
#include "serve/batcher.h"
#include "serve/jsonw.h"
#include "serve/pipeline.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void check_float(float v) {
    char got[64], want[64];
    ake_format_float(got, v);
    snprintf(want, sizeof want, "%.9g", (double)v);
    if (strcmp(got, want)) fail_msg("float %a: got '%s', printf gives '%s'", (double)v, got, want);
    if (strtof(got, NULL) != v) fail_msg("float %a: '%s' does not read back", (double)v, got);
}

static void test_float_writer_equals_printf(void **state) {
    (void)state;
    const float edge[] = {0.0f, 1.0f, -1.0f, 0.5f, 0.1f, 1e-5f, 1e-4f, 9.99999975e-5f, 123456789.0f, 999999999.0f,
                          1e9f, 1e10f, 3.40282347e38f, 1.17549435e-38f, 1.4e-45f, 1e-14f, 1e-15f, 1e30f, 1e31f,
                          0.000123456789f, 2.5f, 100.0f, 1234.5f, 65536.0f, 0.3f, 0.333333343f};
    for (size_t i = 0; i < sizeof edge / sizeof *edge; i++) {
        check_float(edge[i]);
        check_float(-edge[i]);
    }
    for (int i = 0; i < 2000000; i++) { /* random bit patterns and typical embedding values */
        uint32_t u = (uint32_t)rng();
        float f;
        memcpy(&f, &u, sizeof f);
        if (!isfinite(f)) continue;
        check_float(f);
        check_float(((int32_t)u) / 2147483648.0f * 0.25f);
    }
    char out[64];
    assert_int_equal(ake_format_float(out, NAN), 4);
    assert_string_equal(out, "null");
    check_float(-0.0f);
}

static void test_base64_and_strings(void **state) {
    (void)state;
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"}; /* RFC 4648 §10 */
    for (int i = 0; i < 7; i++) {
        ake_buf b = {0};
        ake_buf_base64(&b, in[i], strlen(in[i]));
        assert_string_equal(b.data ? b.data : "", want[i]);
        ake_buf_release(&b);
    }
    float v[2] = {1.0f, -2.0f}; /* 0x3f800000, 0xc0000000 little-endian */
    ake_buf b = {0};
    ake_buf_base64_floats(&b, v, 2);
    assert_string_equal(b.data, "AACAPwAAAMA=");
    ake_buf_release(&b);
    ake_buf_json_string(&b, "a\"b\\c\n\x01\xc3\xa9", 9);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\"");
    ake_buf_release(&b);
}

static void test_batch_policy(void **state) {
    (void)state;
    char err[256];
    ake_batch_policy p;
    assert_int_equal(ake_batch_policy_parse(AKE_DEFAULT_BATCH_POLICY, &p, err, sizeof err), AKE_OK);
    const int64_t depth[] = {0, 1, 5, 6, 20, 21, 50, 51, 100, 101, 100000};
    const int32_t want[] = {1, 1, 1, 8, 8, 16, 16, 32, 32, 64, 64};
    for (int i = 0; i < 11; i++) assert_int_equal(ake_batch_policy_target(&p, depth[i]), want[i]);
    const char *bad[] = {"", "1:1", "0:0", "0:1,0:2", "0:1,5", "0:1;5:2", "x", "0:1,5:2,3:4", "-1:1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_not_equal(ake_batch_policy_parse(bad[i], &p, err, sizeof err), AKE_OK);
}

static const ake_api_limits lim = {.max_client_batch_size = 4};
static const ake_api_model facts = {.max_seq_tokens = 16, .vocab_size = 30522, .dim = 384, .normalizes = true};

/* Parse, then check against the model as the server does once it has resolved the name. */
static int parse_bind(int (*parse)(const char *, size_t, const ake_api_limits *, ake_api_request *, ake_api_error *),
                      const char *body, ake_api_request *r, ake_api_error *e) {
    int rc = parse(body, strlen(body), &lim, r, e);
    if (!rc && (rc = ake_api_bind_model(r, &facts, e))) ake_api_request_release(r);
    return rc;
}

static int parse_tei(const char *body) {
    ake_api_request r;
    ake_api_error e = {0};
    int rc = parse_bind(ake_api_parse_tei_embed, body, &r, &e);
    if (!rc) ake_api_request_release(&r);
    else assert_true(e.msg[0] != 0);
    return rc;
}

static int parse_openai(const char *body) {
    ake_api_request r;
    ake_api_error e = {0};
    int rc = parse_bind(ake_api_parse_openai, body, &r, &e);
    if (!rc) ake_api_request_release(&r);
    else assert_true(e.msg[0] != 0);
    return rc;
}

static void test_request_parsing(void **state) {
    (void)state;
    assert_int_equal(parse_tei("{\"inputs\":\"a\"}"), 0);
    assert_int_equal(parse_tei("{\"inputs\":[\"a\",\"b\"],\"normalize\":false,\"truncate\":true}"), 0);
    assert_int_equal(parse_tei("{\"inputs\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}"), 422); /* TEI: Validation */
    assert_int_equal(parse_tei("{\"inputs\":[]}"), 400);                                 /* TEI: Empty */
    assert_int_equal(parse_tei("{\"inputs\":"), 400);
    assert_int_equal(parse_tei("{\"inputs\":\"\\u0000\"}"), 0); /* U+0000 is text (the tokenizer drops it) */
    assert_int_equal(parse_tei("{\"inputs\":\"\\\\u0000\"}"), 0); /* an escaped backslash, then "u0000" */
    assert_int_equal(parse_tei("{\"inputs\":\"a\",\"model\":\"m\\u0000x\"}"), 422); /* names are C strings */
    assert_int_equal(parse_tei("null"), 422);
    assert_int_equal(parse_tei("{\"inputs\":\"a\"} "), 0);
    assert_int_equal(parse_tei("{\"inputs\":\"a\"} x"), 400);
    assert_int_equal(parse_tei("{'inputs':'a'}"), 400);
    assert_int_equal(parse_tei("{\"inputs\":NaN}"), 400); /* json-c reads NaN even when strict: base/json.c */
    assert_int_equal(parse_openai("{\"model\":\"m\",\"input\":[101,NaN]}"), 400);
    assert_int_equal(parse_openai("{\"model\":\"m\",\"input\":[101,-Infinity]}"), 400);
    assert_int_equal(parse_tei("{\"inputs\":\"a\x01b\"}"), 400); /* raw control characters in a string */
    assert_int_equal(parse_tei("{\"inputs\":\"a\nb\"}"), 400);
    assert_int_equal(parse_tei("{\"inputs\":\n\t\"NaN \\\" Infinity\"}\r\n"), 0); /* in a string: text */
    assert_int_equal(parse_openai("{\"model\":\"m\",\"input\":[[1,2],[3]]}"), 0);
    assert_int_equal(parse_openai("{\"model\":\"org/m\",\"input\":\"x\",\"dimensions\":8}"), 0);
    assert_int_equal(parse_openai("{\"model\":\"m\",\"input\":\"x\",\"dimensions\":385}"), 422);
    assert_int_equal(parse_openai("{\"model\":\"m\",\"input\":\"x\",\"dimensions\":0}"), 422);
    assert_int_equal(parse_openai("{\"model\":\"m\",\"input\":[30522]}"), 422);
    assert_int_equal(parse_openai("{\"model\":\"m\",\"input\":[[1],[30521,30522]]}"), 422);
    assert_int_equal(parse_openai("{\"model\":\"m\",\"input\":[1e12]}"), 422);
    assert_int_equal(parse_openai("{\"model\":7,\"input\":\"x\"}"), 422);
    assert_int_equal(parse_openai("{\"input\":\"x\"}"), 0); /* no model: the default answers (TEI) */
    assert_int_equal(parse_tei("{\"inputs\":\"a\",\"model\":\"m@2\"}"), 0);
    assert_int_equal(parse_tei("{\"inputs\":\"a\",\"model\":[1]}"), 422);

    ake_api_request r;
    ake_api_error e = {0};
    /* U+1D800 and U+2D800 as escaped pairs: json-c 0.16 alone would read U+FFFD (base/json.c) */
    assert_int_equal(parse_bind(ake_api_parse_tei_embed, "{\"inputs\":\"a\\ud836\\udc00\\ud876\\udc00\\\\ud836b\"}", &r, &e), 0);
    assert_int_equal(r.in[0].len, 16);
    assert_memory_equal(r.in[0].text, "a\xf0\x9d\xa0\x80\xf0\xad\xa0\x80\\ud836b", 16);
    ake_api_request_release(&r);
    const char *body = "{\"model\":\"m\",\"input\":[101,2000,102],\"encoding_format\":\"base64\"}";
    assert_int_equal(parse_bind(ake_api_parse_openai, body, &r, &e), 0);
    assert_string_equal(r.model, "m");
    assert_int_equal(r.n, 1);
    assert_int_equal(r.in[0].n_ids, 3);
    assert_int_equal(r.in[0].ids[1], 2000);
    assert_true(r.base64 && r.normalize);
    ake_api_tokens t;
    assert_int_equal(ake_api_encode(NULL, &facts, &r, true, &t, &e), 0); /* ids need no tokenizer */
    assert_int_equal(t.total, 3);
    ake_api_tokens_release(&t);
    ake_api_request_release(&r);
}

/* ------------------------------------------------------------------ batcher */

typedef struct {
    ake_job job;
    ake_seq seqs[8];
    int32_t ids[8 * 64];
    float out[8 * 384];
    _Atomic int done_calls;
    bool client_alive;
} test_job;

static void on_done(ake_job *job) { atomic_fetch_add(&((test_job *)job->user)->done_calls, 1); }
static bool on_alive(ake_job *job) { return ((test_job *)job->user)->client_alive; }

static void wait_done(test_job *j) {
    for (int i = 0; i < 60000 && atomic_load(&j->done_calls) == 0; i++) usleep(1000);
    assert_int_equal(atomic_load(&j->done_calls), 1);
}

static void test_batcher_equals_engine(void **state) {
    (void)state;
    char err[512];
    ake_model *model;
    if (ake_model_load(test_model_dir(), &model, err, sizeof err) != AKE_OK) fail_msg("%s", err);
    ake_batcher_opts o = {.devices = "cpu,cpu", .threads = 1, .max_batch_tokens = 256, .max_batch_size = 8,
                          .max_wait_ms = 2, .request_timeout_ms = 0};
    assert_int_equal(ake_batch_policy_parse(AKE_DEFAULT_BATCH_POLICY, &o.policy, err, sizeof err), AKE_OK);
    ake_batcher *b;
    if (ake_batcher_create(model, &o, NULL, &b, err, sizeof err) != AKE_OK) fail_msg("%s", err);
    assert_int_equal(ake_batcher_replicas(b), 2);
    assert_string_equal(ake_batcher_device(b, 1), "cpu");
    ake_engine_opts eo = {.device = "cpu", .max_tokens = 64, .max_batch = 1, .threads = 1};
    ake_engine *ref;
    if (ake_engine_create(model, &eo, &ref, err, sizeof err) != AKE_OK) fail_msg("%s", err);

    enum { JOBS = 24 };
    test_job *jobs = calloc(JOBS, sizeof *jobs);
    for (int j = 0; j < JOBS; j++) {
        test_job *t = &jobs[j];
        t->client_alive = true;
        t->job = (ake_job){.n = 1 + (int32_t)(rng() % 8), .seqs = t->seqs, .out = t->out, .done = on_done,
                           .alive = on_alive, .user = t};
        for (int32_t s = 0; s < t->job.n; s++) {
            int32_t len = 2 + (int32_t)(rng() % 62);
            t->seqs[s].ids = t->ids + s * 64;
            t->seqs[s].len = len;
            for (int32_t k = 0; k < len; k++) t->ids[s * 64 + k] = 1000 + (int32_t)(rng() % 20000);
        }
    }
    jobs[5].client_alive = false;
    for (int j = 0; j < JOBS; j++) ake_batcher_submit(b, &jobs[j].job);
    for (int j = 0; j < JOBS; j++) wait_done(&jobs[j]);
    assert_int_equal(atomic_load(&jobs[5].job.result), AKE_JOB_CANCELLED);
    float want[384];
    for (int j = 0; j < JOBS; j++) {
        if (j == 5) continue;
        test_job *t = &jobs[j];
        assert_int_equal(atomic_load(&t->job.result), AKE_JOB_OK);
        for (int32_t s = 0; s < t->job.n; s++) {
            int32_t cu[2] = {0, t->seqs[s].len};
            assert_int_equal(ake_engine_embed(ref, t->seqs[s].ids, cu, 1, want, err, sizeof err), AKE_OK);
            for (int c = 0; c < 384; c++)
                if (fabsf(want[c] - t->out[s * 384 + c]) > 1e-6f)
                    fail_msg("job %d seq %d dim %d: %g vs %g", j, s, c, t->out[s * 384 + c], want[c]);
        }
    }
    ake_job empty = {.n = 0, .done = on_done, .user = &jobs[0]};
    atomic_store(&jobs[0].done_calls, 0);
    ake_batcher_submit(b, &empty); /* done at once */
    assert_int_equal(atomic_load(&jobs[0].done_calls), 1);
    ake_batcher_free(b);
    ake_engine_free(ref);
    ake_model_free(model);
    free(jobs);
}

static void test_pipeline_tokenizes(void **state) {
    (void)state;
    char err[512];
    ake_pipeline p;
    if (ake_pipeline_load(test_model_dir(), &p, err, sizeof err) != AKE_OK) fail_msg("%s", err);
    assert_int_equal(p.max_seq_tokens, 256);
    ake_api_model m = facts;
    m.max_seq_tokens = p.max_seq_tokens;
    ake_api_request r;
    ake_api_error e = {0};
    const char *body = "{\"inputs\":[\"hello world\",\"hello\"]}";
    assert_int_equal(ake_api_parse_tei_embed(body, strlen(body), &lim, &r, &e), 0);
    assert_null(r.model);
    ake_api_tokens t;
    assert_int_equal(ake_api_encode(p.tok, &m, &r, true, &t, &e), 0);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.off[1], 4); /* [CLS] hello world [SEP] */
    assert_int_equal(t.total, 7);
    assert_int_equal(t.ids[0], ake_tokenizer_cls_id(p.tok));
    ake_api_tokens_release(&t);
    ake_api_request_release(&r);

    /* truncate:true on token ids: [CLS] and [SEP] kept where the list has them, the ids between
     * cut to the limit from the requested side */
    m.max_seq_tokens = 5;
    const char *ids_body = "{\"model\":\"m\",\"input\":[[101,1,2,3,4,5,102],[1,2,3,4,5,6,7]],\"truncate\":true}";
    static const int32_t right[] = {101, 1, 2, 3, 102, 1, 2, 3, 4, 5}, left[] = {101, 3, 4, 5, 102, 3, 4, 5, 6, 7};
    for (int d = 0; d < 2; d++) {
        assert_int_equal(ake_api_parse_openai(ids_body, strlen(ids_body), &lim, &r, &e), 0);
        r.dir = d ? AKE_TRUNCATE_LEFT : AKE_TRUNCATE_RIGHT;
        assert_int_equal(ake_api_encode(p.tok, &m, &r, true, &t, &e), 0);
        assert_int_equal(t.total, 10);
        assert_memory_equal(t.ids, d ? left : right, sizeof right);
        ake_api_tokens_release(&t);
        ake_api_request_release(&r);
    }
    ake_pipeline_release(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float_writer_equals_printf), cmocka_unit_test(test_base64_and_strings),
        cmocka_unit_test(test_batch_policy),               cmocka_unit_test(test_request_parsing),
        cmocka_unit_test(test_batcher_equals_engine),      cmocka_unit_test(test_pipeline_tokenizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
