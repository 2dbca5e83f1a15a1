/* CPU engine on the real default model: batch invariance, order independence and
 * the checks at the door (bad ids, lengths, limits), for the pooled vectors
 * (ake_engine_embed) and the per-token hidden states (ake_engine_embed_tokens), which
 * pool back to the vectors and agree with HF transformers' last_hidden_state
 * (tests/golden/hidden_all-MiniLM-L6-v2.bin, made by tests/golden/make_hidden_golden.sh).
 * Golden agreement of the vectors with sentence-transformers lives in
 * tests/py/test_embedding_golden.py. */
#include "test_util.h"

#include <math.h>

#include "engine/engine.h"
#include "model/model.h"

typedef struct {
    ake_model *model;
    ake_engine *engine;
    int32_t d;
} fixture;

static int setup(void **state) {
    static fixture f;
    char err[512];
    if (ake_model_load(test_model_dir(), &f.model, err, sizeof err) != AKE_OK) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    ake_engine_opts eo = {.device = "cpu", .max_tokens = 2048, .max_batch = 16, .threads = 2};
    if (ake_engine_create(f.model, &eo, &f.engine, err, sizeof err) != AKE_OK) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    f.d = ake_engine_dim(f.engine);
    *state = &f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    ake_engine_free(f->engine);
    ake_model_free(f->model);
    return 0;
}

/* Deterministic pseudo-random sequence of `len` ids: [CLS]=101 ... [SEP]=102 around ids in [1000, 30000). */
static void make_seq(int32_t *ids, int32_t len, uint32_t seed) {
    for (int32_t i = 0; i < len; i++) {
        seed = seed * 1664525u + 1013904223u;
        ids[i] = 1000 + (int32_t)(seed >> 8) % 29000;
    }
    ids[0] = 101;
    if (len > 1) ids[len - 1] = 102;
}

static float max_abs_diff(const float *a, const float *b, int32_t n) {
    float m = 0.0f;
    for (int32_t i = 0; i < n; i++) m = fmaxf(m, fabsf(a[i] - b[i]));
    return m;
}

/* Each sequence embedded alone equals the same sequence inside a mixed batch. */
static void test_batch_invariance(void **state) {
    fixture *f = *state;
    enum { N = 9 };
    const int32_t lens[N] = {1, 2, 7, 31, 64, 129, 3, 200, 12};
    int32_t ids[2048], cu[N + 1] = {0};
    for (int i = 0; i < N; i++) {
        make_seq(ids + cu[i], lens[i], 77u + (uint32_t)i);
        cu[i + 1] = cu[i] + lens[i];
    }
    float *batch = malloc(sizeof(float) * N * f->d), *alone = malloc(sizeof(float) * f->d);
    char err[256];
    assert_int_equal(ake_engine_embed(f->engine, ids, cu, N, batch, err, sizeof err), AKE_OK);
    for (int i = 0; i < N; i++) {
        int32_t cu1[2] = {0, lens[i]};
        assert_int_equal(ake_engine_embed(f->engine, ids + cu[i], cu1, 1, alone, err, sizeof err), AKE_OK);
        float diff = max_abs_diff(alone, batch + (size_t)i * f->d, f->d);
        if (diff > 1e-6f) fail_msg("sequence %d (len %d): batch vs alone max |diff| %g > 1e-6", i, lens[i], diff);
        float norm = 0.0f;
        for (int32_t c = 0; c < f->d; c++) norm += alone[c] * alone[c];
        assert_true(fabsf(norm - 1.0f) < 1e-5f); /* the model normalizes */
    }
    free(batch);
    free(alone);
}

static void test_rejects_bad_batches(void **state) {
    fixture *f = *state;
    int32_t ids[600];
    float out[16 * 384];
    char err[256];
    make_seq(ids, 600, 5);
    int32_t cu_empty_seq[3] = {0, 4, 4};
    assert_int_equal(ake_engine_embed(f->engine, ids, cu_empty_seq, 2, out, err, sizeof err), AKE_EINVAL);
    assert_non_null(strstr(err, "sequence 1"));
    int32_t cu_too_long[2] = {0, 513};
    assert_int_equal(ake_engine_embed(f->engine, ids, cu_too_long, 1, out, err, sizeof err), AKE_EINVAL);
    assert_non_null(strstr(err, "513"));
    int32_t cu_many[18] = {0};
    for (int i = 1; i < 18; i++) cu_many[i] = i;
    assert_int_equal(ake_engine_embed(f->engine, ids, cu_many, 17, out, err, sizeof err), AKE_EINVAL);
    ids[3] = 30522;
    int32_t cu_ok[2] = {0, 8};
    assert_int_equal(ake_engine_embed(f->engine, ids, cu_ok, 1, out, err, sizeof err), AKE_EINVAL);
    assert_non_null(strstr(err, "30522"));
    ids[3] = -1;
    assert_int_equal(ake_engine_embed(f->engine, ids, cu_ok, 1, out, err, sizeof err), AKE_EINVAL);
    int32_t cu_bad0[2] = {1, 8};
    assert_int_equal(ake_engine_embed(f->engine, ids, cu_bad0, 1, out, err, sizeof err), AKE_EINVAL);
    int32_t cu_zero[1] = {0};
    assert_int_equal(ake_engine_embed(f->engine, ids, cu_zero, 0, out, err, sizeof err), AKE_OK);
}

/* Hidden-state tolerances (max |diff| per element; the rows hold values up to ~6), with what
 * was measured on an AVX2 EPYC:
 *   POOL_TOL: the rows pooled here vs ake_engine_embed, which pools the same fp32 rows (its sums
 *     run in another order than this test's doubles): 1.8e-7 fp32, int8 alike;
 *   TOKENS_INVARIANCE_TOL: a sequence alone vs inside a batch; oneDNN blocks its GEMMs by the
 *     batch's row count, which changes summation order: 2.6e-6;
 *   GOLDEN_TOL: against HF transformers on torch (fp32, CPU), the bound of the embedding golden
 *     test (tests/py/test_embedding_golden.py, ABS_MAX): 2.3e-6. */
#define POOL_TOL 1e-5f
#define TOKENS_INVARIANCE_TOL 1e-5f
#define GOLDEN_TOL 1e-4f

/* A batch of N sequences of mixed lengths (1 .. 200 tokens) in ids [2048], cu [N + 1]. */
enum { MIXED_N = 9 };
static void mixed_batch(int32_t *ids, int32_t *cu) {
    const int32_t lens[MIXED_N] = {1, 2, 7, 31, 64, 129, 3, 200, 12};
    cu[0] = 0;
    for (int i = 0; i < MIXED_N; i++) {
        make_seq(ids + cu[i], lens[i], 177u + (uint32_t)i);
        cu[i + 1] = cu[i] + lens[i];
    }
}

/* 0xFF bytes: a NaN in every float, so that a row the engine did not write fails the checks. */
static void poison(float *v, size_t n) { memset(v, 0xFF, n * sizeof *v); }

/* The model's pooling of rows [L, d] (mean, [CLS] row or max), L2-normalized when the model
 * normalizes, into v [d]: what ake_engine_embed promises to return from the same rows. */
static void pool_rows(const ake_model_config *cfg, const float *rows, int32_t L, int32_t d, float *v) {
    for (int32_t c = 0; c < d; c++) {
        double acc = cfg->pooling == AKE_POOL_MAX ? -INFINITY : 0.0;
        const int32_t used = cfg->pooling == AKE_POOL_CLS ? 1 : L;
        for (int32_t t = 0; t < used; t++) {
            const double x = rows[(size_t)t * d + c];
            acc = cfg->pooling == AKE_POOL_MAX ? fmax(acc, x) : acc + x;
        }
        v[c] = (float)(cfg->pooling == AKE_POOL_MEAN ? acc / L : acc);
    }
    if (!cfg->normalize) return;
    double ss = 0.0;
    for (int32_t c = 0; c < d; c++) ss += (double)v[c] * v[c];
    const double inv = 1.0 / fmax(sqrt(ss), 1e-12);
    for (int32_t c = 0; c < d; c++) v[c] = (float)(v[c] * inv);
}

/* The rows of a batch, pooled as the model says, give ake_engine_embed's vectors: on the fp32
 * engine and on the int8 one (both pool the rows they hand out). Rows past T keep their poison:
 * the engine writes T rows only. */
static void test_tokens_pool_to_embed(void **state) {
    fixture *f = *state;
    int32_t ids[2048], cu[MIXED_N + 1];
    mixed_batch(ids, cu);
    const int32_t T = cu[MIXED_N], d = f->d;
    float *rows = malloc(sizeof(float) * (T + 1) * d), *vecs = malloc(sizeof(float) * MIXED_N * d);
    float *pooled = malloc(sizeof(float) * d);
    char err[256];
    ake_engine *int8 = NULL;
    ake_engine_opts eo = {.device = "cpu", .max_tokens = 2048, .max_batch = 16, .threads = 2,
                          .precision = AKE_PREC_INT8};
    assert_int_equal(ake_engine_create(f->model, &eo, &int8, err, sizeof err), AKE_OK);
    ake_engine *engines[2] = {f->engine, int8};
    for (int k = 0; k < 2; k++) {
        ake_engine *e = engines[k];
        const char *pn = ake_precision_name(ake_engine_precision(e));
        poison(rows, (size_t)(T + 1) * d);
        assert_int_equal(ake_engine_embed_tokens(e, ids, cu, MIXED_N, rows, err, sizeof err), AKE_OK);
        for (int32_t c = 0; c < d; c++) assert_true(isnan(rows[(size_t)T * d + c]));
        assert_int_equal(ake_engine_embed(e, ids, cu, MIXED_N, vecs, err, sizeof err), AKE_OK);
        for (int i = 0; i < MIXED_N; i++) {
            const int32_t L = cu[i + 1] - cu[i];
            pool_rows(&f->model->cfg, rows + (size_t)cu[i] * d, L, d, pooled);
            const float diff = max_abs_diff(pooled, vecs + (size_t)i * d, d);
            if (!(diff <= POOL_TOL))
                fail_msg("%s, sequence %d (%d tokens): pooled hidden rows vs ake_engine_embed max |diff| %g > %g",
                         pn, i, L, diff, POOL_TOL);
        }
    }
    ake_engine_free(int8);
    free(rows);
    free(vecs);
    free(pooled);
}

/* Each sequence's rows alone equal its rows inside a mixed batch. */
static void test_tokens_batch_invariance(void **state) {
    fixture *f = *state;
    int32_t ids[2048], cu[MIXED_N + 1];
    mixed_batch(ids, cu);
    const int32_t T = cu[MIXED_N], d = f->d;
    float *batch = malloc(sizeof(float) * T * d), *alone = malloc(sizeof(float) * 200 * d);
    char err[256];
    poison(batch, (size_t)T * d);
    assert_int_equal(ake_engine_embed_tokens(f->engine, ids, cu, MIXED_N, batch, err, sizeof err), AKE_OK);
    for (int i = 0; i < MIXED_N; i++) {
        const int32_t L = cu[i + 1] - cu[i], cu1[2] = {0, L};
        poison(alone, (size_t)L * d);
        assert_int_equal(ake_engine_embed_tokens(f->engine, ids + cu[i], cu1, 1, alone, err, sizeof err), AKE_OK);
        const float diff = max_abs_diff(alone, batch + (size_t)cu[i] * d, L * d);
        if (!(diff <= TOKENS_INVARIANCE_TOL))
            fail_msg("sequence %d (%d tokens): hidden rows alone vs in the batch max |diff| %g > %g", i, L, diff,
                     TOKENS_INVARIANCE_TOL);
    }
    free(batch);
    free(alone);
}

/* ake_engine_embed_tokens refuses what ake_engine_embed refuses, and calls in flight. */
static void test_tokens_rejects_bad_batches(void **state) {
    fixture *f = *state;
    int32_t ids[2600];
    float *out = malloc(sizeof(float) * 2600 * f->d);
    char err[256];
    make_seq(ids, 2600, 5);
    int32_t cu_empty_seq[3] = {0, 4, 4};
    assert_int_equal(ake_engine_embed_tokens(f->engine, ids, cu_empty_seq, 2, out, err, sizeof err), AKE_EINVAL);
    assert_non_null(strstr(err, "sequence 1"));
    int32_t cu_too_long[2] = {0, 513};
    assert_int_equal(ake_engine_embed_tokens(f->engine, ids, cu_too_long, 1, out, err, sizeof err), AKE_EINVAL);
    assert_non_null(strstr(err, "513"));
    int32_t cu_many[18] = {0};
    for (int i = 1; i < 18; i++) cu_many[i] = i;
    assert_int_equal(ake_engine_embed_tokens(f->engine, ids, cu_many, 17, out, err, sizeof err), AKE_EINVAL);
    assert_int_equal(ake_engine_embed_tokens(f->engine, ids, cu_many, -1, out, err, sizeof err), AKE_EINVAL);
    int32_t cu_over_tokens[6] = {0, 500, 1000, 1500, 2000, 2500}; /* max_tokens is 2048 */
    assert_int_equal(ake_engine_embed_tokens(f->engine, ids, cu_over_tokens, 5, out, err, sizeof err), AKE_EINVAL);
    assert_non_null(strstr(err, "2048"));
    int32_t cu_ok[2] = {0, 8};
    ids[3] = 30522;
    assert_int_equal(ake_engine_embed_tokens(f->engine, ids, cu_ok, 1, out, err, sizeof err), AKE_EINVAL);
    assert_non_null(strstr(err, "30522"));
    ids[3] = -1;
    assert_int_equal(ake_engine_embed_tokens(f->engine, ids, cu_ok, 1, out, err, sizeof err), AKE_EINVAL);
    ids[3] = 2000;
    int32_t cu_bad0[2] = {1, 8};
    assert_int_equal(ake_engine_embed_tokens(f->engine, ids, cu_bad0, 1, out, err, sizeof err), AKE_EINVAL);
    /* n = 0: nothing to do, nothing written */
    int32_t cu_zero[1] = {0};
    poison(out, (size_t)f->d);
    assert_int_equal(ake_engine_embed_tokens(f->engine, ids, cu_zero, 0, out, err, sizeof err), AKE_OK);
    assert_true(isnan(out[0]));
    /* a submitted call not yet waited for owns the engine's buffers */
    assert_int_equal(ake_engine_submit(f->engine, ids, cu_ok, 1, out, err, sizeof err), AKE_OK);
    assert_int_equal(ake_engine_embed_tokens(f->engine, ids, cu_ok, 1, out + f->d, err, sizeof err), AKE_EINVAL);
    assert_non_null(strstr(err, "not waited for"));
    assert_int_equal(ake_engine_wait(f->engine, err, sizeof err), AKE_OK);
    assert_int_equal(ake_engine_embed_tokens(f->engine, ids, cu_ok, 1, out, err, sizeof err), AKE_OK);
    free(out);
}

/* Little-endian reads from the golden file, bounds-checked against its length. */
static int32_t golden_i32(const char *buf, size_t len, size_t *off) {
    if (*off + 4 > len) fail_msg("golden hidden states: file ends at byte %zu inside its header or ids", len);
    const unsigned char *p = (const unsigned char *)buf + *off;
    *off += 4;
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

/* The rows of the golden texts, all in one batch, against HF transformers' last_hidden_state
 * (tests/golden/make_hidden_golden.py documents the file, and the file is checked as it says). */
static void test_tokens_golden(void **state) {
    fixture *f = *state;
    const char *path = "tests/golden/hidden_all-MiniLM-L6-v2.bin";
    size_t len = 0, off = 4;
    char *buf = test_read_file(path, &len);
    if (!buf) fail_msg("cannot read %s (run the tests from the repository root)", path);
    if (len < 4 || memcmp(buf, "AKEH", 4) != 0) fail_msg("%s: not a hidden-state golden file (magic)", path);
    const int32_t version = golden_i32(buf, len, &off), n = golden_i32(buf, len, &off);
    const int32_t T = golden_i32(buf, len, &off), d = golden_i32(buf, len, &off);
    assert_int_equal(version, 1);
    assert_int_equal(d, f->d);
    assert_true(n >= 1 && n <= 16 && T >= n && T <= 2048);
    int32_t cu[17], *ids = malloc(sizeof(int32_t) * T);
    for (int32_t i = 0; i <= n; i++) cu[i] = golden_i32(buf, len, &off);
    for (int32_t t = 0; t < T; t++) ids[t] = golden_i32(buf, len, &off);
    assert_int_equal(cu[n], T);
    assert_int_equal(len, off + (size_t)T * d * sizeof(float));
    float *ref = malloc(sizeof(float) * T * d), *got = malloc(sizeof(float) * T * d);
    memcpy(ref, buf + off, sizeof(float) * T * d); /* little-endian floats, as this machine's */
    char err[256];
    poison(got, (size_t)T * d);
    assert_int_equal(ake_engine_embed_tokens(f->engine, ids, cu, n, got, err, sizeof err), AKE_OK);
    for (int32_t i = 0; i < n; i++) {
        for (int32_t t = cu[i]; t < cu[i + 1]; t++) {
            const float diff = max_abs_diff(got + (size_t)t * d, ref + (size_t)t * d, d);
            if (!(diff <= GOLDEN_TOL))
                fail_msg("golden text %d, token %d (id %d): max |diff| %g > %g against transformers", i, t - cu[i],
                         ids[t], diff, GOLDEN_TOL);
        }
    }
    free(buf);
    free(ids);
    free(ref);
    free(got);
}

/* A row with an infinity is an error naming the token, not an answer: the last LayerNorm's
 * gain swapped for 3e38 (the engine reads weights through the model) overflows every row. */
static void test_tokens_nonfinite_is_an_error(void **state) {
    fixture *f = *state;
    ake_layer_weights *last = &f->model->layer[f->model->cfg.layers - 1];
    const ake_tensor *kept = last->ln2_g;
    ake_tensor huge = *kept;
    float *g = malloc(sizeof(float) * f->d);
    for (int32_t c = 0; c < f->d; c++) g[c] = 3e38f;
    huge.dtype = AKE_DT_F32;
    huge.data = g;
    huge.nbytes = sizeof(float) * f->d;
    last->ln2_g = &huge;
    ake_engine *e = NULL;
    char err[256];
    ake_engine_opts eo = {.device = "cpu", .max_tokens = 64, .max_batch = 4, .threads = 2};
    const ake_status created = ake_engine_create(f->model, &eo, &e, err, sizeof err);
    last->ln2_g = kept;
    assert_int_equal(created, AKE_OK);
    int32_t ids[16], cu[3] = {0, 5, 12};
    make_seq(ids, 5, 1);
    make_seq(ids + 5, 7, 2);
    float *out = malloc(sizeof(float) * 12 * f->d);
    assert_int_equal(ake_engine_embed_tokens(e, ids, cu, 2, out, err, sizeof err), AKE_EFORMAT);
    assert_non_null(strstr(err, "non-finite"));
    assert_non_null(strstr(err, "token 0 of sequence 0"));
    assert_int_equal(ake_engine_embed(e, ids, cu, 2, out, err, sizeof err), AKE_EFORMAT);
    ake_engine_free(e);
    free(out);
    free(g);
}

static void test_unknown_device(void **state) {
    fixture *f = *state;
    ake_engine *e = NULL;
    char err[256];
    ake_engine_opts eo = {.device = "tpu:0", .max_tokens = 16, .max_batch = 1};
    assert_int_equal(ake_engine_create(f->model, &eo, &e, err, sizeof err), AKE_EINVAL);
    assert_null(e);
    assert_non_null(strstr(err, "tpu:0"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_invariance),
        cmocka_unit_test(test_rejects_bad_batches),
        cmocka_unit_test(test_tokens_pool_to_embed),
        cmocka_unit_test(test_tokens_batch_invariance),
        cmocka_unit_test(test_tokens_rejects_bad_batches),
        cmocka_unit_test(test_tokens_golden),
        cmocka_unit_test(test_tokens_nonfinite_is_an_error),
        cmocka_unit_test(test_unknown_device),
    };
    return cmocka_run_group_tests_name("engine", tests, setup, teardown);
}
