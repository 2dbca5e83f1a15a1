/* Gradient checks of the trainer (src/train/): every backward op, and the whole student's
 * loss, against float64 central finite differences on tiny random inputs; then the float
 * trainer against the double reference on the same inputs. */
#include <math.h>

#include "test_util.h"
#include "train/ops.h"
#include "train/student_cpu.h"

static uint64_t rng_state = 0x5eed;
static double urand(void) { /* splitmix64 -> [-1, 1) */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0 * 2 - 1;
}
static double *rand_vec(int64_t n, double scale, double offset) {
    double *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = offset + scale * urand();
    return v;
}

/* The scalar whose gradient is checked: L(inputs), evaluated by a test's callback. */
typedef double (*loss_fn)(void *ctx);

/* Compares analytic [n] with central differences of f over x [n] (perturbed in place and
 * restored): |a - num| <= atol + rtol * max|num| everywhere. */
static void check_grad(const char *what, loss_fn f, void *ctx, double *x, const double *analytic, int64_t n) {
    const double h = 1e-5, rtol = 1e-6, atol = 1e-9;
    double *num = malloc((size_t)n * sizeof *num), scale = 0;
    for (int64_t i = 0; i < n; i++) {
        const double keep = x[i];
        x[i] = keep + h;
        const double lp = f(ctx);
        x[i] = keep - h;
        const double lm = f(ctx);
        x[i] = keep;
        num[i] = (lp - lm) / (2 * h);
        if (fabs(num[i]) > scale) scale = fabs(num[i]);
    }
    assert_true(scale > 0); /* a gradient that is zero everywhere would check nothing */
    for (int64_t i = 0; i < n; i++)
        if (fabs(analytic[i] - num[i]) > atol + rtol * scale)
            fail_msg("%s: element %lld: backward %.12g, finite differences %.12g (scale %.3g)", what, (long long)i,
                     analytic[i], num[i], scale);
    free(num);
}

static double dot(const double *a, const double *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Packed batch of three sequences, lengths 3, 1 and 5 (a one-token sequence included). */
static const int32_t CU[4] = {0, 3, 4, 9};
enum { NSEQ = 3, TOK = 9 };

/* ---- LayerNorm ---- */
typedef struct {
    double *x, *g, *b, *w, *out, *mean, *rstd;
    int32_t C;
} ln_ctx;
static double ln_loss(void *p) {
    ln_ctx *c = p;
    ake_tr_layernorm_forward_f64(c->out, c->mean, c->rstd, c->x, c->g, c->b, TOK, c->C, 1e-5);
    return dot(c->out, c->w, (int64_t)TOK * c->C);
}
static void test_layernorm(void **state) {
    (void)state;
    const int32_t C = 6;
    ln_ctx c = {rand_vec(TOK * C, 2, 0.5), rand_vec(C, 0.3, 1), rand_vec(C, 0.3, 0), rand_vec(TOK * C, 1, 0),
                calloc(TOK * C, 8), calloc(TOK, 8), calloc(TOK, 8), C};
    double *dx = calloc(TOK * C, 8), *dg = calloc(C, 8), *db = calloc(C, 8);
    ln_loss(&c);
    ake_tr_layernorm_backward_f64(dx, dg, db, c.w, c.x, c.g, c.mean, c.rstd, TOK, C);
    check_grad("layernorm dx", ln_loss, &c, c.x, dx, TOK * C);
    check_grad("layernorm dg", ln_loss, &c, c.g, dg, C);
    check_grad("layernorm db", ln_loss, &c, c.b, db, C);
    free(c.x), free(c.g), free(c.b), free(c.w), free(c.out), free(c.mean), free(c.rstd), free(dx), free(dg), free(db);
}

/* ---- matmul ---- */
typedef struct {
    double *x, *W, *b, *w, *out;
    int32_t K, N;
} mm_ctx;
static double mm_loss(void *p) {
    mm_ctx *c = p;
    ake_tr_matmul_forward_f64(c->out, c->x, c->W, c->b, TOK, c->K, c->N);
    return dot(c->out, c->w, (int64_t)TOK * c->N);
}
static void test_matmul(void **state) {
    (void)state;
    const int32_t K = 5, N = 7;
    mm_ctx c = {rand_vec(TOK * K, 1, 0), rand_vec(N * K, 1, 0), rand_vec(N, 1, 0), rand_vec(TOK * N, 1, 0),
                calloc(TOK * N, 8), K, N};
    double *dx = rand_vec(TOK * K, 1, 0), *dx0 = malloc(TOK * K * 8), *dW = calloc(N * K, 8), *db = calloc(N, 8);
    memcpy(dx0, dx, TOK * K * 8);
    mm_loss(&c);
    ake_tr_matmul_backward_f64(dx, dW, db, c.w, c.x, c.W, TOK, K, N, true); /* accumulate onto dx0 */
    for (int i = 0; i < TOK * K; i++) dx[i] -= dx0[i];
    check_grad("matmul dx (accumulated)", mm_loss, &c, c.x, dx, TOK * K);
    check_grad("matmul dW", mm_loss, &c, c.W, dW, N * K);
    check_grad("matmul db", mm_loss, &c, c.b, db, N);
    ake_tr_matmul_backward_f64(dx0, dW, db, c.w, c.x, c.W, TOK, K, N, false); /* overwrite */
    for (int i = 0; i < TOK * K; i++) assert_true(fabs(dx0[i] - dx[i]) < 1e-12);
    free(c.x), free(c.W), free(c.b), free(c.w), free(c.out), free(dx), free(dx0), free(dW), free(db);
}

/* ---- GELU ---- */
typedef struct {
    double *x, *w, *out;
    int64_t n;
} gelu_ctx;
static double gelu_loss(void *p) {
    gelu_ctx *c = p;
    ake_tr_gelu_forward_f64(c->out, c->x, c->n);
    return dot(c->out, c->w, c->n);
}
static void test_gelu(void **state) {
    (void)state;
    const int64_t n = 40;
    gelu_ctx c = {rand_vec(n, 4, 0), rand_vec(n, 1, 0), calloc(n, 8), n};
    double *dx = calloc(n, 8);
    gelu_loss(&c);
    ake_tr_gelu_backward_f64(dx, c.w, c.x, n);
    check_grad("gelu", gelu_loss, &c, c.x, dx, n);
    /* the forward is the exact erf GELU */
    assert_true(fabs(c.out[0] - 0.5 * c.x[0] * (1 + erf(c.x[0] / sqrt(2)))) < 1e-15);
    free(c.x), free(c.w), free(c.out), free(dx);
}

/* ---- attention ---- */
typedef struct {
    double *qkv, *w, *out, *lse;
    int32_t NH, C;
} att_ctx;
static double att_loss(void *p) {
    att_ctx *c = p;
    ake_tr_attention_forward_f64(c->out, c->lse, c->qkv, CU, NSEQ, c->NH, c->C);
    return dot(c->out, c->w, (int64_t)TOK * c->C);
}
static void test_attention(void **state) {
    (void)state;
    const int32_t NH = 2, C = 8;
    att_ctx c = {rand_vec(TOK * 3 * C, 1.5, 0), rand_vec(TOK * C, 1, 0), calloc(TOK * C, 8), calloc(TOK * NH, 8), NH,
                 C};
    double *dqkv = calloc(TOK * 3 * C, 8);
    att_loss(&c);
    /* a one-token sequence attends to itself alone: its output is its v */
    for (int e = 0; e < C; e++) assert_true(fabs(c.out[3 * C + e] - c.qkv[3 * 3 * C + 2 * C + e]) < 1e-12);
    ake_tr_attention_backward_f64(dqkv, c.w, c.qkv, c.out, c.lse, CU, NSEQ, NH, C);
    check_grad("attention dqkv", att_loss, &c, c.qkv, dqkv, TOK * 3 * C);
    free(c.qkv), free(c.w), free(c.out), free(c.lse), free(dqkv);
}

/* ---- pooling, L2 normalization, MSE, embeddings ---- */
typedef struct {
    double *x, *w, *pooled, *norm, *out, *target;
    int32_t C;
    ake_pooling mode;
} head_ctx;
static double head_loss(void *p) { /* mse(l2norm(pool(x)), target) */
    head_ctx *c = p;
    ake_tr_pool_forward_f64(c->pooled, c->x, CU, NSEQ, c->C, c->mode);
    ake_tr_l2norm_forward_f64(c->out, c->norm, c->pooled, NSEQ, c->C);
    return ake_tr_mse_forward_f64(c->out, c->target, NSEQ * c->C);
}
static void test_pool_norm_mse(void **state) {
    (void)state;
    const int32_t C = 5;
    for (int m = 0; m < 2; m++) {
        head_ctx c = {rand_vec(TOK * C, 1, 0.2), NULL,          calloc(NSEQ * C, 8), calloc(NSEQ, 8),
                      calloc(NSEQ * C, 8),     rand_vec(NSEQ * C, 0.5, 0), C, m ? AKE_POOL_CLS : AKE_POOL_MEAN};
        double *d = calloc(NSEQ * C, 8), *dx = calloc(TOK * C, 8);
        head_loss(&c);
        ake_tr_mse_backward_f64(d, c.out, c.target, NSEQ * C, 1.0, false);
        ake_tr_l2norm_backward_f64(d, d, c.out, c.norm, NSEQ, C);
        ake_tr_pool_backward_f64(dx, d, CU, NSEQ, C, c.mode);
        check_grad(m ? "cls pool + l2norm + mse" : "mean pool + l2norm + mse", head_loss, &c, c.x, dx, TOK * C);
        free(c.x), free(c.pooled), free(c.norm), free(c.out), free(c.target), free(d), free(dx);
    }
}

/* contrastive distillation: d infonce / d s against finite differences */
typedef struct {
    double *s, *t, *p;
    int32_t n, C;
    double tau;
} nce_ctx;
static double nce_loss(void *q) {
    nce_ctx *c = q;
    return ake_tr_infonce_forward_f64(c->p, c->s, c->t, c->n, c->C, c->tau);
}
static void test_infonce(void **state) {
    (void)state;
    const int32_t n = 5, C = 4;
    nce_ctx c = {rand_vec(n * C, 1, 0), rand_vec(n * C, 1, 0), calloc(n * n, 8), n, C, 0.3};
    double *ds = calloc(n * C, 8);
    nce_loss(&c);
    for (int i = 0; i < n; i++) { /* rows of p are softmaxes */
        double z = 0;
        for (int j = 0; j < n; j++) z += c.p[i * n + j];
        assert_true(fabs(z - 1) < 1e-12);
    }
    ake_tr_infonce_backward_f64(ds, c.p, c.t, n, C, c.tau, 1.0);
    check_grad("infonce ds", nce_loss, &c, c.s, ds, n * C);
    free(c.s), free(c.t), free(c.p), free(ds);
}

typedef struct {
    double *word, *pos, *type0, *w, *out;
    int32_t *ids, C;
} emb_ctx;
static double emb_loss(void *p) {
    emb_ctx *c = p;
    ake_tr_embed_forward_f64(c->out, c->ids, CU, NSEQ, c->word, c->pos, c->type0, c->C);
    return dot(c->out, c->w, (int64_t)TOK * c->C);
}
static void test_embed(void **state) {
    (void)state;
    const int32_t C = 4, V = 6, P = 6;
    int32_t ids[TOK] = {1, 5, 2, 1, 0, 3, 3, 4, 1};
    emb_ctx c = {rand_vec(V * C, 1, 0), rand_vec(P * C, 1, 0), rand_vec(C, 1, 0), rand_vec(TOK * C, 1, 0),
                 calloc(TOK * C, 8), ids, C};
    double *dpos = calloc(P * C, 8), *dtype = calloc(C, 8);
    emb_loss(&c);
    ake_tr_embed_backward_f64(dpos, dtype, c.w, CU, NSEQ, C);
    check_grad("embeddings dpos", emb_loss, &c, c.pos, dpos, P * C);
    check_grad("embeddings dtype", emb_loss, &c, c.type0, dtype, C);
    free(c.word), free(c.pos), free(c.type0), free(c.w), free(c.out), free(dpos), free(dtype);
}

/* ---- the whole student ---- */
static ake_model_config tiny_teacher(int32_t C, int32_t NH, int32_t I, int32_t layers, ake_pooling pool, bool norm) {
    ake_model_config cfg = {0};
    cfg.vocab_size = 11;
    cfg.hidden = C;
    cfg.layers = layers;
    cfg.heads = NH;
    cfg.intermediate = I;
    cfg.max_position = 8;
    cfg.type_vocab_size = 2;
    cfg.layer_norm_eps = 1e-5f;
    cfg.pooling = pool;
    cfg.normalize = norm;
    return cfg;
}

typedef struct {
    ake_student_layout *L;
    ake_tr_acts_f64 *a;
    double *params, *word, *target, *hidden[AKE_STUDENT_MAX_LAYERS];
    const int32_t *ids;
    ake_loss_weights w;
} student_ctx;
static double student_loss(void *p) {
    student_ctx *c = p;
    ake_tr_forward_f64(c->a, c->L, c->params, c->word, c->ids, CU, NSEQ);
    return ake_tr_loss_f64(c->a, c->L, CU, NSEQ, c->target, (const double *const *)c->hidden, &c->w);
}

static void student_case(ake_pooling pool, bool norm, ake_loss_weights w) {
    static const int32_t ids[TOK] = {2, 7, 3, 2, 2, 9, 10, 4, 3};
    const int32_t keep[2] = {0, 2};
    ake_model_config cfg = tiny_teacher(8, 2, 16, 3, pool, norm);
    ake_student_layout L;
    char err[256];
    assert_int_equal(ake_student_layout_init(&L, &cfg, keep, 2, err, sizeof err), AKE_OK);
    ake_tr_acts_f64 a;
    assert_int_equal(ake_tr_acts_create_f64(&a, &L, TOK, NSEQ, err, sizeof err), AKE_OK);
    student_ctx c = {&L, &a, rand_vec(L.numel, 0.5, 0), rand_vec(cfg.vocab_size * 8, 1, 0),
                     rand_vec(NSEQ * 8, 0.5, 0), {0}, ids, w};
    for (int k = 0; k < L.n_params; k++) /* LayerNorm gains near 1, as in a real model */
        if (strstr(L.param[k].name, "LayerNorm.weight"))
            for (int64_t i = 0; i < L.param[k].cols; i++) c.params[L.param[k].offset + i] += 1;
    for (int j = 0; j < 2; j++) c.hidden[j] = rand_vec(TOK * 8, 1, 0);
    double *grads = calloc((size_t)L.numel, 8);
    student_loss(&c);
    ake_tr_backward_f64(&a, &L, c.params, CU, NSEQ, c.target, (const double *const *)c.hidden, &w, grads);
    for (int k = 0; k < L.n_params; k++) {
        const ake_student_param *p = &L.param[k];
        char what[160];
        snprintf(what, sizeof what, "student (%s pooling%s, hidden %.1f, contrastive %.1f): %s",
                 ake_pooling_name(pool), norm ? ", normalized" : "", w.hidden, w.contrastive, p->name);
        if (k == AKE_SP_TYPE) { /* only token type 0 is used: row 1 gets no gradient */
            check_grad(what, student_loss, &c, c.params + p->offset, grads + p->offset, p->cols);
            for (int64_t i = p->cols; i < p->rows * p->cols; i++) assert_true(grads[p->offset + i] == 0);
            continue;
        }
        if (k == AKE_SP_POS) { /* positions 0..4 are used (the longest sequence has 5 tokens) */
            check_grad(what, student_loss, &c, c.params + p->offset, grads + p->offset, 5 * p->cols);
            continue;
        }
        check_grad(what, student_loss, &c, c.params + p->offset, grads + p->offset, p->rows * p->cols);
    }
    free(c.params), free(c.word), free(c.target), free(c.hidden[0]), free(c.hidden[1]), free(grads);
    ake_tr_acts_free_f64(&a);
}

static void test_student_gradients(void **state) {
    (void)state;
    student_case(AKE_POOL_MEAN, true, (ake_loss_weights){0});
    student_case(AKE_POOL_MEAN, true, (ake_loss_weights){.hidden = 0.7});
    student_case(AKE_POOL_MEAN, true, (ake_loss_weights){.contrastive = 0.3, .temperature = 0.2});
    student_case(AKE_POOL_CLS, false, (ake_loss_weights){.hidden = 0.2, .contrastive = 0.5, .temperature = 0.5});
}

/* The float trainer computes what the double reference does, to float rounding. */
static void test_float_matches_double(void **state) {
    (void)state;
    enum { C = 32, NH = 4, I = 64, N = 6 };
    const int32_t cu[N + 1] = {0, 7, 8, 30, 41, 59, 64}, keep[2] = {1, 3}, T = cu[N];
    ake_model_config cfg = tiny_teacher(C, NH, I, 4, AKE_POOL_MEAN, true);
    cfg.vocab_size = 50;
    cfg.max_position = 32;
    ake_student_layout L;
    char err[256];
    assert_int_equal(ake_student_layout_init(&L, &cfg, keep, 2, err, sizeof err), AKE_OK);
    int32_t ids[64];
    for (int t = 0; t < T; t++) ids[t] = (int32_t)((urand() + 1) * 25) % 50;
    double *p64 = rand_vec(L.numel, 0.3, 0), *w64 = rand_vec(50 * C, 1, 0), *t64 = rand_vec(N * C, 0.2, 0);
    double *h64[2] = {rand_vec(T * C, 1, 0), rand_vec(T * C, 1, 0)};
    for (int k = 0; k < L.n_params; k++)
        if (strstr(L.param[k].name, "LayerNorm.weight"))
            for (int64_t i = 0; i < L.param[k].cols; i++) p64[L.param[k].offset + i] += 1;
    float *p32 = malloc(L.numel * 4), *w32 = malloc(50 * C * 4), *t32 = malloc(N * C * 4);
    float *h32[2] = {malloc(T * C * 4), malloc(T * C * 4)};
    for (int64_t i = 0; i < L.numel; i++) p32[i] = (float)p64[i];
    for (int i = 0; i < 50 * C; i++) w32[i] = (float)w64[i];
    for (int i = 0; i < N * C; i++) t32[i] = (float)(t64[i] = (float)t64[i]);
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < T * C; i++) h32[j][i] = (float)(h64[j][i] = (float)h64[j][i]);
    for (int64_t i = 0; i < L.numel; i++) p64[i] = p32[i];
    for (int i = 0; i < 50 * C; i++) w64[i] = w32[i];
    ake_tr_acts_f64 a64;
    ake_tr_acts_f32 a32;
    assert_int_equal(ake_tr_acts_create_f64(&a64, &L, T, N, err, sizeof err), AKE_OK);
    assert_int_equal(ake_tr_acts_create_f32(&a32, &L, T, N, err, sizeof err), AKE_OK);
    double *g64 = calloc(L.numel, 8);
    float *g32 = calloc(L.numel, 4);
    ake_tr_forward_f64(&a64, &L, p64, w64, ids, cu, N);
    ake_tr_forward_f32(&a32, &L, p32, w32, ids, cu, N);
    const ake_loss_weights w = {.hidden = 0.5, .contrastive = 0.2, .temperature = 0.1};
    const double l64 = ake_tr_loss_f64(&a64, &L, cu, N, t64, (const double *const *)h64, &w);
    const double l32 = ake_tr_loss_f32(&a32, &L, cu, N, t32, (const float *const *)h32, &w);
    assert_true(fabs(l64 - l32) <= 1e-5 * fabs(l64));
    ake_tr_backward_f64(&a64, &L, p64, cu, N, t64, (const double *const *)h64, &w, g64);
    ake_tr_backward_f32(&a32, &L, p32, cu, N, t32, (const float *const *)h32, &w, g32);
    for (int k = 0; k < L.n_params; k++) {
        const ake_student_param *p = &L.param[k];
        double scale = 0;
        for (int64_t i = 0; i < p->rows * p->cols; i++) scale = fmax(scale, fabs(g64[p->offset + i]));
        for (int64_t i = 0; i < p->rows * p->cols; i++)
            if (fabs(g64[p->offset + i] - g32[p->offset + i]) > 1e-4 * scale + 1e-12)
                fail_msg("%s[%lld]: float %.8g, double %.8g (scale %.3g)", p->name, (long long)i, g32[p->offset + i],
                         g64[p->offset + i], scale);
    }
    ake_tr_acts_free_f64(&a64);
    ake_tr_acts_free_f32(&a32);
    free(p64), free(w64), free(t64), free(h64[0]), free(h64[1]), free(p32), free(w32), free(t32), free(h32[0]),
        free(h32[1]), free(g64), free(g32);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm),        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_gelu),             cmocka_unit_test(test_attention),
        cmocka_unit_test(test_pool_norm_mse),    cmocka_unit_test(test_embed),
        cmocka_unit_test(test_infonce),
        cmocka_unit_test(test_student_gradients), cmocka_unit_test(test_float_matches_double),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
