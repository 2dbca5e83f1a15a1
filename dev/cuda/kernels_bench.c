/* Kernel lab timer: each CUDA op of the forward alone, at the shapes of the benchmark grid,
 * against its floor (fewest bytes over the measured copy bandwidth, or FLOPs over the
 * measured GEMM rate, whichever is larger). Correctness lives in tests/gpu/test_kernels.c;
 * this only times. Inputs are random (never zeros), timing is the median of 20 runs
 * between CUDA events after 3 warm-ups.
 *
 *   build/dev/cuda/kernels_bench [fp16|bf16] [attention]     (make dev-cuda)
 *   AKE_CUDA_ATTN=1 build/dev/cuda/kernels_bench fp16 attention   attention v1 only
 *   build/dev/cuda/kernels_bench fp16 8bit      the W8A8 GEMMs and kernels (bench/gpu_kernels8.sh) */
#include "../../tests/gpu/gpu_util.h"

#include "engine/cuda/attention.cuh"
#include "engine/cuda/embed.cuh"
#include "engine/cuda/gelu.cuh"
#include "engine/cuda/gemm.cuh"
#include "engine/cuda/layernorm.cuh"
#include "engine/cuda/pool.cuh"
#include "engine/cuda/quant.cuh"
#include "engine/engine_impl.h"

static cudaEvent_t ev0, ev1;
static double g_bw, g_flops; /* measured ceilings: bytes/s (read + written), FLOP/s */
static int g_attention_only, g_8bit;
static int attn_version; /* AKE_CUDA_ATTN=1: attention v1 (the engine's opts.cuda.attention) */

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

#define TIME_US(out, stmt)                                                  \
    do {                                                                    \
        float t_[20];                                                       \
        for (int w_ = 0; w_ < 3; w_++) { stmt; }                            \
        for (int r_ = 0; r_ < 20; r_++) {                                   \
            GPU_CHECK(cudaEventRecord(ev0, 0));                             \
            stmt;                                                           \
            GPU_CHECK(cudaEventRecord(ev1, 0));                             \
            GPU_CHECK(cudaEventSynchronize(ev1));                           \
            GPU_CHECK(cudaEventElapsedTime(&t_[r_], ev0, ev1));             \
        }                                                                   \
        qsort(t_, 20, sizeof t_[0], cmp_float);                             \
        (out) = t_[10] * 1e3;                                               \
    } while (0)

static void report(const char *op, const char *shape, double us, double bytes, double flops) {
    const double floor_bytes = bytes / g_bw * 1e6, floor_flops = flops / g_flops * 1e6;
    const double fl = floor_bytes > floor_flops ? floor_bytes : floor_flops;
    printf("%-10s %-34s %9.1f us  floor %8.1f us (%s)  %6.0f GB/s  %6.1f TFLOP/s  %5.1f%% of floor\n", op, shape, us,
           fl, floor_bytes > floor_flops ? "bytes" : "flops", bytes / us * 1e-3, flops / us * 1e-6, fl / us * 100.0);
}

static void *rand16(size_t n, float amp, ake_dtype dt) {
    uint16_t *h = malloc(n * 2);
    for (size_t i = 0; i < n; i++) h[i] = to16(rng_uniform(-amp, amp), dt);
    void *d = dev_copy(h, n * 2);
    free(h);
    return d;
}

static void *randf(size_t n, float lo, float hi) {
    float *h = malloc(n * 4);
    for (size_t i = 0; i < n; i++) h[i] = rng_uniform(lo, hi);
    void *d = dev_copy(h, n * 4);
    free(h);
    return d;
}

typedef struct {
    const char *name;
    int B, S, d, H, inter;
} shape;

static void bench_shape(ake_cuda_gemm *g, ake_dtype dt, const shape *s) {
    const int T = s->B * s->S, d = s->d, H = s->H, D = d / H, inter = s->inter;
    char sh[96];
    snprintf(sh, sizeof sh, "%s B=%d S=%d (T=%d)", s->name, s->B, s->S, T);
    void *x = rand16((size_t)T * d, 1.0f, dt), *y = rand16((size_t)T * d, 1.0f, dt);
    void *qkv = rand16((size_t)T * 3 * d, 1.0f, dt), *ctx = rand16((size_t)T * d, 1.0f, dt);
    void *h = rand16((size_t)T * inter, 1.0f, dt);
    void *wqkv = rand16((size_t)3 * d * d, 0.05f, dt), *wo = rand16((size_t)d * d, 0.05f, dt);
    void *w1 = rand16((size_t)inter * d, 0.05f, dt), *w2 = rand16((size_t)d * inter, 0.05f, dt);
    void *b = rand16((size_t)(3 * d > inter ? 3 * d : inter), 0.1f, dt);
    float *gam = randf((size_t)d, 0.5f, 1.5f), *bet = randf((size_t)d, -0.5f, 0.5f);
    void *word = rand16((size_t)30522 * d, 0.1f, dt), *pos = rand16((size_t)512 * d, 0.1f, dt);
    int32_t *ids = malloc((size_t)T * 4), *pids = malloc((size_t)T * 4), *cu = malloc(((size_t)s->B + 1) * 4);
    for (int t = 0; t < T; t++) ids[t] = rng_int(1000, 29999), pids[t] = t % s->S;
    for (int i = 0; i <= s->B; i++) cu[i] = i * s->S;
    const int max_tiles = ake_cuda_attention_max_tiles(T, s->B);
    int32_t *tiles = malloc((size_t)max_tiles * 16);
    int32_t nt = ake_cuda_attention_tiles(cu, s->B, tiles), n = s->B;
    int32_t *dids = dev_copy(ids, (size_t)T * 4), *dpids = dev_copy(pids, (size_t)T * 4);
    int32_t *dcu = dev_copy(cu, ((size_t)s->B + 1) * 4), *dtiles = dev_copy(tiles, (size_t)max_tiles * 16);
    int32_t *dnt = dev_copy(&nt, 4), *dn = dev_copy(&n, 4);
    float *out = dev_poisoned((size_t)s->B * d * 4);
    double us;
    const double e = 2.0; /* bytes per element */

    if (g_attention_only) {
        TIME_US(us, ake_cuda_attention(0, dt, ctx, qkv, dtiles, dnt, max_tiles, H, D, attn_version));
        report(attn_version == 1 ? "attn_v1" : "attn_v2", sh, us,
               ((double)T * 3 * d + (double)T * d) * e, 4.0 * s->B * (double)s->S * s->S * d);
        goto done;
    }
    TIME_US(us, ake_cuda_embed_layernorm(0, dt, x, NULL, dids, dpids, word, pos, pos, gam, bet, T, d, 1e-12f));
    report("embed_ln", sh, us, (double)T * d * e * 3 + (double)T * 8, 0);
    TIME_US(us, ake_cuda_gemm_run(g, 0, dt, T, 3 * d, d, x, wqkv, b, NULL, qkv, AKE_GEMM_BIAS));
    report("gemm_qkv", sh, us, ((double)T * d + 3.0 * d * d + (double)T * 3 * d) * e, 2.0 * T * d * 3 * d);
    TIME_US(us, ake_cuda_attention(0, dt, ctx, qkv, dtiles, dnt, max_tiles, H, D, attn_version));
    report("attention", sh, us, ((double)T * 3 * d + (double)T * d) * e, 4.0 * s->B * (double)s->S * s->S * d);
    TIME_US(us, ake_cuda_gemm_run(g, 0, dt, T, d, d, ctx, wo, b, NULL, y, AKE_GEMM_BIAS));
    report("gemm_o", sh, us, ((double)T * d * 2 + (double)d * d) * e, 2.0 * T * d * d);
    TIME_US(us, ake_cuda_layernorm(0, dt, x, y, x, gam, bet, T, d, 1e-12f));
    report("add_ln", sh, us, (double)T * d * e * 3, 0);
    float *x32 = randf((size_t)T * d, -1.0f, 1.0f), *y32 = randf((size_t)T * d, -1.0f, 1.0f);
    TIME_US(us, ake_cuda_gemm_run_f32out(g, 0, dt, T, d, d, ctx, wo, y32));
    report("gemm_o32", sh, us, ((double)T * d * (2 + 4) + (double)d * d * 2), 2.0 * T * d * d);
    TIME_US(us, ake_cuda_layernorm_f32(0, dt, x, x32, y32, gam, x32, gam, bet, T, d, 1e-12f));
    report("add_ln32", sh, us, (double)T * d * (4 + 4 + 4 + 2), 0);
    cudaFree(x32), cudaFree(y32);
    TIME_US(us, ake_cuda_gemm_run(g, 0, dt, T, inter, d, x, w1, b, NULL, h, AKE_GEMM_BIAS));
    report("gemm_ffn1", sh, us, ((double)T * d + (double)inter * d + (double)T * inter) * e, 2.0 * T * d * inter);
    TIME_US(us, ake_cuda_gemm_run(g, 0, dt, T, inter, d, x, w1, b, NULL, h, AKE_GEMM_BIAS_GELU_TANH));
    report("ffn1+tanh", sh, us, ((double)T * d + (double)inter * d + (double)T * inter) * e, 2.0 * T * d * inter);
    TIME_US(us, ake_cuda_gelu(0, dt, h, (size_t)T * inter));
    report("gelu", sh, us, (double)T * inter * e * 2, 0);
    TIME_US(us, ake_cuda_gemm_run(g, 0, dt, T, d, inter, h, w2, b, NULL, y, AKE_GEMM_BIAS));
    report("gemm_ffn2", sh, us, ((double)T * d + (double)inter * d + (double)T * inter) * e, 2.0 * T * d * inter);
    TIME_US(us, ake_cuda_pool(0, dt, out, x, dcu, dn, s->B, d, 0, 1));
    report("pool", sh, us, (double)T * d * e, 0);

done:;
    void *bufs[] = {x, y, qkv, ctx, h, wqkv, wo, w1, w2, b, gam, bet, word, pos, dids, dpids, dcu, dtiles, dnt, dn, out};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    free(ids), free(pids), free(cu), free(tiles);
}

/* ---- 8-bit (W8A8) building blocks --------------------------------------------------------- */

static void *rand_e4m3(size_t n, float amp) {
    uint8_t *h = malloc(n);
    for (size_t i = 0; i < n; i++) h[i] = ake_f32_to_e4m3(rng_uniform(-amp, amp));
    void *d = dev_copy(h, n);
    free(h);
    return d;
}

static void *rand_i8(size_t n) {
    int8_t *h = malloc(n);
    for (size_t i = 0; i < n; i++) h[i] = (int8_t)rng_int(-127, 127);
    void *d = dev_copy(h, n);
    free(h);
    return d;
}

static void *rand_i32(size_t n, int32_t lim) {
    int32_t *h = malloc(n * 4);
    for (size_t i = 0; i < n; i++) h[i] = rng_int(-lim, lim);
    void *d = dev_copy(h, n * 4);
    free(h);
    return d;
}

/* fp16, fp8 (both paths) and int8 GEMM rates at one shape, each on random operands. */
static void bench_gemm8(ake_cuda_gemm *g, ake_cuda_gemm *gd, int M, int N, int K, const char *label) {
    void *x16 = rand16((size_t)M * K, 1.0f, AKE_DT_F16), *w16 = rand16((size_t)N * K, 0.05f, AKE_DT_F16);
    void *b16 = rand16((size_t)N, 0.1f, AKE_DT_F16), *y16 = dev_poisoned((size_t)M * N * 2);
    void *x8 = rand_e4m3((size_t)M * K, 2.0f), *w8 = rand_e4m3((size_t)N * K, 2.0f);
    void *xi = rand_i8((size_t)M * K), *wi = rand_i8((size_t)N * K);
    float *sx = randf((size_t)M, 0.001f, 0.01f), *sw = randf((size_t)N, 0.001f, 0.01f);
    int32_t *acc = dev_poisoned((size_t)M * N * 4);
    const double fl = 2.0 * M * (double)N * K;
    char sh[96];
    snprintf(sh, sizeof sh, "%s M=%d N=%d K=%d", label, M, N, K);
    double us16, us8, us8d, usi;
    TIME_US(us16, ake_cuda_gemm_run(g, 0, AKE_DT_F16, M, N, K, x16, w16, b16, NULL, y16, AKE_GEMM_BIAS));
    TIME_US(us8, ake_cuda_gemm_run_fp8(g, 0, AKE_DT_F16, M, N, K, x8, sx, w8, sw, b16, y16));
    TIME_US(us8d, ake_cuda_gemm_run_fp8(gd, 0, AKE_DT_F16, M, N, K, x8, sx, w8, sw, b16, y16));
    TIME_US(usi, ake_cuda_gemm_run_i8(g, 0, M, N, K, xi, wi, acc));
    printf("gemm8      %-34s fp16+bias %8.1f us %6.1f TF | fp8 %s %8.1f us %6.1f TF | fp8 dequant %8.1f us %6.1f TF "
           "| int8->int32 %8.1f us %6.1f TOP/s\n",
           sh, us16, fl / us16 * 1e-6,
           ake_cuda_gemm_fp8_shape_path(g, AKE_DT_F16, M, N, K, 1) == AKE_FP8_OUTER_VEC ? "outer-vec" : "(dequant)", us8,
           fl / us8 * 1e-6, us8d, fl / us8d * 1e-6, usi, fl / usi * 1e-6);
    void *bufs[] = {x16, w16, b16, y16, x8, w8, xi, wi, sx, sw, acc};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
}

/* Each 8-bit kernel alone at one model shape, against its byte floor. */
static void bench_quant_shape(const shape *s) {
    const int T = s->B * s->S, d = s->d, inter = s->inter;
    char sh[96];
    snprintf(sh, sizeof sh, "%s B=%d S=%d (T=%d)", s->name, s->B, s->S, T);
    const ake_dtype dt = AKE_DT_F16;
    void *x = rand16((size_t)T * d, 1.0f, dt), *res = rand16((size_t)T * d, 1.0f, dt), *y = rand16((size_t)T * d, 1.0f, dt);
    void *h = rand16((size_t)T * inter, 3.0f, dt), *h2 = dev_poisoned((size_t)T * inter * 2);
    void *acc_d = rand_i32((size_t)T * 3 * d, 30000), *acc_i = rand_i32((size_t)T * inter, 30000);
    float *rs = randf((size_t)T, 1e-5f, 1e-4f), *cs = randf((size_t)(3 * d > inter ? 3 * d : inter), 0.5f, 1.5f);
    float *bias = randf((size_t)(3 * d > inter ? 3 * d : inter), -0.1f, 0.1f);
    float *gam = randf((size_t)d, 0.5f, 1.5f), *bet = randf((size_t)d, -0.5f, 0.5f);
    void *q = dev_poisoned((size_t)T * inter), *qkv = dev_poisoned((size_t)T * 3 * d * 2);
    float *qs = dev_poisoned((size_t)T * 4), *sst = randf(1, 0.01f, 0.01f);
    const double Td = (double)T * d, Ti = (double)T * inter;
    const ake_dtype qdts[] = {AKE_DT_I8, AKE_DT_F8_E4M3};
    double us;
    for (int k = 0; k < 2; k++) {
        const ake_cuda_qout qo = {.qdt = qdts[k], .q = q, .scale = qs}, qst = {.qdt = qdts[k], .q = q, .scale = qs, .static_scale = sst};
        char op[32];
        snprintf(op, sizeof op, "q_rows_%s", qdts[k] == AKE_DT_I8 ? "i8" : "f8");
        TIME_US(us, ake_cuda_quantize_rows(0, qo, dt, x, T, d));
        report(op, sh, us, Td * (2 + 1) + T * 4.0, 0);
        snprintf(op, sizeof op, "q_rows_%s_st", qdts[k] == AKE_DT_I8 ? "i8" : "f8");
        TIME_US(us, ake_cuda_quantize_rows(0, qst, dt, x, T, d));
        report(op, sh, us, Td * (2 + 1) + T * 4.0, 0);
        /* LN: y f16 + res f16 -> out f16 (in place on res) + Q */
        const ake_cuda_gemm_result y16 = {.dt = dt, .y = y}, yi = {.dt = AKE_DT_I32, .y = acc_d, .row_scale = rs, .col_scale = cs, .bias = bias};
        snprintf(op, sizeof op, "ln_q_%s", qdts[k] == AKE_DT_I8 ? "i8" : "f8");
        TIME_US(us, ake_cuda_layernorm_quant(0, dt, res, res, y16, gam, bet, T, d, 1e-12f, qo));
        report(op, sh, us, Td * (2 + 2 + 2 + 1) + T * 4.0, 0);
        snprintf(op, sizeof op, "ln_q_%s_i32", qdts[k] == AKE_DT_I8 ? "i8" : "f8");
        TIME_US(us, ake_cuda_layernorm_quant(0, dt, res, res, yi, gam, bet, T, d, 1e-12f, qo));
        report(op, sh, us, Td * (4 + 2 + 2 + 1) + T * 8.0, 0);
        /* GELU: FFN1 output -> Q */
        const ake_cuda_gemm_result h16 = {.dt = dt, .y = h}, hi = {.dt = AKE_DT_I32, .y = acc_i, .row_scale = rs, .col_scale = cs, .bias = bias};
        snprintf(op, sizeof op, "gelu_q_%s", qdts[k] == AKE_DT_I8 ? "i8" : "f8");
        TIME_US(us, ake_cuda_gelu_quant(0, h16, T, inter, qo, dt, NULL));
        report(op, sh, us, Ti * (2 + 1) + T * 4.0, 0);
        snprintf(op, sizeof op, "gelu_q_%s_i32", qdts[k] == AKE_DT_I8 ? "i8" : "f8");
        TIME_US(us, ake_cuda_gelu_quant(0, hi, T, inter, qo, dt, NULL));
        report(op, sh, us, Ti * (4 + 1) + T * 8.0, 0);
    }
    const ake_cuda_qout none = {.qdt = AKE_DT_I8};
    const ake_cuda_gemm_result y16 = {.dt = dt, .y = y}, h16 = {.dt = dt, .y = h},
                               hi = {.dt = AKE_DT_I32, .y = acc_i, .row_scale = rs, .col_scale = cs, .bias = bias},
                               qkvi = {.dt = AKE_DT_I32, .y = acc_d, .row_scale = rs, .col_scale = cs, .bias = bias};
    TIME_US(us, ake_cuda_layernorm_quant(0, dt, res, res, y16, gam, bet, T, d, 1e-12f, none));
    report("ln_noq", sh, us, Td * 2 * 3, 0);
    TIME_US(us, ake_cuda_layernorm(0, dt, res, y, res, gam, bet, T, d, 1e-12f));
    report("add_ln", sh, us, Td * 2 * 3, 0);
    TIME_US(us, ake_cuda_gelu_quant(0, h16, T, inter, none, dt, h2));
    report("gelu_16", sh, us, Ti * 2 * 2, 0);
    TIME_US(us, ake_cuda_gelu_quant(0, hi, T, inter, none, dt, h2));
    report("gelu_i32_16", sh, us, Ti * (4 + 2) + T * 4.0, 0);
    TIME_US(us, ake_cuda_gelu(0, dt, h2, (size_t)T * inter));
    report("gelu", sh, us, Ti * 2 * 2, 0);
    TIME_US(us, ake_cuda_dequant_bias(0, dt, qkv, qkvi, T, 3 * d));
    report("dequant", sh, us, Td * 3 * (4 + 2) + T * 4.0, 0);
    void *bufs[] = {x, res, y, h, h2, acc_d, acc_i, rs, cs, bias, gam, bet, q, qkv, qs, sst};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
}

/* `kernels_bench fp16 8bit`: the 8-bit GEMM rates beside fp16 at 8192^3 and at the FFN shapes,
 * then each 8-bit kernel against its byte floor at MiniLM and bert-base B=128 S=128. */
static void bench_8bit(ake_cuda_gemm *g) {
    char err[256];
    ake_cuda_gemm *gd = NULL;
    if (ake_cuda_gemm_create(&gd, 1, err, sizeof err) != AKE_OK) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    ake_cuda_gemm_fp8_force_dequant(gd, 1);
    fflush(stdout);
    const ake_fp8_path path = ake_cuda_gemm_fp8_path(g);
    printf("FP8 path: %s\n", path == AKE_FP8_OUTER_VEC ? "cuBLASLt outer-vector scales + bias epilogue"
                             : path == AKE_FP8_DEQUANT ? "fp32 sums + dequant kernel"
                                                       : "none");
    if (path == AKE_FP8_NONE) {
        fprintf(stderr, "kernels_bench: no FP8 tensor cores here\n");
        exit(77);
    }
    bench_gemm8(g, gd, 8192, 8192, 8192, "square");
    bench_gemm8(g, gd, 16384, 3072, 768, "bert-base ffn1");
    bench_gemm8(g, gd, 16384, 768, 3072, "bert-base ffn2");
    bench_gemm8(g, gd, 16384, 2304, 768, "bert-base qkv");
    bench_gemm8(g, gd, 16384, 1536, 384, "minilm ffn1");
    bench_gemm8(g, gd, 16384, 384, 1536, "minilm ffn2");
    const shape shapes[] = {{"minilm", 128, 128, 384, 12, 1536}, {"bert-base", 128, 128, 768, 12, 3072}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) bench_quant_shape(&shapes[i]);
    ake_cuda_gemm_free(gd);
}

int main(int argc, char **argv) {
    if (ake_cuda_device_count() == 0) {
        fprintf(stderr, "kernels_bench: no CUDA GPU is visible\n");
        return 77;
    }
    const ake_dtype dt = argc > 1 && !strcmp(argv[1], "bf16") ? AKE_DT_BF16 : AKE_DT_F16;
    g_attention_only = argc > 2 && !strcmp(argv[2], "attention");
    attn_version = ake_cuda_tuning_from_env().attention;
    g_8bit = argc > 2 && !strcmp(argv[2], "8bit");
    rng_seed_from_env();
    struct cudaDeviceProp prop;
    GPU_CHECK(cudaGetDeviceProperties(&prop, 0));
    GPU_CHECK(cudaEventCreate(&ev0));
    GPU_CHECK(cudaEventCreate(&ev1));
    char err[256];
    ake_cuda_gemm *g = NULL;
    if (ake_cuda_gemm_create(&g, 1, err, sizeof err) != AKE_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* the two ceilings, measured: a 1 GiB device copy, an 8192^3 GEMM through our wrapper */
    const size_t big = (size_t)1 << 30;
    void *a = dev_poisoned(big), *c = dev_poisoned(big);
    GPU_CHECK(cudaMemset(a, 0x3c, big));
    double us;
    TIME_US(us, GPU_CHECK(cudaMemcpyAsync(c, a, big, cudaMemcpyDeviceToDevice, 0)));
    g_bw = 2.0 * big / (us * 1e-6);
    cudaFree(a), cudaFree(c);
    const int n = 8192;
    void *ga = rand16((size_t)n * n, 1.0f, dt), *gb = rand16((size_t)n * n, 1.0f, dt), *gc = dev_poisoned((size_t)n * n * 2);
    TIME_US(us, ake_cuda_gemm_run(g, 0, dt, n, n, n, ga, gb, NULL, NULL, gc, AKE_GEMM_PLAIN));
    g_flops = 2.0 * n * n * (double)n / (us * 1e-6);
    cudaFree(ga), cudaFree(gb), cudaFree(gc);
    printf("%s (%s): copy %.0f GB/s (read + written), %s GEMM 8192^3 %.0f TFLOP/s\n", prop.name, dt_name(dt),
           g_bw * 1e-9, dt_name(dt), g_flops * 1e-12);
    if (g_8bit) {
        bench_8bit(g);
        ake_cuda_gemm_free(g);
        return 0;
    }
    const shape shapes[] = {{"minilm", 1, 32, 384, 12, 1536},      {"minilm", 128, 128, 384, 12, 1536},
                            {"bert-base", 128, 128, 768, 12, 3072}, {"bert-base", 32, 512, 768, 12, 3072},
                            {"bert-large", 32, 512, 1024, 16, 4096}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) bench_shape(g, dt, &shapes[i]);
    ake_cuda_gemm_free(g);
    return 0;
}
