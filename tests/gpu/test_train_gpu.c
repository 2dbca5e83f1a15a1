/* The GPU trainer (src/train/cuda/) against the CPU trainer (src/train/student_cpu.h, itself
 * checked against float64 finite differences and PyTorch in make test):
 *   1. the loss and every parameter's gradient of random students (mean and [CLS] pooling,
 *      heads of 32 and 64, sequences of 1 to max_len tokens, the hidden-state loss on), with
 *      F32 GEMMs (tight) and BF16 GEMMs (loose);
 *   2. PyTorch's 50-step loss sequences (tests/golden/distill) on the GPU: F32 GEMMs to 1e-3,
 *      BF16 GEMMs to 5 %;
 *   3. determinism: two runs of the same steps give the same bits.
 * Prints one line per check; exit status 1 on any failure. */
#include "gpu_util.h"
#include "train/student_cpu.h"
#include "train/trainer.h"
#include "train/trainer_cuda.h"

#include "../golden/distill/golden_steps.h"

static int failures;

#define CHECK(cond, ...)                                                                             \
    do {                                                                                             \
        if (!(cond)) {                                                                               \
            printf("FAIL ");                                                                         \
            printf(__VA_ARGS__);                                                                     \
            printf("\n");                                                                            \
            failures++;                                                                              \
        }                                                                                            \
    } while (0)

typedef struct {
    const char *name;
    int32_t C, NH, I, teacher_layers, n, max_len;
    int32_t keep[3], J;
    ake_pooling pool;
    bool normalize;
    ake_loss_weights w;
} grad_case;

static void grad_check(const grad_case *gc, bool f32) {
    ake_model_config cfg = {0};
    cfg.vocab_size = 97;
    cfg.hidden = gc->C;
    cfg.layers = gc->teacher_layers;
    cfg.heads = gc->NH;
    cfg.intermediate = gc->I;
    cfg.max_position = gc->max_len;
    cfg.type_vocab_size = 2;
    cfg.layer_norm_eps = 1e-12f;
    cfg.pooling = gc->pool;
    cfg.normalize = gc->normalize;
    ake_student_layout L;
    char err[512];
    if (ake_student_layout_init(&L, &cfg, gc->keep, gc->J, err, sizeof err) != AKE_OK) {
        CHECK(0, "%s: %s", gc->name, err);
        return;
    }
    const int32_t C = gc->C, n = gc->n;
    int32_t *cu = malloc((size_t)(n + 1) * sizeof *cu);
    cu[0] = 0;
    for (int32_t i = 0; i < n; i++) /* one sequence of max_len, one of 1, the rest random */
        cu[i + 1] = cu[i] + (i == 0 ? gc->max_len : i == 1 ? 1 : rng_int(2, gc->max_len));
    const int32_t T = cu[n];
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    for (int32_t t = 0; t < T; t++) ids[t] = rng_int(0, cfg.vocab_size - 1);
    float *params = malloc((size_t)L.numel * 4), *word = malloc((size_t)cfg.vocab_size * C * 4);
    float *target = malloc((size_t)n * C * 4), *hid[3];
    for (int64_t i = 0; i < L.numel; i++) params[i] = rng_uniform(-0.1f, 0.1f);
    for (int32_t k = 0; k < L.n_params; k++)
        if (strstr(L.param[k].name, "LayerNorm.weight"))
            for (int64_t i = 0; i < L.param[k].cols; i++) params[L.param[k].offset + i] += 1.0f;
    for (int64_t i = 0; i < (int64_t)cfg.vocab_size * C; i++) word[i] = rng_uniform(-1, 1);
    for (int64_t i = 0; i < (int64_t)n * C; i++) target[i] = rng_uniform(-0.1f, 0.1f);
    for (int32_t j = 0; j < gc->J; j++) {
        hid[j] = malloc((size_t)T * C * 4);
        for (int64_t i = 0; i < (int64_t)T * C; i++) hid[j][i] = rng_uniform(-1, 1);
    }
    /* CPU reference */
    ake_tr_acts_f32 a;
    AKE_ASSERT(ake_tr_acts_create_f32(&a, &L, T, n, err, sizeof err) == AKE_OK);
    float *g_cpu = calloc((size_t)L.numel, 4), *g_gpu = malloc((size_t)L.numel * 4);
    ake_tr_forward_f32(&a, &L, params, word, ids, cu, n);
    const double loss_cpu = ake_tr_loss_f32(&a, &L, cu, n, target, (const float *const *)hid, &gc->w);
    ake_tr_backward_f32(&a, &L, params, cu, n, target, (const float *const *)hid, &gc->w, g_cpu);
    /* GPU */
    ake_train_cuda *tc = NULL;
    if (ake_train_cuda_create(&L, "cuda:0", f32 ? AKE_DT_F32 : AKE_DT_BF16, T, n, gc->max_len, params, word, &tc, err,
                              sizeof err) != AKE_OK) {
        CHECK(0, "%s: %s", gc->name, err);
        return;
    }
    double loss_gpu = 0, norm_gpu = 0;
    AKE_ASSERT(ake_train_cuda_grads(tc, ids, cu, n, target, (const float *const *)hid, &gc->w, 1.0f,
                                    &loss_gpu, &norm_gpu, g_gpu, err, sizeof err) == AKE_OK);
    const char *mode = f32 ? "f32" : "bf16";
    const double loss_tol = f32 ? 1e-5 : 2e-2;
    CHECK(fabs(loss_gpu - loss_cpu) <= loss_tol * fabs(loss_cpu), "%s %s: loss gpu %.9g cpu %.9g", gc->name, mode,
          loss_gpu, loss_cpu);
    double worst = 0;
    const char *worst_name = "";
    for (int32_t k = 0; k < L.n_params; k++) {
        const ake_student_param *p = &L.param[k];
        double num = 0, den = 0, scale = 0, maxdiff = 0;
        for (int64_t i = p->offset; i < p->offset + p->rows * p->cols; i++) {
            const double d = (double)g_gpu[i] - g_cpu[i];
            num += d * d;
            den += (double)g_cpu[i] * g_cpu[i];
            scale = fmax(scale, fabs(g_cpu[i]));
            maxdiff = fmax(maxdiff, fabs(d));
        }
        /* f32: every element within 1e-3 of the tensor's largest gradient; bf16: relative L2 error */
        const double err_k = f32 ? (scale > 0 ? maxdiff / scale : maxdiff) : (den > 0 ? sqrt(num / den) : sqrt(num));
        if (err_k > worst) worst = err_k, worst_name = p->name;
        if (strstr(p->name, "attention.self.qkv.bias") && den < 1e-20) continue;
        CHECK(err_k <= (f32 ? 1e-3 : 3e-2), "%s %s: %s gradient error %.3g", gc->name, mode, p->name, err_k);
    }
    printf("%s %s: loss gpu %.9g cpu %.9g; worst gradient %s error %.3g\n", gc->name, mode, loss_gpu, loss_cpu,
           worst_name, worst);
    /* the embedding alone (validation's path) equals the forward's */
    float *emb = malloc((size_t)n * C * 4);
    AKE_ASSERT(ake_train_cuda_embed(tc, ids, cu, n, emb, err, sizeof err) == AKE_OK);
    double ediff = 0;
    for (int64_t i = 0; i < (int64_t)n * C; i++) ediff = fmax(ediff, fabs(emb[i] - a.out[i]));
    CHECK(ediff <= (f32 ? 1e-5 : 3e-2), "%s %s: embeddings differ by %.3g", gc->name, mode, ediff);
    ake_train_cuda_free(tc);
    ake_tr_acts_free_f32(&a);
    for (int32_t j = 0; j < gc->J; j++) free(hid[j]);
    free(cu), free(ids), free(params), free(word), free(target), free(g_cpu), free(g_gpu), free(emb);
}

/* PyTorch's loss sequence, as tests/unit/test_distill.c checks it on the CPU; teacher on the CPU
 * (FP32) so that only the student's arithmetic moves to the GPU. Returns the final parameters
 * (malloc'd, *numel of them) when want_params. */
static float *golden(const char *run, bool f32, double tol, bool want_params, int64_t *numel) {
    char err[512];
    golden_run g;
    ake_trainer_opts o = {.device = "cuda:0", .teacher_device = "cpu", .compute_f32 = f32, .max_len = 32};
    if (!golden_open(run, &g, &o, err, sizeof err)) {
        CHECK(0, "golden %s: %s", run, err);
        return NULL;
    }
    ake_model *teacher = NULL;
    AKE_ASSERT(ake_model_load(GOLDEN_DIR "/teacher", &teacher, err, sizeof err) == AKE_OK);
    ake_trainer *tr = NULL;
    if (ake_trainer_create(teacher, g.layers, g.nlayers, &o, &tr, err, sizeof err) != AKE_OK) {
        CHECK(0, "golden %s: %s", run, err);
        ake_model_free(teacher);
        golden_close(&g);
        return NULL;
    }
    double worst = 0;
    for (int s = 0; s < g.steps; s++) {
        int32_t ids[GOLDEN_MAX_TOKENS], cu[GOLDEN_MAX_BATCH + 1];
        const int32_t n = golden_batch(&g, s, ids, cu);
        AKE_ASSERT(n > 0);
        ake_step_stats st;
        AKE_ASSERT(ake_trainer_step(tr, ids, cu, n, &st, err, sizeof err) == AKE_OK);
        worst = fmax(worst, fabs(st.loss - golden_loss(&g, s)) / fabs(golden_loss(&g, s)));
    }
    printf("golden %s %s: %d steps, largest relative loss difference to PyTorch %.3g (allowed %.0e)\n", run,
           f32 ? "f32" : "bf16", g.steps, worst, tol);
    CHECK(worst <= tol, "golden %s: loss differs from PyTorch by %.3g relative", run, worst);
    float *params = NULL;
    if (want_params) {
        ake_trainer_state st;
        ake_trainer_state_view(tr, &st);
        *numel = ake_trainer_layout(tr)->numel;
        params = malloc((size_t)*numel * 4);
        memcpy(params, st.params, (size_t)*numel * 4);
    }
    ake_trainer_free(tr);
    ake_model_free(teacher);
    golden_close(&g);
    return params;
}

int main(void) {
    rng_seed_from_env();
    const grad_case cases[] = {
        {"minilm-like heads of 32, mean, normalized, hidden loss", 64, 2, 128, 4, 12, 128, {0, 2, 3}, 3,
         AKE_POOL_MEAN, true, {.hidden = 0.5}},
        {"heads of 64, cls, not normalized, contrastive", 128, 2, 256, 3, 9, 64, {1, 2}, 2, AKE_POOL_CLS, false,
         {.contrastive = 0.3, .temperature = 0.1}},
        {"a real MiniLM layer shape (384, 12 heads), contrastive", 384, 12, 1536, 2, 16, 64, {1}, 1, AKE_POOL_MEAN,
         true, {.contrastive = 0.5, .temperature = 0.05}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        grad_check(&cases[c], true);
        grad_check(&cases[c], false);
    }
    golden("mse", true, 1e-3, false, NULL);
    golden("hidden", true, 1e-3, false, NULL);
    golden("contrastive", true, 1e-3, false, NULL);
    /* BF16 GEMMs: PyTorch's loss within 5 % (measured 0.0026 and 0.0015 on the H200) */
    golden("mse", false, 5e-2, false, NULL);
    golden("hidden", false, 5e-2, false, NULL);
    /* determinism: the same 50 steps twice, same bits (each also checked against PyTorch) */
    int64_t numel = 0;
    float *p1 = golden("contrastive", false, 5e-2, true, &numel),
          *p2 = golden("contrastive", false, 5e-2, true, &numel);
    const bool same = p1 && p2 && memcmp(p1, p2, (size_t)numel * 4) == 0;
    CHECK(same, "two identical BF16 runs ended with different weights");
    printf("determinism: two BF16 runs of 50 steps end with %s weights\n", same ? "identical" : "DIFFERENT");
    free(p1), free(p2);
    printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
