/* CPU engine on the real default model: batch invariance, order independence and
 * the checks at the door (bad ids, lengths, limits). Golden agreement with
 * sentence-transformers lives in tests/py/test_embedding_golden.py. */
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
        cmocka_unit_test(test_unknown_device),
    };
    return cmocka_run_group_tests_name("engine", tests, setup, teardown);
}
