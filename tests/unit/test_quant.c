/* Quantization: the 8-bit encodings and transforms against float64 references, the INT8
 * CPU engine against the fp32 one (batch invariance included), the quantized folder's round
 * trip through ake_quant_write_weights and the loader, every hostile-file case of the
 * format (src/model/model.h), and the accuracy measures and gate (src/quant/accuracy.h). */
#include "test_util.h"

#include <math.h>

#include "base/dtype.h"
#include "engine/engine.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "quant/accuracy.h"
#include "quant/quantize.h"

static uint64_t rng = 88172645463325252ull;
static double urand(void) { /* uniform in [-1, 1) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}

static void test_i8_encoding(void **state) {
    (void)state;
    const struct { float x; int8_t q; } cases[] = {{0.5f, 0},   {1.5f, 2},     {2.5f, 2},     {-2.5f, -2},  {-0.5f, 0},
                                                  {126.5f, 126}, {127.4f, 127}, {200.0f, 127}, {-1e9f, -127}, {NAN, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) assert_int_equal(ake_f32_to_i8(cases[i].x), cases[i].q);
}

/* The E4M3 code nearest to x by exhaustive search over every finite code (ties: even code). */
static uint8_t e4m3_nearest(double x) {
    if (fabs(x) >= 448.0) return x < 0 ? 0xfe : 0x7e;
    int best = -1;
    double bd = INFINITY;
    for (int b = 0; b < 256; b++) {
        if ((b & 0x7f) == 0x7f) continue;
        const double d = fabs((double)ake_e4m3_to_f32((uint8_t)b) - x);
        if (d < bd || (d == bd && (b & 1) == 0 && ((b & 0x80) != 0) == (x < 0))) bd = d, best = b;
    }
    return (uint8_t)best;
}

static void test_e4m3_encoding(void **state) {
    (void)state;
    for (int b = 0; b < 256; b++) { /* every finite code decodes and encodes back */
        if ((b & 0x7f) == 0x7f) {
            assert_true(isnan(ake_e4m3_to_f32((uint8_t)b)));
            continue;
        }
        assert_int_equal(ake_f32_to_e4m3(ake_e4m3_to_f32((uint8_t)b)), b);
    }
    assert_true(ake_e4m3_to_f32(0x7e) == 448.0f && ake_e4m3_to_f32(0x08) == 0.015625f &&
                ake_e4m3_to_f32(0x01) == 1.0f / 512.0f && ake_e4m3_to_f32(0xfe) == -448.0f);
    assert_int_equal(ake_f32_to_e4m3(1000.0f), 0x7e);
    assert_int_equal(ake_f32_to_e4m3(-INFINITY), 0xfe);
    assert_int_equal(ake_f32_to_e4m3(NAN), 0x7f);
    for (int i = 0; i < 20000; i++) { /* random magnitudes over the whole range, against the search */
        const float x = (float)(urand() * pow(2.0, 10.0 * urand()) * 60.0);
        const uint8_t want = e4m3_nearest(x), got = ake_f32_to_e4m3(x);
        if (got != want && (want & 0x7f) != 0) /* signed zero: either sign is the nearest */
            fail_msg("e4m3(%.9g) = 0x%02x, nearest is 0x%02x", (double)x, got, want);
    }
}

static void test_quantize_rows(void **state) {
    (void)state;
    const int64_t shapes[][2] = {{1, 1}, {7, 33}, {5, 17}, {3, 384}};
    for (size_t si = 0; si < 4; si++) {
        const int64_t R = shapes[si][0], C = shapes[si][1];
        float *x = malloc((size_t)(R * C) * sizeof *x), *back = malloc((size_t)(R * C) * sizeof *back);
        float *sc = malloc((size_t)R * sizeof *sc);
        uint8_t *codes = malloc((size_t)(R * C));
        for (int64_t i = 0; i < R * C; i++) x[i] = (float)(urand() * 3.0);
        for (int64_t c = 0; c < C; c++) x[c] = 0.0f; /* an all-zero row */
        for (int dt = 0; dt < 2; dt++) {
            const ake_dtype q = dt ? AKE_DT_F8_E4M3 : AKE_DT_I8;
            const float qmax = dt ? AKE_E4M3_QMAX : AKE_I8_QMAX;
            ake_quantize_rows(x, R, C, q, qmax, codes, sc);
            ake_dequantize_rows(codes, q, sc, R, C, back);
            assert_true(sc[0] == 1.0f);
            for (int64_t r = 0; r < R; r++) {
                double amax = 0.0;
                for (int64_t c = 0; c < C; c++) amax = fmax(amax, fabs(x[r * C + c]));
                if (r) assert_true(fabs(sc[r] - amax / qmax) <= 1e-6 * amax);
                for (int64_t c = 0; c < C; c++) {
                    const double err = fabs((double)back[r * C + c] - x[r * C + c]);
                    const double bound = dt ? fabs(x[r * C + c]) / 16.0 + sc[r] / 1024.0 : sc[r] * 0.5 * (1 + 1e-5);
                    if (!(err <= bound)) fail_msg("%s row %lld col %lld: |err| %g > %g", dt ? "e4m3" : "i8",
                                                  (long long)r, (long long)c, err, bound);
                }
            }
        }
        free(x), free(back), free(sc), free(codes);
    }
}

static void test_hadamard(void **state) {
    (void)state;
    assert_int_equal(ake_hadamard_block(384, 512), 128);
    assert_int_equal(ake_hadamard_block(1536, 512), 512);
    assert_int_equal(ake_hadamard_block(1536, 256), 256);
    assert_int_equal(ake_hadamard_block(7, 512), 1);
    enum { R = 3, N = 384, B = 128 };
    float x[R * N], y[R * N];
    for (int i = 0; i < R * N; i++) x[i] = y[i] = (float)urand();
    ake_hadamard_rows(y, R, N, B);
    for (int r = 0; r < R; r++) { /* orthogonal: norms kept; and the first output is the scaled block sum */
        double n0 = 0, n1 = 0, sum = 0;
        for (int c = 0; c < N; c++) n0 += (double)x[r * N + c] * x[r * N + c], n1 += (double)y[r * N + c] * y[r * N + c];
        for (int c = 0; c < B; c++) sum += x[r * N + c];
        assert_true(fabs(n0 - n1) <= 1e-5 * n0);
        assert_true(fabs(y[r * N] - sum / sqrt((double)B)) <= 1e-5);
    }
    ake_hadamard_rows(y, R, N, B); /* symmetric and orthogonal: twice is the identity */
    for (int i = 0; i < R * N; i++) assert_true(fabs(y[i] - x[i]) <= 1e-5);
}

/* cos(a, b) of d floats in double. */
static double cosine(const float *a, const float *b, int32_t d) {
    double ab = 0, aa = 0, bb = 0;
    for (int32_t c = 0; c < d; c++) ab += (double)a[c] * b[c], aa += (double)a[c] * a[c], bb += (double)b[c] * b[c];
    return ab / sqrt(aa * bb);
}

/* Embeds n random sequences (lengths lens) with e into out [n, d]. */
static void embed_random(ake_engine *e, const int32_t *lens, int32_t n, int32_t vocab, uint64_t seed, float *out) {
    int32_t cu[64] = {0}, ids[4096];
    uint64_t s = seed;
    for (int32_t i = 0; i < n; i++) {
        cu[i + 1] = cu[i] + lens[i];
        for (int32_t t = cu[i]; t < cu[i + 1]; t++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            ids[t] = t == cu[i] ? 101 : t == cu[i + 1] - 1 ? 102 : 1000 + (int32_t)((s >> 33) % (uint64_t)(vocab - 1000));
        }
    }
    char err[256];
    if (ake_engine_embed(e, ids, cu, n, out, err, sizeof err) != AKE_OK) fail_msg("%s", err);
}

static ake_engine *make_engine(const ake_model *m, ake_precision p) {
    char err[256];
    ake_engine *e = NULL;
    const ake_engine_opts o = {.device = "cpu", .max_tokens = 1024, .max_batch = 16, .threads = 2, .precision = p};
    if (ake_engine_create(m, &o, &e, err, sizeof err) != AKE_OK) fail_msg("%s", err);
    return e;
}

/* The real model: dynamic INT8 against fp32 on odd token counts, and batch invariance (a
 * sequence alone and inside a batch gives the same bits: per-token scales and integer sums). */
static void test_int8_engine(void **state) {
    (void)state;
    char err[256];
    ake_model *m = NULL;
    if (ake_model_load(test_model_dir(), &m, err, sizeof err) != AKE_OK) fail_msg("%s", err);
    ake_engine *f = make_engine(m, AKE_PREC_FP32), *q = make_engine(m, AKE_PREC_INT8);
    assert_int_equal(ake_engine_precision(q), AKE_PREC_INT8);
    assert_true(ake_engine_weight_bytes(q) * 3 < ake_engine_weight_bytes(f)); /* 8-bit weights resident */
    const int32_t d = m->cfg.hidden, lens[] = {1 + 2, 7, 31, 129, 5};
    float *vf = malloc(5 * (size_t)d * sizeof *vf), *vq = malloc(5 * (size_t)d * sizeof *vq);
    float *one = malloc((size_t)d * sizeof *one);
    embed_random(f, lens, 5, m->cfg.vocab_size, 7, vf);
    embed_random(q, lens, 5, m->cfg.vocab_size, 7, vq);
    for (int i = 0; i < 5; i++) {
        const double c = cosine(vf + (size_t)i * d, vq + (size_t)i * d, d);
        if (!(c >= 0.99)) fail_msg("sequence %d (%d tokens): cosine int8 vs fp32 %.5f", i, lens[i], c);
    }
    /* sequence 3 (129 tokens) alone: its ids are those of the batch when the seed walk matches */
    int32_t alone[1] = {129};
    float *batch = malloc(2 * (size_t)d * sizeof *batch);
    const int32_t pair[2] = {129, 31};
    embed_random(q, pair, 2, m->cfg.vocab_size, 11, batch);
    embed_random(q, alone, 1, m->cfg.vocab_size, 11, one);
    assert_memory_equal(one, batch, (size_t)d * sizeof *one);
    free(vf), free(vq), free(one), free(batch);
    ake_engine_free(f);
    ake_engine_free(q);
    ake_model_free(m);
}

/* Copies the model folder's config files (what ake_model_load reads besides the weights). */
static void copy_configs(const char *src, const char *dst) {
    const char *files[] = {"config.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json"};
    char path[4096];
    snprintf(path, sizeof path, "%s/1_Pooling", dst);
    mkdir(path, 0755);
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", src, files[i]);
        size_t len = 0;
        char *buf = test_read_file(path, &len);
        if (buf) test_write_file(dst, files[i], buf, len);
        free(buf);
    }
}

/* A quantized folder of the real model: every linear INT8, smoothed with factors in [0.5, 2],
 * rotated where the plan says; static scales when `static_act`. Caller frees the path. */
static char *write_folder(const ake_model *m, bool static_act, int32_t rot) {
    const int32_t L = m->cfg.layers, d = m->cfg.hidden, inter = m->cfg.intermediate;
    ake_quant_linear *lin = calloc((size_t)L * AKE_LINEAR_KINDS, sizeof *lin);
    float *smooth = malloc((size_t)inter * sizeof *smooth);
    for (int32_t c = 0; c < inter; c++) smooth[c] = (float)(1.25 + 0.75 * urand());
    for (int32_t i = 0; i < L * AKE_LINEAR_KINDS; i++) {
        const int32_t cols = i % AKE_LINEAR_KINDS == AKE_LINEAR_FFN2 ? inter : d;
        lin[i] = (ake_quant_linear){.q8 = true, .in_scale = static_act ? 0.05f : 0.0f, .smooth = smooth,
                                    .rotation = rot > 1 ? ake_hadamard_block(cols, rot) : 1};
    }
    ake_quant_plan plan = {.qdtype = AKE_DT_I8, .embeddings_8bit = true, .linear = lin};
    char *dir = test_tmp_dir(), path[4096], err[256];
    copy_configs(m->dir, dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (ake_quant_write_weights(m, &plan, path, err, sizeof err) != AKE_OK) fail_msg("%s", err);
    free(lin);
    free(smooth);
    return dir;
}

static void test_folder_round_trip(void **state) {
    (void)state;
    char err[256];
    ake_model *m = NULL, *q = NULL;
    if (ake_model_load(test_model_dir(), &m, err, sizeof err) != AKE_OK) fail_msg("%s", err);
    char *dir = write_folder(m, false, 512);
    if (ake_model_load(dir, &q, err, sizeof err) != AKE_OK) fail_msg("%s", err);
    assert_int_equal(q->qdtype, AKE_DT_I8);
    assert_false(q->static_act);
    assert_int_equal(q->word_emb->dtype, AKE_DT_I8);
    assert_non_null(q->word_emb_scale);
    assert_int_equal(q->layer[2].ff2.w->dtype, AKE_DT_I8);
    assert_int_equal(*(const int32_t *)q->layer[2].ff2.in_rotation->data, 512);
    assert_int_equal(*(const int32_t *)q->layer[0].q.in_rotation->data, 128);
    assert_non_null(q->layer[5].o.in_smooth);
    /* the folder in int8 (its own codes) and in fp32 (dequantized, smoothing and rotation undone) */
    ake_engine *ref = make_engine(m, AKE_PREC_FP32), *e8 = make_engine(q, AKE_PREC_DEFAULT),
               *e32 = make_engine(q, AKE_PREC_FP32);
    assert_int_equal(ake_engine_precision(e8), AKE_PREC_INT8);
    const int32_t d = m->cfg.hidden, lens[] = {9, 33, 4};
    float v[3][3 * 384];
    assert_true(d <= 384);
    embed_random(ref, lens, 3, m->cfg.vocab_size, 5, v[0]);
    embed_random(e8, lens, 3, m->cfg.vocab_size, 5, v[1]);
    embed_random(e32, lens, 3, m->cfg.vocab_size, 5, v[2]);
    for (int i = 0; i < 3; i++) {
        const double c8 = cosine(v[0] + i * d, v[1] + i * d, d), c32 = cosine(v[0] + i * d, v[2] + i * d, d);
        if (!(c8 >= 0.99 && c32 >= 0.999)) fail_msg("sequence %d: cosine int8 %.5f, dequantized fp32 %.5f", i, c8, c32);
    }
    ake_engine_free(e8);
    ake_engine_free(e32);
    ake_model_free(q);
    test_rm_rf(dir);
    free(dir);
    /* a folder without input_rotation: its inputs must not be rotated either */
    dir = write_folder(m, false, 0);
    if (ake_model_load(dir, &q, err, sizeof err) != AKE_OK) fail_msg("%s", err);
    assert_null(q->layer[0].q.in_rotation);
    e8 = make_engine(q, AKE_PREC_INT8);
    embed_random(e8, lens, 3, m->cfg.vocab_size, 5, v[1]);
    for (int i = 0; i < 3; i++) {
        const double c8 = cosine(v[0] + i * d, v[1] + i * d, d);
        if (!(c8 >= 0.97)) fail_msg("unrotated folder, sequence %d: cosine int8 %.5f", i, c8); /* a mix-up gives ~0 */
    }
    ake_engine_free(e8);
    ake_engine_free(ref);
    ake_model_free(q);
    test_rm_rf(dir);
    free(dir);
    ake_model_free(m);
}

/* One tensor of a valid quantized folder changed (or dropped when data is NULL and nbytes 0),
 * written to a new folder: ake_model_load must fail with `want` and name `name`. */
typedef struct {
    const char *name;         /* tensor to change */
    ake_dtype dtype;
    int64_t shape0;           /* new first dimension (or 0 to keep) */
    const void *data;         /* new bytes (NULL: drop the tensor) */
    size_t nbytes;
} mutation;

static void expect_mutation_fails(const char *good, const mutation *mu, ake_status want, const char *word) {
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/model.safetensors", good);
    ake_safetensors *st = NULL;
    if (ake_safetensors_open(path, &st, err, sizeof err) != AKE_OK) fail_msg("%s", err);
    const int n = ake_safetensors_count(st);
    ake_tensor *t = malloc((size_t)n * sizeof *t);
    int k = 0;
    for (int i = 0; i < n; i++) {
        t[k] = *ake_safetensors_at(st, i);
        if (strcmp(t[k].name, mu->name) == 0) {
            if (!mu->data) continue;
            t[k].dtype = mu->dtype;
            if (mu->shape0) t[k].shape[0] = mu->shape0;
            t[k].data = mu->data;
            t[k].nbytes = mu->nbytes;
        }
        k++;
    }
    char *dir = test_tmp_dir();
    copy_configs(good, dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (ake_safetensors_write(path, t, k, err, sizeof err) != AKE_OK) fail_msg("%s", err);
    ake_model *m = NULL;
    const ake_status st2 = ake_model_load(dir, &m, err, sizeof err);
    if (st2 != want || !strstr(err, mu->name) || (word && !strstr(err, word)))
        fail_msg("%s: want status %d naming '%s'%s%s, got %d: %s", mu->name, want, mu->name, word ? " and " : "",
                 word ? word : "", st2, err);
    assert_null(m);
    free(t);
    ake_safetensors_close(st);
    test_rm_rf(dir);
    free(dir);
}

static void test_hostile_folders(void **state) {
    (void)state;
    char err[256];
    ake_model *m = NULL;
    if (ake_model_load(test_model_dir(), &m, err, sizeof err) != AKE_OK) fail_msg("%s", err);
    char *good = write_folder(m, true, 512);
    ake_model *q = NULL;
    if (ake_model_load(good, &q, err, sizeof err) != AKE_OK) fail_msg("%s", err);
    assert_true(q->static_act);
    ake_model_free(q);
    const int32_t d = m->cfg.hidden;
    float *bad = malloc((size_t)d * sizeof *bad);
    const float poison[] = {0.0f, -1.0f, NAN, INFINITY};
    const char *const WS = "encoder.layer.1.attention.output.dense.weight_scale";
    for (int i = 0; i < 4; i++) {
        for (int32_t c = 0; c < d; c++) bad[c] = 0.01f;
        bad[d / 2] = poison[i];
        const mutation mu = {WS, AKE_DT_F32, 0, bad, (size_t)d * sizeof *bad};
        expect_mutation_fails(good, &mu, AKE_EFORMAT, "finite and greater than 0");
    }
    expect_mutation_fails(good, &(mutation){WS, AKE_DT_F32, 0, NULL, 0}, AKE_EFORMAT, "missing");
    expect_mutation_fails(good, &(mutation){WS, AKE_DT_F32, d / 2, bad, (size_t)d / 2 * sizeof *bad}, AKE_EFORMAT,
                          "shape");
    expect_mutation_fails(good, &(mutation){WS, AKE_DT_F16, d / 2, bad, (size_t)d * 2 / 2}, AKE_EFORMAT, "F32");
    const float two[2] = {0.1f, 0.1f};
    expect_mutation_fails(good, &(mutation){"encoder.layer.0.intermediate.dense.input_scale", AKE_DT_F32, 2, two,
                                            sizeof two},
                          AKE_EFORMAT, "[1]");
    const int32_t rot3 = 3, rot1024 = 1024, rot64 = 64;
    expect_mutation_fails(good, &(mutation){"encoder.layer.0.output.dense.input_rotation", AKE_DT_I32, 0, &rot3, 4},
                          AKE_EFORMAT, "power of two");
    expect_mutation_fails(good, &(mutation){"encoder.layer.0.attention.output.dense.input_rotation", AKE_DT_I32, 0,
                                            &rot1024, 4},
                          AKE_EFORMAT, "divides");
    /* q, k and v share one input: a different rotation on k alone */
    expect_mutation_fails(good, &(mutation){"encoder.layer.3.attention.self.key.input_rotation", AKE_DT_I32, 0,
                                            &rot64, 4},
                          AKE_EFORMAT, NULL);
    /* static scales are all or nothing */
    expect_mutation_fails(good, &(mutation){"encoder.layer.4.intermediate.dense.input_scale", AKE_DT_F32, 0, NULL, 0},
                          AKE_EFORMAT, "all or none");
    /* one 8-bit type per folder: one weight's codes relabelled F8_E4M3 */
    const ake_tensor *w = m->layer[5].ff1.w;
    uint8_t *codes = calloc((size_t)w->numel, 1);
    expect_mutation_fails(good, &(mutation){"encoder.layer.5.intermediate.dense.weight", AKE_DT_F8_E4M3, 0, codes,
                                            (size_t)w->numel},
                          AKE_EFORMAT, "one 8-bit type");
    free(codes);
    free(bad);
    test_rm_rf(good);
    free(good);
    ake_model_free(m);
}

static void test_accuracy_and_gate(void **state) {
    (void)state;
    enum { N = 60, D = 8 };
    float a[N * D], b[N * D];
    for (int i = 0; i < N * D; i++) a[i] = b[i] = (float)urand();
    ake_accuracy acc;
    char err[256], why[256];
    assert_int_equal(ake_accuracy_measure(a, b, N, D, 0, 20, &acc, err, sizeof err), AKE_OK);
    assert_true(fabs(acc.mean_cos - 1.0) < 1e-6 && fabs(acc.min_cos - 1.0) < 1e-6 && acc.recall == 1.0);
    assert_int_equal(acc.queries, 20);
    for (int c = 0; c < D; c++) b[7 * D + c] = -a[7 * D + c]; /* one vector turned around */
    assert_int_equal(ake_accuracy_measure(a, b, N, D, 0, N, &acc, err, sizeof err), AKE_OK);
    assert_int_equal(acc.min_index, 7);
    ake_accuracy part;
    assert_int_equal(ake_accuracy_measure(a, b, N, D, 10, N, &part, err, sizeof err), AKE_OK);
    assert_true(part.n == N - 10 && part.queries == N - 10 && part.min_cos > 0.999); /* row 7 is outside */
    assert_true(acc.min_cos < -0.999 && acc.recall < 1.0);
    ake_gate g = AKE_GATE_DEFAULT;
    assert_false(ake_gate_check(&g, &acc, why, sizeof why));
    assert_non_null(strstr(why, "minimum cosine"));
    /* a corpus of 10 different texts repeated 6 times: no recall@10 to measure, refused */
    float rep[N * D], rep2[N * D];
    for (int i = 0; i < N * D; i++) rep[i] = a[i % (10 * D)], rep2[i] = -rep[i];
    assert_int_equal(ake_accuracy_measure(rep, rep2, N, D, 0, N, &part, err, sizeof err), AKE_EINVAL);
    assert_non_null(strstr(err, "more than 10 different texts"));
    for (int c = 0; c < D; c++) rep[(N - 1) * D + c] = 2.0f + (float)c; /* the 11th different text */
    assert_int_equal(ake_accuracy_measure(rep, rep, N, D, 0, N, &part, err, sizeof err), AKE_OK);
    assert_true(ake_gate_parse("min=-1,mean=0.5,recall=0", &g, err, sizeof err));
    assert_true(g.min_cos == -1.0 && g.mean_cos == 0.5 && g.recall == 0.0 && ake_gate_check(&g, &acc, why, sizeof why));
    assert_false(ake_gate_parse("mean=2", &g, err, sizeof err));
    assert_false(ake_gate_parse("speed=1", &g, err, sizeof err));
    assert_non_null(strstr(err, "speed"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_i8_encoding),     cmocka_unit_test(test_e4m3_encoding),
        cmocka_unit_test(test_quantize_rows),   cmocka_unit_test(test_hadamard),
        cmocka_unit_test(test_int8_engine),     cmocka_unit_test(test_folder_round_trip),
        cmocka_unit_test(test_hostile_folders), cmocka_unit_test(test_accuracy_and_gate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
