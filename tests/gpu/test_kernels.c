/* Every CUDA kernel family against a CPU reference, on fresh random inputs, with the
 * outputs poisoned (0xFF bytes = NaN) before each launch, over the sizes of the issue
 * (1, 7, 31, 64, 129, 511, 512 tokens and mixed batches), in fp16 and bf16.
 * Tolerance per element: |got - ref| <= atol + rtol * |ref|; an unwritten element stays
 * NaN and fails. Exit 1 on any mismatch, 77 when no GPU is visible (make test-gpu only).
 *
 *   build/tests/gpu/test_kernels            all families
 *   AKE_TEST_SEED=N build/tests/gpu/test_kernels   replay one run's inputs */
#include "gpu_util.h"

#include "engine/cuda/attention.cuh"
#include "engine/cuda/convert.cuh"
#include "engine/cuda/embed.cuh"
#include "engine/cuda/gelu.cuh"
#include "engine/cuda/gemm.cuh"
#include "engine/cuda/layernorm.cuh"
#include "engine/cuda/pool.cuh"
#include "engine/cuda/quant.cuh"
#include "engine/engine_impl.h"

static int g_checks, g_failures;

static const int32_t SIZES[] = {1, 7, 31, 64, 129, 511, 512};
enum { NSIZES = sizeof SIZES / sizeof SIZES[0] };

/* Compares n values (got may hold NaN from the poison); prints a line, counts a failure. */
static void expect_close(const char *what, const float *got, const float *ref, size_t n, float atol, float rtol) {
    size_t bad = 0, first = (size_t)-1;
    double max_err = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double err = fabs((double)got[i] - (double)ref[i]);
        if (!(err <= atol + rtol * fabs((double)ref[i]))) { /* NaN fails too */
            if (!bad) first = i;
            bad++;
        }
        if (err > max_err || isnan(err)) max_err = isnan(err) ? INFINITY : err;
    }
    g_checks++;
    if (bad) {
        g_failures++;
        printf("FAIL %s: %zu of %zu elements off (first at %zu: got %g, want %g), max |err| %g\n", what, bad, n, first,
               (double)got[first], (double)ref[first], max_err);
    } else {
        printf("ok   %-58s max |err| %.3g\n", what, max_err);
    }
}

static void expect_true(const char *what, int cond) {
    g_checks++;
    if (!cond) {
        g_failures++;
        printf("FAIL %s\n", what);
    }
}

/* Device 16-bit buffer -> floats. */
static float *fetch16(const void *d, size_t n, ake_dtype dt) {
    uint16_t *h = malloc(n * 2);
    float *f = malloc(n * sizeof *f);
    GPU_CHECK(cudaMemcpy(h, d, n * 2, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) f[i] = from16(h[i], dt);
    free(h);
    return f;
}

/* ---- GEMM: Y = X W^T + bias (+ R) ---------------------------------------------------- */

static void test_gemm(ake_cuda_gemm *g, ake_dtype dt, int M, int N, int K, int with_res) {
    const size_t nx = (size_t)M * K, nw = (size_t)N * K, ny = (size_t)M * N;
    uint16_t *hx = malloc(nx * 2), *hw = malloc(nw * 2), *hb = malloc((size_t)N * 2), *hr = malloc(ny * 2);
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc((size_t)N * 4), *r = malloc(ny * 4), *ref = malloc(ny * 4);
    const float ws = 1.0f / sqrtf((float)K); /* outputs of order 1 */
    fill16(hx, x, nx, -1.0f, 1.0f, dt);
    fill16(hw, w, nw, -ws, ws, dt);
    fill16(hb, b, (size_t)N, -0.5f, 0.5f, dt);
    fill16(hr, r, ny, -1.0f, 1.0f, dt);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = b[j] + (with_res ? r[(size_t)i * N + j] : 0.0f);
            for (int k = 0; k < K; k++) acc += (double)x[(size_t)i * K + k] * w[(size_t)j * K + k];
            ref[(size_t)i * N + j] = (float)acc;
        }
    void *dx = dev_copy(hx, nx * 2), *dw = dev_copy(hw, nw * 2), *db = dev_copy(hb, (size_t)N * 2);
    void *dr = with_res ? dev_copy(hr, ny * 2) : NULL, *dy = dev_poisoned(ny * 2);
    ake_cuda_gemm_run(g, 0, dt, M, N, K, dx, dw, db, dr, dy, AKE_GEMM_BIAS);
    GPU_CHECK(cudaDeviceSynchronize());
    float *got = fetch16(dy, ny, dt);
    char what[160];
    snprintf(what, sizeof what, "gemm %s M=%d N=%d K=%d%s", dt_name(dt), M, N, K, with_res ? " +res" : "");
    expect_close(what, got, ref, ny, dt == AKE_DT_F16 ? 4e-3f : 2e-2f, dt == AKE_DT_F16 ? 4e-3f : 1.6e-2f);
    free(got);
    cudaFree(dx), cudaFree(dw), cudaFree(db), cudaFree(dr), cudaFree(dy);
    free(hx), free(hw), free(hb), free(hr), free(x), free(w), free(b), free(r), free(ref);
}

/* ---- attention over a packed batch ---------------------------------------------------- */

static void test_attention(ake_dtype dt, int H, int D, const int32_t *lens, int n, float amp, const char *label) {
    int32_t *cu = malloc(((size_t)n + 1) * sizeof *cu);
    cu[0] = 0;
    for (int i = 0; i < n; i++) cu[i + 1] = cu[i] + lens[i];
    const int32_t T = cu[n], d = H * D;
    const size_t nq = (size_t)T * 3 * d, nc = (size_t)(T + 64) * d; /* 64 guard rows past T */
    uint16_t *hq = malloc(nq * 2);
    float *q = malloc(nq * 4), *ref = calloc(nc, 4);
    fill16(hq, q, nq, -amp, amp, dt);
    const double scale = 1.0 / sqrt((double)D);
    int32_t *seq_of = malloc((size_t)T * sizeof *seq_of);
    for (int s = 0; s < n; s++)
        for (int i = cu[s]; i < cu[s + 1]; i++) seq_of[i] = s;
#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < T; i++) {
        double p[512];
        const int s = seq_of[i], L = lens[s];
        for (int h = 0; h < H; h++) {
            double mx = -1e300, sum = 0.0;
            for (int j = 0; j < L; j++) {
                double dot = 0.0;
                for (int c = 0; c < D; c++)
                    dot += (double)q[(size_t)i * 3 * d + h * D + c] * q[(size_t)(cu[s] + j) * 3 * d + d + h * D + c];
                p[j] = dot * scale;
                if (p[j] > mx) mx = p[j];
            }
            for (int j = 0; j < L; j++) sum += (p[j] = exp(p[j] - mx));
            for (int c = 0; c < D; c++) {
                double o = 0.0;
                for (int j = 0; j < L; j++) o += p[j] * q[(size_t)(cu[s] + j) * 3 * d + 2 * d + h * D + c];
                ref[(size_t)i * d + h * D + c] = (float)(o / sum);
            }
        }
    }
    free(seq_of);
    const int max_tiles = ake_cuda_attention_max_tiles(T, n) + 3; /* spare blocks must exit */
    int32_t *tiles = malloc((size_t)max_tiles * 4 * sizeof *tiles);
    int32_t ntiles = ake_cuda_attention_tiles(cu, n, tiles);
    expect_true("attention tile count within ake_cuda_attention_max_tiles", ntiles <= max_tiles - 3);
    void *dq = dev_copy(hq, nq * 2), *dt_tiles = dev_copy(tiles, (size_t)max_tiles * 16);
    void *dn = dev_copy(&ntiles, sizeof ntiles), *dc = dev_poisoned(nc * 2);
    ake_cuda_attention(0, dt, dc, dq, dt_tiles, dn, max_tiles, H, D, 0);
    GPU_CHECK(cudaDeviceSynchronize());
    float *got = fetch16(dc, nc, dt);
    char what[200];
    snprintf(what, sizeof what, "attention %s H=%d D=%d %s (T=%d) amp %.1f", dt_name(dt), H, D, label, T, amp);
    expect_close(what, got, ref, (size_t)T * d, dt == AKE_DT_F16 ? 3e-3f : 1.5e-2f, dt == AKE_DT_F16 ? 1e-2f : 2e-2f);
    size_t touched = 0; /* the guard rows past T must still hold the poison */
    for (size_t i = (size_t)T * d; i < nc; i++) touched += !isnan(got[i]);
    snprintf(what, sizeof what, "attention %s %s writes no row past T", dt_name(dt), label);
    expect_true(what, touched == 0);
    free(got);
    cudaFree(dq), cudaFree(dt_tiles), cudaFree(dn), cudaFree(dc);
    free(cu), free(hq), free(q), free(ref), free(tiles);
}

/* ---- residual + LayerNorm, embeddings + LayerNorm -------------------------------------- */

static void ln_ref(float *out, const float *v, const float *g, const float *b, int d, float eps) {
    double mean = 0.0, var = 0.0;
    for (int c = 0; c < d; c++) mean += v[c];
    mean /= d;
    for (int c = 0; c < d; c++) var += (v[c] - mean) * (v[c] - mean);
    const double rstd = 1.0 / sqrt(var / d + eps);
    for (int c = 0; c < d; c++) out[c] = (float)((v[c] - mean) * rstd * g[c] + b[c]);
}

static void test_layernorm(ake_dtype dt, int rows, int d, int mode /* 0 plain, 1 residual, 2 residual in place */) {
    const size_t n = (size_t)rows * d;
    uint16_t *hx = malloc(n * 2), *hr = malloc(n * 2);
    float *x = malloc(n * 4), *r = malloc(n * 4), *ref = malloc(n * 4), *g = malloc((size_t)d * 4),
          *b = malloc((size_t)d * 4), *tmp = malloc((size_t)d * 4);
    fill16(hx, x, n, -2.0f, 3.0f, dt);
    fill16(hr, r, n, -2.0f, 2.0f, dt);
    for (int c = 0; c < d; c++) g[c] = rng_uniform(0.5f, 1.5f), b[c] = rng_uniform(-0.5f, 0.5f);
    for (int i = 0; i < rows; i++) {
        for (int c = 0; c < d; c++) tmp[c] = x[(size_t)i * d + c] + (mode ? r[(size_t)i * d + c] : 0.0f);
        ln_ref(ref + (size_t)i * d, tmp, g, b, d, 1e-12f);
    }
    void *dx = dev_copy(hx, n * 2), *dr = dev_copy(hr, n * 2), *dg = dev_copy(g, (size_t)d * 4),
         *db = dev_copy(b, (size_t)d * 4);
    void *dout = mode == 2 ? dr : dev_poisoned(n * 2);
    ake_cuda_layernorm(0, dt, dout, dx, mode ? dr : NULL, dg, db, rows, d, 1e-12f);
    GPU_CHECK(cudaDeviceSynchronize());
    float *got = fetch16(dout, n, dt);
    char what[160];
    static const char *modes[] = {"", " +res", " +res in place"};
    snprintf(what, sizeof what, "layernorm %s rows=%d d=%d%s", dt_name(dt), rows, d, modes[mode]);
    expect_close(what, got, ref, n, dt == AKE_DT_F16 ? 4e-3f : 3e-2f, dt == AKE_DT_F16 ? 2e-3f : 8e-3f);
    free(got);
    if (mode != 2) cudaFree(dout);
    cudaFree(dx), cudaFree(dr), cudaFree(dg), cudaFree(db);
    free(hx), free(hr), free(x), free(r), free(ref), free(g), free(b), free(tmp);
}

static void test_embed(ake_dtype dt, int rows, int d) {
    const int V = 1000, P = 512;
    uint16_t *hw = malloc((size_t)V * d * 2), *hp = malloc((size_t)P * d * 2), *ht = malloc((size_t)2 * d * 2);
    float *w = malloc((size_t)V * d * 4), *p = malloc((size_t)P * d * 4), *t = malloc((size_t)2 * d * 4);
    float *g = malloc((size_t)d * 4), *b = malloc((size_t)d * 4), *tmp = malloc((size_t)d * 4),
          *ref = malloc((size_t)rows * d * 4);
    int32_t *ids = malloc((size_t)rows * 4), *pos = malloc((size_t)rows * 4);
    fill16(hw, w, (size_t)V * d, -0.1f, 0.1f, dt);
    fill16(hp, p, (size_t)P * d, -0.1f, 0.1f, dt);
    fill16(ht, t, (size_t)2 * d, -0.1f, 0.1f, dt);
    for (int c = 0; c < d; c++) g[c] = rng_uniform(0.5f, 1.5f), b[c] = rng_uniform(-0.5f, 0.5f);
    for (int i = 0; i < rows; i++) {
        ids[i] = rng_int(0, V - 1), pos[i] = rng_int(0, P - 1);
        for (int c = 0; c < d; c++) tmp[c] = w[(size_t)ids[i] * d + c] + p[(size_t)pos[i] * d + c] + t[c];
        ln_ref(ref + (size_t)i * d, tmp, g, b, d, 1e-12f);
    }
    void *dw = dev_copy(hw, (size_t)V * d * 2), *dp = dev_copy(hp, (size_t)P * d * 2), *dtt = dev_copy(ht, (size_t)2 * d * 2);
    void *dg = dev_copy(g, (size_t)d * 4), *db = dev_copy(b, (size_t)d * 4), *di = dev_copy(ids, (size_t)rows * 4),
         *dpi = dev_copy(pos, (size_t)rows * 4), *dout = dev_poisoned((size_t)rows * d * 2);
    float *dout32 = dev_poisoned((size_t)rows * d * 4), *got32 = malloc((size_t)rows * d * 4);
    ake_cuda_embed_layernorm(0, dt, dout, dout32, di, dpi, dw, dp, dtt, dg, db, rows, d, 1e-12f);
    GPU_CHECK(cudaDeviceSynchronize());
    float *got = fetch16(dout, (size_t)rows * d, dt);
    GPU_CHECK(cudaMemcpy(got32, dout32, (size_t)rows * d * 4, cudaMemcpyDeviceToHost));
    char what[160];
    snprintf(what, sizeof what, "embed+layernorm %s rows=%d d=%d", dt_name(dt), rows, d);
    expect_close(what, got, ref, (size_t)rows * d, dt == AKE_DT_F16 ? 4e-3f : 3e-2f, dt == AKE_DT_F16 ? 2e-3f : 8e-3f);
    snprintf(what, sizeof what, "embed+layernorm %s rows=%d d=%d, fp32 copy", dt_name(dt), rows, d);
    expect_close(what, got32, ref, (size_t)rows * d, 1e-4f, 1e-4f);
    free(got);
    free(got32);
    cudaFree(dout32);
    cudaFree(dw), cudaFree(dp), cudaFree(dtt), cudaFree(dg), cudaFree(db), cudaFree(di), cudaFree(dpi), cudaFree(dout);
    free(hw), free(hp), free(ht), free(w), free(p), free(t), free(g), free(b), free(tmp), free(ref), free(ids), free(pos);
}

/* fp32 residual path: out = LN(in32 + bias32 + res32), written in dt and fp32 (in place on res32) */
static void test_layernorm_f32(ake_dtype dt, int rows, int d) {
    const size_t n = (size_t)rows * d;
    float *x = malloc(n * 4), *r = malloc(n * 4), *ref = malloc(n * 4), *g = malloc((size_t)d * 4),
          *b = malloc((size_t)d * 4), *bias = malloc((size_t)d * 4), *tmp = malloc((size_t)d * 4), *got32 = malloc(n * 4);
    for (size_t i = 0; i < n; i++) x[i] = rng_uniform(-2.0f, 3.0f), r[i] = rng_uniform(-2.0f, 2.0f);
    for (int c = 0; c < d; c++)
        g[c] = rng_uniform(0.5f, 1.5f), b[c] = rng_uniform(-0.5f, 0.5f), bias[c] = rng_uniform(-0.3f, 0.3f);
    for (int i = 0; i < rows; i++) {
        for (int c = 0; c < d; c++) tmp[c] = x[(size_t)i * d + c] + bias[c] + r[(size_t)i * d + c];
        ln_ref(ref + (size_t)i * d, tmp, g, b, d, 1e-12f);
    }
    float *dx = dev_copy(x, n * 4), *dr = dev_copy(r, n * 4), *dg = dev_copy(g, (size_t)d * 4),
          *db = dev_copy(b, (size_t)d * 4), *dbias = dev_copy(bias, (size_t)d * 4);
    void *dout = dev_poisoned(n * 2);
    ake_cuda_layernorm_f32(0, dt, dout, dr, dx, dbias, dr, dg, db, rows, d, 1e-12f);
    GPU_CHECK(cudaDeviceSynchronize());
    float *got = fetch16(dout, n, dt);
    GPU_CHECK(cudaMemcpy(got32, dr, n * 4, cudaMemcpyDeviceToHost));
    char what[160];
    snprintf(what, sizeof what, "layernorm fp32 residual %s rows=%d d=%d (dt copy)", dt_name(dt), rows, d);
    expect_close(what, got, ref, n, dt == AKE_DT_F16 ? 4e-3f : 3e-2f, dt == AKE_DT_F16 ? 2e-3f : 8e-3f);
    snprintf(what, sizeof what, "layernorm fp32 residual %s rows=%d d=%d (fp32, in place)", dt_name(dt), rows, d);
    expect_close(what, got32, ref, n, 1e-4f, 1e-4f);
    free(got);
    cudaFree(dx), cudaFree(dr), cudaFree(dg), cudaFree(db), cudaFree(dbias), cudaFree(dout);
    free(x), free(r), free(ref), free(g), free(b), free(bias), free(tmp), free(got32);
}

static void test_gemm_f32out(ake_cuda_gemm *g, ake_dtype dt, int M, int N, int K) {
    const size_t nx = (size_t)M * K, nw = (size_t)N * K, ny = (size_t)M * N;
    uint16_t *hx = malloc(nx * 2), *hw = malloc(nw * 2);
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *ref = malloc(ny * 4), *got = malloc(ny * 4);
    const float ws = 1.0f / sqrtf((float)K);
    fill16(hx, x, nx, -1.0f, 1.0f, dt);
    fill16(hw, w, nw, -ws, ws, dt);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++) acc += (double)x[(size_t)i * K + k] * w[(size_t)j * K + k];
            ref[(size_t)i * N + j] = (float)acc;
        }
    void *dx = dev_copy(hx, nx * 2), *dw = dev_copy(hw, nw * 2);
    float *dy = dev_poisoned(ny * 4);
    ake_cuda_gemm_run_f32out(g, 0, dt, M, N, K, dx, dw, dy);
    GPU_CHECK(cudaDeviceSynchronize());
    GPU_CHECK(cudaMemcpy(got, dy, ny * 4, cudaMemcpyDeviceToHost));
    char what[160];
    snprintf(what, sizeof what, "gemm %s -> fp32 M=%d N=%d K=%d", dt_name(dt), M, N, K);
    expect_close(what, got, ref, ny, 1e-4f, 1e-4f); /* exact products, fp32 sums */
    cudaFree(dx), cudaFree(dw), cudaFree(dy);
    free(hx), free(hw), free(x), free(w), free(ref), free(got);
}

/* Not a check: which GELU cuBLASLt's GELU_BIAS epilogue computes (it decides whether the
 * exact-GELU engine may use it). Y = gelu(X I^T + 0) on X in [-5, 5]. */
static void info_cublaslt_gelu(ake_cuda_gemm *g) {
    enum { M = 256, K = 16 };
    uint16_t hx[M * K], hw[K * K] = {0}, hb[K] = {0}, hy[M * K];
    float x[M * K];
    fill16(hx, x, M * K, -5.0f, 5.0f, AKE_DT_F16);
    for (int i = 0; i < K; i++) hw[i * K + i] = to16(1.0f, AKE_DT_F16);
    void *dx = dev_copy(hx, sizeof hx), *dw = dev_copy(hw, sizeof hw), *db = dev_copy(hb, sizeof hb),
         *dy = dev_poisoned(sizeof hy);
    ake_cuda_gemm_run(g, 0, AKE_DT_F16, M, K, K, dx, dw, db, NULL, dy, AKE_GEMM_BIAS_GELU_TANH);
    GPU_CHECK(cudaMemcpy(hy, dy, sizeof hy, cudaMemcpyDeviceToHost));
    /* on x in [-4, -1.5] the outputs are small (fp16 rounding ~1e-5) while the two GELUs
     * differ by up to 4.7e-4, so the errors there tell them apart */
    double e_erf = 0, e_tanh = 0;
    int n = 0;
    for (int i = 0; i < M * K; i++) {
        const double v = x[i], y = from16(hy[i], AKE_DT_F16);
        if (v < -4.0 || v > -1.5) continue;
        const double erf_g = 0.5 * v * (1 + erf(v / sqrt(2.0)));
        const double tanh_g = 0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
        e_erf = fmax(e_erf, fabs(y - erf_g)), e_tanh = fmax(e_tanh, fabs(y - tanh_g)), n++;
    }
    printf("info cuBLASLt GELU_BIAS epilogue on %d inputs in [-4, -1.5]: max |y - gelu_erf| %.2e, "
           "max |y - gelu_tanh| %.2e (fp16 out): it computes the %s GELU\n",
           n, e_erf, e_tanh, e_erf < e_tanh ? "exact (erf)" : "tanh-approximated");
    cudaFree(dx), cudaFree(dw), cudaFree(db), cudaFree(dy);
}

/* ---- exact GELU ---------------------------------------------------------------------------- */

static void test_gelu(ake_dtype dt, size_t n) {
    uint16_t *hh = malloc(n * 2);
    float *h = malloc(n * 4), *ref = malloc(n * 4);
    fill16(hh, h, n, -5.0f, 5.0f, dt);
    for (size_t i = 0; i < n; i++) ref[i] = (float)(0.5 * h[i] * (1.0 + erf(h[i] / sqrt(2.0))));
    void *dh = dev_copy(hh, n * 2);
    ake_cuda_gelu(0, dt, dh, n);
    GPU_CHECK(cudaDeviceSynchronize());
    float *got = fetch16(dh, n, dt);
    char what[160];
    snprintf(what, sizeof what, "gelu (erf) %s n=%zu", dt_name(dt), n);
    expect_close(what, got, ref, n, 1e-3f, dt == AKE_DT_F16 ? 1e-3f : 8e-3f);
    free(got);
    cudaFree(dh);
    free(hh), free(h), free(ref);
}

/* ---- pooling + normalize ----------------------------------------------------------------------- */

static void test_pool(ake_dtype dt, const int32_t *lens, int n, int d, int mode, int normalize, const char *label) {
    int32_t *cu = malloc(((size_t)n + 1) * 4);
    cu[0] = 0;
    for (int i = 0; i < n; i++) cu[i + 1] = cu[i] + lens[i];
    const size_t nx = (size_t)cu[n] * d;
    const int max_seqs = n + 2; /* two rows past n must stay untouched */
    uint16_t *hx = malloc(nx * 2);
    float *x = malloc(nx * 4), *ref = malloc((size_t)max_seqs * d * 4);
    fill16(hx, x, nx, -2.0f, 2.0f, dt);
    for (int s = 0; s < n; s++) {
        float *o = ref + (size_t)s * d;
        for (int c = 0; c < d; c++) {
            double v = x[(size_t)cu[s] * d + c];
            for (int t = cu[s] + 1; t < (mode == 1 ? cu[s] + 1 : cu[s + 1]); t++)
                v = mode == 2 ? fmax(v, x[(size_t)t * d + c]) : v + x[(size_t)t * d + c];
            o[c] = (float)(mode == 0 ? v / lens[s] : v);
        }
        if (normalize) {
            double ss = 0.0;
            for (int c = 0; c < d; c++) ss += (double)o[c] * o[c];
            for (int c = 0; c < d; c++) o[c] = (float)(o[c] / fmax(sqrt(ss), 1e-12));
        }
    }
    void *dx = dev_copy(hx, nx * 2), *dcu = dev_copy(cu, ((size_t)n + 1) * 4), *dn = dev_copy(&n, 4);
    float *dout = dev_poisoned((size_t)max_seqs * d * 4), *got = malloc((size_t)max_seqs * d * 4);
    void *dx32 = dev_copy(x, nx * 4);
    /* the fp32 input (res32 engines) must give the same vectors from the same values */
    ake_cuda_pool(0, AKE_DT_F32, dout, dx32, dcu, dn, max_seqs, d, mode, normalize);
    GPU_CHECK(cudaDeviceSynchronize());
    GPU_CHECK(cudaMemcpy(got, dout, (size_t)max_seqs * d * 4, cudaMemcpyDeviceToHost));
    char what32[160];
    snprintf(what32, sizeof what32, "pool fp32 input mode %d norm %d d=%d %s", mode, normalize, d, label);
    expect_close(what32, got, ref, (size_t)n * d, 1e-5f, 1e-4f);
    cudaFree(dx32);
    GPU_CHECK(cudaMemset(dout, 0xFF, (size_t)max_seqs * d * 4));
    ake_cuda_pool(0, dt, dout, dx, dcu, dn, max_seqs, d, mode, normalize);
    GPU_CHECK(cudaDeviceSynchronize());
    GPU_CHECK(cudaMemcpy(got, dout, (size_t)max_seqs * d * 4, cudaMemcpyDeviceToHost));
    static const char *modes[] = {"mean", "cls", "max"};
    char what[160];
    snprintf(what, sizeof what, "pool %s %s%s d=%d %s", dt_name(dt), modes[mode], normalize ? "+l2" : "", d, label);
    expect_close(what, got, ref, (size_t)n * d, 1e-5f, 1e-4f);
    size_t touched = 0;
    for (size_t i = (size_t)n * d; i < (size_t)max_seqs * d; i++) touched += !isnan(got[i]);
    snprintf(what, sizeof what, "pool %s skips sequences past n", label);
    expect_true(what, touched == 0);
    cudaFree(dx), cudaFree(dcu), cudaFree(dn), cudaFree(dout);
    free(cu), free(hx), free(x), free(ref), free(got);
}

/* ---- weight conversion ------------------------------------------------------------------------ */

static void test_convert(void) {
    const size_t n = 100003;
    float *src = malloc(n * 4);
    for (size_t i = 0; i < n; i++) src[i] = rng_uniform(-3.0f, 3.0f) * powf(10.0f, rng_uniform(-6.0f, 4.0f));
    src[0] = 65519.0f, src[1] = 1e-7f, src[2] = -0.0f; /* f16 edge cases: rounding near max, subnormal */
    void *ds = dev_copy(src, n * 4), *dd = dev_poisoned(n * 2);
    uint16_t *got = malloc(n * 2);
    const ake_dtype dts[] = {AKE_DT_F16, AKE_DT_BF16};
    for (int k = 0; k < 2; k++) {
        ake_cuda_convert(0, dts[k], dd, AKE_DT_F32, ds, n);
        GPU_CHECK(cudaMemcpy(got, dd, n * 2, cudaMemcpyDeviceToHost));
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) bad += got[i] != to16(src[i], dts[k]);
        char what[96];
        snprintf(what, sizeof what, "convert f32 -> %s bit-exact with base/half.h (%zu differ)", dt_name(dts[k]), bad);
        expect_true(what, bad == 0);
        if (!bad) printf("ok   %s\n", what);
    }
    cudaFree(ds), cudaFree(dd);
    free(src), free(got);
}

/* ---- 8-bit (W8A8) building blocks: quantizers, FP8 and INT8 GEMMs, dequantization -------- */
/* References: base/dtype.h's encoders (ake_f32_to_i8, ake_f32_to_e4m3, ake_e4m3_to_f32), with
 * the row scale as quant.cuh defines it, in fp32 as the kernels compute it. A code may differ
 * from the reference by one step only where the reference's x/s lies within float rounding
 * of the rounding boundary between the two codes (the kernel's x comes from its own fp32
 * arithmetic); those are counted and bounded, any other difference fails. */

static const char *q_name(ake_dtype qdt) { return qdt == AKE_DT_I8 ? "int8" : qdt == AKE_DT_F8_E4M3 ? "e4m3" : "none"; }
static float q_max(ake_dtype qdt) { return qdt == AKE_DT_I8 ? AKE_I8_QMAX : AKE_E4M3_QMAX; }
static uint8_t q_enc(float a, ake_dtype qdt) { return qdt == AKE_DT_I8 ? (uint8_t)ake_f32_to_i8(a) : ake_f32_to_e4m3(a); }
static float q_dec(uint8_t b, ake_dtype qdt) { return qdt == AKE_DT_I8 ? (float)(int8_t)b : ake_e4m3_to_f32(b); }
/* codes in value order (adjacent codes differ by 1; E4M3's -0 and +0 are both 0) */
static int q_ord(uint8_t b, ake_dtype qdt) { return qdt == AKE_DT_I8 ? (int)(int8_t)b : (b & 0x80) ? -(b & 0x7f) : b; }
/* a byte neither encoder produces: unwritten codes stay visible */
static int q_poison(ake_dtype qdt) { return qdt == AKE_DT_I8 ? 0x80 : 0x7f; }

/* Reference quantization of one row x[K]: returns its scale (dynamic unless sst > 0), fills
 * q[K] and arg[K] = x * (1/s), the value that was rounded. */
static float quant_row_ref(const float *x, int K, ake_dtype qdt, float sst, uint8_t *q, float *arg) {
    float amax = 0.0f;
    for (int k = 0; k < K; k++) amax = fmaxf(amax, fabsf(x[k]));
    const float s = sst > 0.0f ? sst : amax > 0.0f ? amax / q_max(qdt) : 1.0f;
    const float inv = 1.0f / s;
    for (int k = 0; k < K; k++) {
        arg[k] = x[k] * inv;
        q[k] = q_enc(arg[k], qdt);
    }
    return s;
}

/* Compares codes [rows, K] and scales [rows]; exact: no one-step difference allowed. */
static void expect_codes(const char *what, const uint8_t *got, const float *gs, const uint8_t *ref, const float *rs,
                         const float *arg, int rows, int K, ake_dtype qdt, int exact, float scale_rtol) {
    size_t bad = 0, boundary = 0, sat = 0, first = (size_t)-1, bad_s = 0;
    double max_dist = 0.0;
    const double qm = q_max(qdt);
    for (int r = 0; r < rows; r++)
        if (!(fabs((double)gs[r] - rs[r]) <= scale_rtol * fabs((double)rs[r]))) bad_s++;
    for (size_t i = 0; i < (size_t)rows * K; i++) {
        const int og = q_ord(got[i], qdt), orf = q_ord(ref[i], qdt);
        sat += fabs(q_dec(ref[i], qdt)) == qm;
        if (og == orf) continue;
        if (!exact && abs(og - orf) == 1 && got[i] != q_poison(qdt)) {
            const double mid = 0.5 * ((double)q_dec(got[i], qdt) + q_dec(ref[i], qdt)), a = arg[i];
            const double dist = fabs(a - mid);
            if (dist <= 4e-6 * qm + 4e-6 * fabs(a)) {
                boundary++;
                if (dist > max_dist) max_dist = dist;
                continue;
            }
        }
        if (!bad) first = i;
        bad++;
    }
    const size_t n = (size_t)rows * K, limit = n / 1000 + 2;
    g_checks++;
    if (bad || bad_s || boundary > limit) {
        g_failures++;
        printf("FAIL %s: %zu of %zu codes off", what, bad, n);
        if (bad) printf(" (first at %zu: got %d, want %d, x/s %.6g)", first, q_ord(got[first], qdt), q_ord(ref[first], qdt),
                        (double)arg[first]);
        printf(", %zu of %d scales off, %zu one-step at boundaries (limit %zu)\n", bad_s, rows, boundary, limit);
    } else {
        printf("ok   %-58s %zu one-step at boundaries (max |x/s - b| %.2g), %zu saturated\n", what, boundary, max_dist,
               sat);
    }
}

/* Compares got against ref with a bound per element (NaN fails). */
static void expect_within(const char *what, const float *got, const float *ref, const double *bound, size_t n) {
    size_t bad = 0, first = (size_t)-1;
    double worst = 0.0; /* max |err| / bound */
    for (size_t i = 0; i < n; i++) {
        const double err = fabs((double)got[i] - ref[i]);
        if (!(err <= bound[i])) {
            if (!bad) first = i;
            bad++;
        }
        if (err / bound[i] > worst || isnan(err)) worst = isnan(err) ? INFINITY : err / bound[i];
    }
    g_checks++;
    if (bad) {
        g_failures++;
        printf("FAIL %s: %zu of %zu elements off (first at %zu: got %g, want %g, bound %g)\n", what, bad, n, first,
               (double)got[first], (double)ref[first], bound[first]);
    } else {
        printf("ok   %-58s max |err|/bound %.3g\n", what, worst);
    }
}

static uint8_t *fetch8(const void *d, size_t n) {
    uint8_t *h = malloc(n ? n : 1);
    GPU_CHECK(cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost));
    return h;
}
static float *fetch32(const void *d, size_t n) {
    float *h = malloc((n ? n : 1) * 4);
    GPU_CHECK(cudaMemcpy(h, d, n * 4, cudaMemcpyDeviceToHost));
    return h;
}
static void *dev_filled(size_t bytes, int byte) {
    void *d = NULL;
    GPU_CHECK(cudaMalloc(&d, bytes ? bytes : 16));
    GPU_CHECK(cudaMemset(d, byte, bytes ? bytes : 16));
    return d;
}
/* Half an ulp of dt relative to the value (the output's own rounding). */
static double rel16(ake_dtype dt) { return dt == AKE_DT_F16 ? 0x1p-11 : 0x1p-8; }

/* ---- quantize_rows ---- */

static void test_quantize_rows(ake_dtype qdt, ake_dtype xdt, int M, int K, int stat) {
    const size_t n = (size_t)M * K, es = xdt == AKE_DT_F32 ? 4 : 2;
    float *x = malloc(n * 4), *arg = malloc(n * 4), *rs = malloc((size_t)M * 4);
    uint16_t *x16 = malloc(n * 2);
    uint8_t *ref = malloc(n);
    for (int r = 0; r < M; r++) {
        const float amp = powf(10.0f, rng_uniform(-2.0f, 2.0f)); /* rows of different magnitudes */
        for (int k = 0; k < K; k++) {
            const float v = (r == M / 2 && M > 2) ? 0.0f : rng_uniform(-amp, amp); /* one row of zeros */
            const size_t i = (size_t)r * K + k;
            if (xdt == AKE_DT_F32) x[i] = v;
            else x16[i] = to16(v, xdt), x[i] = from16(x16[i], xdt);
        }
    }
    float amax = 0.0f;
    for (size_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    const float sst = stat ? 0.6f * amax / q_max(qdt) : 0.0f; /* static: the largest values saturate */
    for (int r = 0; r < M; r++) rs[r] = quant_row_ref(x + (size_t)r * K, K, qdt, sst, ref + (size_t)r * K, arg + (size_t)r * K);
    void *dx = dev_copy(xdt == AKE_DT_F32 ? (void *)x : (void *)x16, n * es), *dq = dev_filled(n, q_poison(qdt));
    float *ds = dev_poisoned((size_t)M * 4), *dst = stat ? dev_copy(&sst, 4) : NULL;
    const ake_cuda_qout qo = {.qdt = qdt, .q = dq, .scale = ds, .static_scale = dst};
    ake_cuda_quantize_rows(0, qo, xdt, dx, M, K);
    GPU_CHECK(cudaDeviceSynchronize());
    uint8_t *got = fetch8(dq, n);
    float *gs = fetch32(ds, (size_t)M);
    char what[160];
    snprintf(what, sizeof what, "quantize_rows %s<-%s M=%d K=%d %s", q_name(qdt),
             xdt == AKE_DT_F32 ? "fp32" : dt_name(xdt), M, K, stat ? "static" : "dynamic");
    expect_codes(what, got, gs, ref, rs, arg, M, K, qdt, 1, 0.0f); /* same fp32 operations: bit-exact */
    free(got), free(gs);
    cudaFree(dx), cudaFree(dq), cudaFree(ds), cudaFree(dst);
    free(x), free(arg), free(rs), free(x16), free(ref);
}

/* ---- a GEMM result as the next kernel reads it: 16-bit y, or int32 sums + scales + bias ---- */

typedef struct {
    ake_dtype dt;                   /* F16, BF16 or I32 */
    int M, N;
    double *y;                      /* [M, N] the exact values (reference) */
    void *dy;                       /* device [M, N] of dt */
    float *drs, *dcs, *dbias;       /* device (I32 only; dbias may be NULL) */
    float *drz, *dws;               /* device (I32 with zero points only): row zero points, column code sums */
} gemm_result_data;

/* amp: |y| up to about amp; zero_row: row M/2 is all zeros (I32: acc zeros, y = bias). */
/* with_zero (I32): the sums are of asymmetric codes, y = (acc - z[m] wsum[n]) rs[m] cs[n] + b[n]. */
static gemm_result_data make_result_z(ake_dtype dt, int M, int N, float amp, int with_bias, int zero_row, int with_zero) {
    gemm_result_data r = {dt, M, N, malloc((size_t)M * N * sizeof(double)), NULL, NULL, NULL, NULL, NULL, NULL};
    const size_t n = (size_t)M * N;
    if (dt == AKE_DT_I32) {
        int32_t *acc = malloc(n * 4);
        float *rs = malloc((size_t)M * 4), *cs = malloc((size_t)N * 4), *b = malloc((size_t)N * 4);
        for (int m = 0; m < M; m++) rs[m] = rng_uniform(0.5f, 1.5f) * amp / 30000.0f;
        float *z = malloc((size_t)M * 4), *ws = malloc((size_t)N * 4);
        for (int c = 0; c < N; c++) cs[c] = rng_uniform(0.5f, 1.5f), b[c] = with_bias ? rng_uniform(-0.3f, 0.3f) : 0.0f;
        for (int m = 0; m < M; m++) z[m] = with_zero ? (float)rng_int(-128, 127) : 0.0f;
        for (int c = 0; c < N; c++) ws[c] = with_zero ? (float)rng_int(-200, 200) : 0.0f;
        for (int m = 0; m < M; m++)
            for (int c = 0; c < N; c++) {
                const size_t i = (size_t)m * N + c;
                /* zero row: acc = z wsum, so that y = bias */
                acc[i] = zero_row && m == M / 2 ? (int32_t)(z[m] * ws[c]) : rng_int(-30000, 30000);
                r.y[i] = ((double)acc[i] - (double)z[m] * ws[c]) * rs[m] * cs[c] + b[c];
            }
        r.dy = dev_copy(acc, n * 4), r.drs = dev_copy(rs, (size_t)M * 4), r.dcs = dev_copy(cs, (size_t)N * 4);
        r.dbias = with_bias ? dev_copy(b, (size_t)N * 4) : NULL;
        if (with_zero) r.drz = dev_copy(z, (size_t)M * 4), r.dws = dev_copy(ws, (size_t)N * 4);
        free(acc), free(rs), free(cs), free(b), free(z), free(ws);
    } else {
        uint16_t *h = malloc(n * 2);
        for (size_t i = 0; i < n; i++) {
            h[i] = to16(zero_row && (int)(i / N) == M / 2 ? 0.0f : rng_uniform(-amp, amp), dt);
            r.y[i] = from16(h[i], dt);
        }
        r.dy = dev_copy(h, n * 2);
        free(h);
    }
    return r;
}

static gemm_result_data make_result(ake_dtype dt, int M, int N, float amp, int with_bias, int zero_row) {
    return make_result_z(dt, M, N, amp, with_bias, zero_row, 0);
}

static ake_cuda_gemm_result result_desc(const gemm_result_data *r) {
    ake_cuda_gemm_result d = {r->dt, r->dy, r->drs, r->dcs, r->dbias, r->drz, r->dws};
    return d;
}

static void free_result(gemm_result_data *r) {
    free(r->y);
    cudaFree(r->dy), cudaFree(r->drs), cudaFree(r->dcs), cudaFree(r->dbias), cudaFree(r->drz), cudaFree(r->dws);
}

static const char *res_name(ake_dtype dt) { return dt == AKE_DT_I32 ? "int32" : dt_name(dt); }

/* ---- GELU (+ quantize) ---- */

static void test_gelu_quant(ake_dtype ydt, ake_dtype qdt /* AKE_DT_F16/BF16: no Q, h of that type */, int M, int N,
                            int stat) {
    const size_t n = (size_t)M * N;
    gemm_result_data y = make_result(ydt, M, N, 5.0f, M % 2 == 1, M > 2);
    float *h = malloc(n * 4);
    for (size_t i = 0; i < n; i++) h[i] = (float)(0.5 * y.y[i] * (1.0 + erf(y.y[i] / sqrt(2.0))));
    const int quant = qdt == AKE_DT_I8 || qdt == AKE_DT_F8_E4M3;
    char what[160];
    snprintf(what, sizeof what, "gelu_quant %s->%s M=%d N=%d%s", res_name(ydt), quant ? q_name(qdt) : dt_name(qdt), M,
             N, quant ? (stat ? " static" : " dynamic") : "");
    if (quant) {
        float *arg = malloc(n * 4), *rs = malloc((size_t)M * 4), amax = 0.0f;
        uint8_t *ref = malloc(n);
        for (size_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(h[i]));
        const float sst = stat ? 0.6f * amax / q_max(qdt) : 0.0f;
        for (int r = 0; r < M; r++)
            rs[r] = quant_row_ref(h + (size_t)r * N, N, qdt, sst, ref + (size_t)r * N, arg + (size_t)r * N);
        void *dq = dev_filled(n, q_poison(qdt));
        float *ds = dev_poisoned((size_t)M * 4), *dst = stat ? dev_copy(&sst, 4) : NULL;
        const ake_cuda_qout qo = {.qdt = qdt, .q = dq, .scale = ds, .static_scale = dst};
        ake_cuda_gelu_quant(0, result_desc(&y), M, N, qo, AKE_DT_F16, NULL);
        GPU_CHECK(cudaDeviceSynchronize());
        uint8_t *got = fetch8(dq, n);
        float *gs = fetch32(ds, (size_t)M);
        expect_codes(what, got, gs, ref, rs, arg, M, N, qdt, 0, stat ? 0.0f : 2e-6f);
        free(got), free(gs), free(arg), free(rs), free(ref);
        cudaFree(dq), cudaFree(ds), cudaFree(dst);
    } else {
        const ake_cuda_qout none = {.qdt = AKE_DT_I8};
        void *dh = dev_poisoned(n * 2);
        ake_cuda_gelu_quant(0, result_desc(&y), M, N, none, qdt, dh);
        GPU_CHECK(cudaDeviceSynchronize());
        float *got = fetch16(dh, n, qdt);
        expect_close(what, got, h, n, 1e-3f, qdt == AKE_DT_F16 ? 1e-3f : 8e-3f);
        free(got);
        cudaFree(dh);
    }
    free(h);
    free_result(&y);
}

/* ---- residual + LayerNorm (+ quantize) ---- */

static void test_layernorm_quant(ake_dtype dt, ake_dtype ydt, ake_dtype qdt /* AKE_DT_F32: no Q */, int rows, int d,
                                 int stat, int in_place) {
    const size_t n = (size_t)rows * d;
    gemm_result_data y = make_result(ydt, rows, d, 3.0f, 1, 0);
    uint16_t *hr = malloc(n * 2);
    float *r = malloc(n * 4), *ref = malloc(n * 4), *g = malloc((size_t)d * 4), *b = malloc((size_t)d * 4),
          *tmp = malloc((size_t)d * 4);
    fill16(hr, r, n, -2.0f, 2.0f, dt);
    for (int c = 0; c < d; c++) g[c] = rng_uniform(0.5f, 1.5f), b[c] = rng_uniform(-0.5f, 0.5f);
    for (int i = 0; i < rows; i++) {
        for (int c = 0; c < d; c++) tmp[c] = (float)(y.y[(size_t)i * d + c] + r[(size_t)i * d + c]);
        ln_ref(ref + (size_t)i * d, tmp, g, b, d, 1e-12f);
    }
    const int quant = qdt != AKE_DT_F32;
    void *dr = dev_copy(hr, n * 2), *dg = dev_copy(g, (size_t)d * 4), *db = dev_copy(b, (size_t)d * 4);
    void *dout = in_place ? dr : dev_poisoned(n * 2), *dq = quant ? dev_filled(n, q_poison(qdt)) : NULL;
    float amax = 0.0f;
    for (size_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(ref[i]));
    const float sst = quant && stat ? 0.6f * amax / q_max(qdt) : 0.0f;
    float *ds = quant ? dev_poisoned((size_t)rows * 4) : NULL, *dst = sst > 0.0f ? dev_copy(&sst, 4) : NULL;
    const ake_cuda_qout qo = {.qdt = quant ? qdt : AKE_DT_I8, .q = dq, .scale = ds, .static_scale = dst};
    ake_cuda_layernorm_quant(0, dt, dout, dr, result_desc(&y), dg, db, rows, d, 1e-12f, qo);
    GPU_CHECK(cudaDeviceSynchronize());
    float *got = fetch16(dout, n, dt);
    char what[160];
    snprintf(what, sizeof what, "layernorm_quant %s y %s -> %s rows=%d d=%d%s%s", dt_name(dt), res_name(ydt),
             quant ? q_name(qdt) : "none", rows, d, quant ? (stat ? " static" : " dynamic") : "",
             in_place ? " in place" : "");
    expect_close(what, got, ref, n, dt == AKE_DT_F16 ? 4e-3f : 3e-2f, dt == AKE_DT_F16 ? 2e-3f : 8e-3f);
    if (quant) {
        float *arg = malloc(n * 4), *rs = malloc((size_t)rows * 4);
        uint8_t *qref = malloc(n);
        for (int i = 0; i < rows; i++)
            rs[i] = quant_row_ref(ref + (size_t)i * d, d, qdt, sst, qref + (size_t)i * d, arg + (size_t)i * d);
        uint8_t *qg = fetch8(dq, n);
        float *gs = fetch32(ds, (size_t)rows);
        snprintf(what, sizeof what, "layernorm_quant %s y %s -> %s rows=%d d=%d, codes", dt_name(dt), res_name(ydt),
                 q_name(qdt), rows, d);
        expect_codes(what, qg, gs, qref, rs, arg, rows, d, qdt, 0, stat ? 0.0f : 1e-5f);
        free(arg), free(rs), free(qref), free(qg), free(gs);
    }
    free(got);
    if (!in_place) cudaFree(dout);
    cudaFree(dr), cudaFree(dg), cudaFree(db), cudaFree(dq), cudaFree(ds), cudaFree(dst);
    free(hr), free(r), free(ref), free(g), free(b), free(tmp);
    free_result(&y);
}

/* ---- the input transforms of quant.cuh: SmoothQuant factors, Hadamard rotation, zero points ---- */

/* Reference of quant.cuh for one row x[K] (modified in place into x'): x' = (x * cm) H_rot,
 * then symmetric (static sst > 0 or dynamic absmax) or, when asym, dynamic asymmetric INT8 codes
 * as the CPU engine's quantize_row. arg[k]: the value that was rounded, plus the zero point (so
 * that a one-step difference at a rounding boundary is recognized as in expect_codes). */
static float quant_row_ref_t(float *x, int K, ake_dtype qdt, float sst, const float *cm, int rot, int asym,
                             uint8_t *q, float *arg, float *zp) {
    if (cm)
        for (int k = 0; k < K; k++) x[k] *= cm[k];
    if (rot > 1) ake_hadamard_rows(x, 1, K, rot);
    *zp = 0.0f;
    if (!asym) return quant_row_ref(x, K, qdt, sst, q, arg);
    float mn = 0.0f, mx = 0.0f;
    for (int k = 0; k < K; k++) mn = fminf(mn, x[k]), mx = fmaxf(mx, x[k]);
    const float s = mx > mn ? (mx - mn) / 255.0f : 1.0f, z = -128.0f - rintf(mn / s), inv = 1.0f / s;
    for (int k = 0; k < K; k++) {
        arg[k] = x[k] * inv + z;
        const float r = fminf(127.0f, fmaxf(-128.0f, rintf(x[k] * inv) + z));
        q[k] = (uint8_t)(int8_t)r;
    }
    *zp = z;
    return s;
}

enum { TQ_ROWS, TQ_GELU, TQ_LN };

/* One kernel (quantize_rows from F16, gelu_quant or layernorm_quant from an INT32 result with
 * zero points, or from F16) with the transforms on: col_mul (smooth), rotation block rot, and
 * dynamic asymmetric INT8 (asym) or symmetric static/dynamic codes. */
static void test_quant_transform(int kind, ake_dtype qdt, int M, int K, int stat, int asym, int rot, int smooth) {
    const size_t n = (size_t)M * K;
    float *x = malloc(n * 4), *cm = smooth ? malloc((size_t)K * 4) : NULL;
    for (int k = 0; k < K && cm; k++) cm[k] = powf(2.0f, rng_uniform(-2.0f, 2.0f));
    gemm_result_data y = {0};
    void *dx = NULL, *dr = NULL, *dout = NULL, *dg = NULL, *db = NULL;
    if (kind == TQ_ROWS) {
        uint16_t *h = malloc(n * 2);
        fill16(h, x, n, -3.0f, 3.0f, AKE_DT_F16);
        if (M > 2) /* a zero row (not the only row: a static scale from it would be 0) */
            for (int k = 0; k < K; k++) x[(size_t)(M / 2) * K + k] = 0.0f, h[(size_t)(M / 2) * K + k] = 0;
        dx = dev_copy(h, n * 2);
        free(h);
    } else {
        const ake_dtype ydt = M % 2 ? AKE_DT_I32 : AKE_DT_F16;
        y = make_result_z(ydt, M, K, 4.0f, 1, 0, ydt == AKE_DT_I32);
        if (kind == TQ_GELU) {
            for (size_t i = 0; i < n; i++) x[i] = (float)(0.5 * y.y[i] * (1.0 + erf(y.y[i] / sqrt(2.0))));
        } else {
            uint16_t *hr = malloc(n * 2);
            float *r = malloc(n * 4), *g = malloc((size_t)K * 4), *b = malloc((size_t)K * 4), *tmp = malloc((size_t)K * 4);
            fill16(hr, r, n, -2.0f, 2.0f, AKE_DT_F16);
            for (int c = 0; c < K; c++) g[c] = rng_uniform(0.5f, 1.5f), b[c] = rng_uniform(-0.5f, 0.5f);
            for (int i = 0; i < M; i++) {
                for (int c = 0; c < K; c++) tmp[c] = (float)(y.y[(size_t)i * K + c] + r[(size_t)i * K + c]);
                ln_ref(x + (size_t)i * K, tmp, g, b, K, 1e-12f);
            }
            dr = dev_copy(hr, n * 2), dg = dev_copy(g, (size_t)K * 4), db = dev_copy(b, (size_t)K * 4);
            dout = dev_poisoned(n * 2);
            free(hr), free(r), free(g), free(b), free(tmp);
        }
    }
    /* static scale: from the transformed values, so that the largest ones saturate */
    float *xt = malloc(n * 4), amax = 0.0f;
    memcpy(xt, x, n * 4);
    for (int r = 0; r < M; r++) {
        if (cm) for (int k = 0; k < K; k++) xt[(size_t)r * K + k] *= cm[k];
        if (rot > 1) ake_hadamard_rows(xt + (size_t)r * K, 1, K, rot);
    }
    for (size_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(xt[i]));
    const float sst = stat ? 0.6f * amax / q_max(qdt) : 0.0f;
    float *arg = malloc(n * 4), *rs = malloc((size_t)M * 4), *rz = malloc((size_t)M * 4);
    uint8_t *ref = malloc(n);
    for (int r = 0; r < M; r++)
        rs[r] = quant_row_ref_t(x + (size_t)r * K, K, qdt, sst, cm, rot, asym, ref + (size_t)r * K, arg + (size_t)r * K,
                                rz + r);
    void *dq = dev_filled(n, q_poison(qdt));
    float *ds = dev_poisoned((size_t)M * 4), *dz = asym ? dev_poisoned((size_t)M * 4) : NULL;
    float *dst = stat ? dev_copy(&sst, 4) : NULL, *dcm = cm ? dev_copy(cm, (size_t)K * 4) : NULL;
    const ake_cuda_qout qo = {qdt, dq, ds, dst, dz, dcm, rot};
    if (kind == TQ_ROWS) ake_cuda_quantize_rows(0, qo, AKE_DT_F16, dx, M, K);
    else if (kind == TQ_GELU) ake_cuda_gelu_quant(0, result_desc(&y), M, K, qo, AKE_DT_F16, NULL);
    else ake_cuda_layernorm_quant(0, AKE_DT_F16, dout, dr, result_desc(&y), dg, db, M, K, 1e-12f, qo);
    GPU_CHECK(cudaDeviceSynchronize());
    uint8_t *got = fetch8(dq, n);
    float *gs = fetch32(ds, (size_t)M), *gz = asym ? fetch32(dz, (size_t)M) : NULL;
    static const char *kinds[] = {"quantize_rows f16", "gelu_quant", "layernorm_quant"};
    char what[200];
    snprintf(what, sizeof what, "%s%s -> %s M=%d K=%d %s%s rot %d", kinds[kind],
             kind == TQ_ROWS ? "" : M % 2 ? " (int32 + zero points)" : " (f16)", q_name(qdt), M, K,
             stat ? "static" : asym ? "asymmetric" : "dynamic", smooth ? " smooth" : "", rot);
    /* LayerNorm's and GELU's fp32 differ from the reference's within float rounding; the
     * rotation sums in another order: codes one step apart at boundaries, scales within 1e-5 */
    expect_codes(what, got, gs, ref, rs, arg, M, K, qdt, 0, stat ? 0.0f : 1e-5f);
    if (asym) {
        size_t off = 0;
        for (int r = 0; r < M; r++) off += fabsf(gz[r] - rz[r]) > (gs[r] == rs[r] ? 0.0f : 1.0f);
        snprintf(what, sizeof what, "%s%s M=%d K=%d rot %d: zero points (%zu off)", kinds[kind],
                 kind == TQ_ROWS ? "" : M % 2 ? " (int32 + zero points)" : " (f16)", M, K, rot, off);
        expect_true(what, off == 0);
        if (!off) printf("ok   %s\n", what);
    }
    free(got), free(gs), free(gz), free(arg), free(rs), free(rz), free(ref), free(x), free(xt), free(cm);
    cudaFree(dq), cudaFree(ds), cudaFree(dz), cudaFree(dst), cudaFree(dcm), cudaFree(dx), cudaFree(dr);
    cudaFree(dout), cudaFree(dg), cudaFree(db);
    if (kind != TQ_ROWS) free_result(&y);
}

/* Dequantization of asymmetric sums: y = (acc - z wsum) rs cs + b, to F16. */
static void test_dequant_zero(int M, int N) {
    gemm_result_data y = make_result_z(AKE_DT_I32, M, N, 4.0f, 1, 1, 1);
    const size_t n = (size_t)M * N;
    float *ref = malloc(n * 4);
    double *bound = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) ref[i] = (float)y.y[i], bound[i] = rel16(AKE_DT_F16) * fabs(y.y[i]) + 2e-5 * 4.0 + 1e-6;
    void *dy = dev_poisoned(n * 2);
    ake_cuda_dequant_bias(0, AKE_DT_F16, dy, result_desc(&y), M, N);
    GPU_CHECK(cudaDeviceSynchronize());
    float *got = fetch16(dy, n, AKE_DT_F16);
    char what[160];
    snprintf(what, sizeof what, "dequant_bias int32 + zero points -> f16 M=%d N=%d", M, N);
    expect_within(what, got, ref, bound, n);
    free(got), free(ref), free(bound);
    cudaFree(dy);
    free_result(&y);
}

/* The 8-bit word table: embed + LayerNorm reading codes and a scale per row. */
static void test_embed_q8(ake_dtype qdt, int rows, int d) {
    const int V = 1000, P = 512;
    uint16_t *hp = malloc((size_t)P * d * 2), *ht = malloc((size_t)2 * d * 2);
    float *w = malloc((size_t)V * d * 4), *wd = malloc((size_t)V * d * 4), *sc = malloc((size_t)V * 4);
    float *p = malloc((size_t)P * d * 4), *t = malloc((size_t)2 * d * 4);
    float *g = malloc((size_t)d * 4), *b = malloc((size_t)d * 4), *tmp = malloc((size_t)d * 4),
          *ref = malloc((size_t)rows * d * 4);
    uint8_t *wq = malloc((size_t)V * d);
    int32_t *ids = malloc((size_t)rows * 4), *pos = malloc((size_t)rows * 4);
    for (size_t i = 0; i < (size_t)V * d; i++) w[i] = rng_uniform(-0.1f, 0.1f);
    ake_quantize_rows(w, V, d, qdt, q_max(qdt), wq, sc);
    ake_dequantize_rows(wq, qdt, sc, V, d, wd);
    fill16(hp, p, (size_t)P * d, -0.1f, 0.1f, AKE_DT_F16);
    fill16(ht, t, (size_t)2 * d, -0.1f, 0.1f, AKE_DT_F16);
    for (int c = 0; c < d; c++) g[c] = rng_uniform(0.5f, 1.5f), b[c] = rng_uniform(-0.5f, 0.5f);
    for (int i = 0; i < rows; i++) {
        ids[i] = rng_int(0, V - 1), pos[i] = rng_int(0, P - 1);
        for (int c = 0; c < d; c++) tmp[c] = wd[(size_t)ids[i] * d + c] + p[(size_t)pos[i] * d + c] + t[c];
        ln_ref(ref + (size_t)i * d, tmp, g, b, d, 1e-12f);
    }
    void *dw = dev_copy(wq, (size_t)V * d), *dsc = dev_copy(sc, (size_t)V * 4), *dp = dev_copy(hp, (size_t)P * d * 2),
         *dtt = dev_copy(ht, (size_t)2 * d * 2), *dg = dev_copy(g, (size_t)d * 4), *db = dev_copy(b, (size_t)d * 4),
         *di = dev_copy(ids, (size_t)rows * 4), *dpi = dev_copy(pos, (size_t)rows * 4),
         *dout = dev_poisoned((size_t)rows * d * 2);
    ake_cuda_embed_layernorm_q8(0, AKE_DT_F16, dout, di, dpi, qdt, dw, dsc, dp, dtt, dg, db, rows, d, 1e-12f);
    GPU_CHECK(cudaDeviceSynchronize());
    float *got = fetch16(dout, (size_t)rows * d, AKE_DT_F16);
    char what[160];
    snprintf(what, sizeof what, "embed+layernorm %s word table rows=%d d=%d", q_name(qdt), rows, d);
    expect_close(what, got, ref, (size_t)rows * d, 4e-3f, 2e-3f);
    free(got);
    cudaFree(dw), cudaFree(dsc), cudaFree(dp), cudaFree(dtt), cudaFree(dg), cudaFree(db), cudaFree(di), cudaFree(dpi),
        cudaFree(dout);
    free(hp), free(ht), free(w), free(wd), free(sc), free(p), free(t), free(g), free(b), free(tmp), free(ref), free(wq),
        free(ids), free(pos);
}

static void test_transforms(void) {
    static const int Ms[] = {1, 7, 129, 512};
    for (int i = 0; i < 4; i++) {
        const int M = Ms[i];
        /* MiniLM (384: blocks of 128), bert-base (768: 256), bert-large (1024: 512, across a lane's chunks) */
        test_quant_transform(TQ_ROWS, AKE_DT_I8, M, 384, 0, 1, 128, 0);
        test_quant_transform(TQ_ROWS, AKE_DT_I8, M, 768, 1, 0, 256, 1);
        test_quant_transform(TQ_ROWS, AKE_DT_F8_E4M3, M, 1024, 0, 0, 512, 1);
        test_quant_transform(TQ_ROWS, AKE_DT_I8, M, 1536, 0, 1, 512, 1); /* a group of 64 threads */
        test_quant_transform(TQ_ROWS, AKE_DT_I8, M, 384, 0, 1, 4, 0);    /* a block inside a chunk */
        test_quant_transform(TQ_GELU, AKE_DT_I8, M, 1536, 0, 1, 512, 0);
        test_quant_transform(TQ_GELU, AKE_DT_I8, M, 3072, 1, 0, 512, 1); /* 128 threads */
        test_quant_transform(TQ_GELU, AKE_DT_F8_E4M3, M, 4096, 0, 0, 512, 0);
        test_quant_transform(TQ_LN, AKE_DT_I8, M, 384, 0, 1, 128, 0);
        test_quant_transform(TQ_LN, AKE_DT_I8, M, 768, 1, 0, 256, 1);
        test_quant_transform(TQ_LN, AKE_DT_F8_E4M3, M, 1024, 0, 0, 512, 1);
        test_quant_transform(TQ_LN, AKE_DT_I8, M, 1024, 0, 1, 16, 0);
        test_dequant_zero(M, 1152);
        test_embed_q8(AKE_DT_I8, M, 384);
        test_embed_q8(AKE_DT_F8_E4M3, M, 768);
    }
}

/* ---- 8-bit GEMMs ---- */

/* X [M, K] and W [N, K] quantized by the reference: X's rows with different magnitudes, row
 * M/2 all zeros (M > 2), dynamic per-row scales, or one static scale for all rows (the
 * largest values saturate); W per output channel. */
typedef struct {
    int M, N, K;
    uint8_t *xq, *wq; /* [M, K], [N, K] codes */
    float *sx, *sw;   /* [M], [N] */
    float *xd, *wd;   /* decoded codes (exact), [M, K], [N, K] */
} quant_operands;

static quant_operands make_operands(ake_dtype qdt, int M, int N, int K, int stat) {
    quant_operands o = {M, N, K, malloc((size_t)M * K), malloc((size_t)N * K), malloc((size_t)M * 4),
                        malloc((size_t)N * 4), malloc((size_t)M * K * 4), malloc((size_t)N * K * 4)};
    float *row = malloc((size_t)K * 4), *arg = malloc((size_t)K * 4);
    const float sst = stat ? 0.6f * 2.0f / q_max(qdt) : 0.0f; /* rows reach |x| = 2 below */
    for (int m = 0; m < M; m++) {
        const float amp = stat ? 2.0f : powf(10.0f, rng_uniform(-1.0f, 1.0f));
        for (int k = 0; k < K; k++) row[k] = (m == M / 2 && M > 2) ? 0.0f : rng_uniform(-amp, amp);
        o.sx[m] = quant_row_ref(row, K, qdt, sst, o.xq + (size_t)m * K, arg);
    }
    for (int c = 0; c < N; c++) {
        const float amp = rng_uniform(0.5f, 2.0f) / sqrtf((float)K);
        for (int k = 0; k < K; k++) row[k] = rng_uniform(-amp, amp);
        o.sw[c] = quant_row_ref(row, K, qdt, 0.0f, o.wq + (size_t)c * K, arg);
    }
    for (size_t i = 0; i < (size_t)M * K; i++) o.xd[i] = q_dec(o.xq[i], qdt);
    for (size_t i = 0; i < (size_t)N * K; i++) o.wd[i] = q_dec(o.wq[i], qdt);
    free(row), free(arg);
    return o;
}

static void free_operands(quant_operands *o) { free(o->xq), free(o->wq), free(o->sx), free(o->sw), free(o->xd), free(o->wd); }

/* FP8: Y = sx sw (Xq Wq^T) + bias, on the given handle's path, F16 and BF16 outputs, one row
 * of poison past M must stay untouched. Bound per element: the output's rounding plus 2^-11
 * of the sum of |terms| (fp32 accumulation on FP8 tensor cores, cuBLASLt's precise mode). */
static void test_gemm_fp8(ake_cuda_gemm *g, int M, int N, int K, int stat, int with_bias) {
    quant_operands o = make_operands(AKE_DT_F8_E4M3, M, N, K, stat);
    const size_t ny = (size_t)M * N;
    double *acc = malloc(ny * sizeof(double)), *mag = malloc(ny * sizeof(double)), *bound = malloc(ny * sizeof(double));
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++)
        for (int c = 0; c < N; c++) {
            double s = 0.0, a = 0.0;
            const float *xr = o.xd + (size_t)m * K, *wr = o.wd + (size_t)c * K;
            for (int k = 0; k < K; k++) {
                const double p = (double)(xr[k] * wr[k]); /* exact: two E4M3 values */
                s += p, a += fabs(p);
            }
            acc[(size_t)m * N + c] = s * o.sx[m] * o.sw[c];
            mag[(size_t)m * N + c] = a * o.sx[m] * o.sw[c];
        }
    void *dx = dev_copy(o.xq, (size_t)M * K), *dw = dev_copy(o.wq, (size_t)N * K);
    float *dsx = dev_copy(o.sx, (size_t)M * 4), *dsw = dev_copy(o.sw, (size_t)N * 4), *ref = malloc(ny * 4);
    const ake_dtype dts[] = {AKE_DT_F16, AKE_DT_BF16};
    for (int t = 0; t < 2; t++) {
        const ake_dtype dt = dts[t];
        uint16_t *hb = malloc((size_t)N * 2);
        float *b = malloc((size_t)N * 4);
        fill16(hb, b, (size_t)N, -0.5f, 0.5f, dt);
        for (size_t i = 0; i < ny; i++) {
            const double r = acc[i] + (with_bias ? b[i % N] : 0.0f);
            ref[i] = (float)r;
            bound[i] = rel16(dt) * fabs(r) + 0x1p-11 * mag[i] + 1e-7;
        }
        void *db = with_bias ? dev_copy(hb, (size_t)N * 2) : NULL, *dy = dev_poisoned((ny + N) * 2);
        const int deq = ake_cuda_gemm_fp8_shape_path(g, dt, M, N, K, with_bias) == AKE_FP8_DEQUANT;
        const char *path = deq ? "dequant" : "outer-vec";
        if (deq && ake_cuda_gemm_fp8_path(g) == AKE_FP8_OUTER_VEC)
            printf("info FP8 %s M=%d N=%d K=%d%s: no outer-vector algorithm, dequant path\n", dt_name(dt), M, N, K,
                   with_bias ? " +bias" : "");
        ake_cuda_gemm_run_fp8(g, 0, dt, M, N, K, dx, dsx, dw, dsw, db, dy);
        GPU_CHECK(cudaDeviceSynchronize());
        float *got = fetch16(dy, ny + N, dt);
        char what[160];
        snprintf(what, sizeof what, "gemm fp8 %s %s M=%d N=%d K=%d %s%s", path, dt_name(dt), M, N, K,
                 stat ? "static" : "dynamic", with_bias ? " +bias" : "");
        expect_within(what, got, ref, bound, ny);
        size_t touched = 0;
        for (size_t i = ny; i < ny + N; i++) touched += !isnan(got[i]);
        snprintf(what, sizeof what, "gemm fp8 %s M=%d N=%d writes no row past M", path, M, N);
        expect_true(what, touched == 0);
        free(got), free(hb), free(b);
        cudaFree(db), cudaFree(dy);
    }
    cudaFree(dx), cudaFree(dw), cudaFree(dsx), cudaFree(dsw);
    free(acc), free(mag), free(bound), free(ref);
    free_operands(&o);
}

/* INT8: ACC = Xq Wq^T exactly (int32), then Y = ACC sx sw + bias (ake_cuda_dequant_bias) in F16
 * and BF16 from the int32 sums and from the same sums as fp32. */
static void test_gemm_i8(ake_cuda_gemm *g, int M, int N, int K, int stat) {
    quant_operands o = make_operands(AKE_DT_I8, M, N, K, stat);
    const size_t ny = (size_t)M * N;
    int32_t *acc = malloc(ny * 4), *got = malloc((ny + N) * 4);
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++)
        for (int c = 0; c < N; c++) {
            int32_t s = 0;
            const int8_t *xr = (const int8_t *)o.xq + (size_t)m * K, *wr = (const int8_t *)o.wq + (size_t)c * K;
            for (int k = 0; k < K; k++) s += (int32_t)xr[k] * wr[k];
            acc[(size_t)m * N + c] = s;
        }
    void *dx = dev_copy(o.xq, (size_t)M * K), *dw = dev_copy(o.wq, (size_t)N * K);
    int32_t *dacc = dev_poisoned((ny + N) * 4);
    ake_cuda_gemm_run_i8(g, 0, M, N, K, dx, dw, dacc);
    GPU_CHECK(cudaDeviceSynchronize());
    GPU_CHECK(cudaMemcpy(got, dacc, (ny + N) * 4, cudaMemcpyDeviceToHost));
    size_t bad = 0, touched = 0;
    for (size_t i = 0; i < ny; i++) bad += got[i] != acc[i];
    for (size_t i = ny; i < ny + N; i++) touched += got[i] != -1; /* 0xFFFFFFFF poison */
    char what[160];
    snprintf(what, sizeof what, "gemm int8 M=%d N=%d K=%d %s: int32 sums exact (%zu differ), no row past M", M, N, K,
             stat ? "static" : "dynamic", bad);
    expect_true(what, bad == 0 && touched == 0);
    if (!bad && !touched) printf("ok   %s\n", what);
    /* dequantize those sums: y = acc sx[m] sw[n] + bias[n] */
    float *bias = malloc((size_t)N * 4), *ref = malloc(ny * 4), *acc32 = malloc(ny * 4);
    double *bound = malloc(ny * sizeof(double));
    for (int c = 0; c < N; c++) bias[c] = rng_uniform(-0.5f, 0.5f);
    for (size_t i = 0; i < ny; i++) acc32[i] = (float)acc[i];
    float *dsx = dev_copy(o.sx, (size_t)M * 4), *dsw = dev_copy(o.sw, (size_t)N * 4), *db = dev_copy(bias, (size_t)N * 4);
    float *dacc32 = dev_copy(acc32, ny * 4);
    const ake_dtype dts[] = {AKE_DT_F16, AKE_DT_BF16};
    for (int t = 0; t < 4; t++) {
        const ake_dtype dt = dts[t & 1];
        const int from32 = t >= 2, with_bias = (t & 1) == 0 || M % 2 == 0;
        for (size_t i = 0; i < ny; i++) {
            const double p = (double)acc[i] * o.sx[i / N] * o.sw[i % N], r = p + (with_bias ? bias[i % N] : 0.0f);
            ref[i] = (float)r;
            bound[i] = rel16(dt) * fabs(r) + 4e-7 * fabs(p) + 1e-7;
        }
        void *dy = dev_poisoned(ny * 2);
        const ake_cuda_gemm_result a = {from32 ? AKE_DT_F32 : AKE_DT_I32, from32 ? (void *)dacc32 : (void *)dacc, dsx,
                                        dsw, with_bias ? db : NULL, NULL, NULL};
        ake_cuda_dequant_bias(0, dt, dy, a, M, N);
        GPU_CHECK(cudaDeviceSynchronize());
        float *y = fetch16(dy, ny, dt);
        snprintf(what, sizeof what, "dequant_bias %s->%s M=%d N=%d%s", from32 ? "fp32" : "int32", dt_name(dt), M, N,
                 with_bias ? " +bias" : "");
        expect_within(what, y, ref, bound, ny);
        free(y);
        cudaFree(dy);
    }
    cudaFree(dx), cudaFree(dw), cudaFree(dacc), cudaFree(dsx), cudaFree(dsw), cudaFree(db), cudaFree(dacc32);
    free(acc), free(got), free(bias), free(ref), free(acc32), free(bound);
    free_operands(&o);
}

/* The 8-bit GEMMs and a quantizer captured into a CUDA graph after an eager call of each shape
 * (as the engine does): the replay must give the eager run's bits. */
static void test_capture8(ake_cuda_gemm *g, int fp8, const char *path) {
    const int M = 129, N = 768, K = 384;
    quant_operands o = make_operands(AKE_DT_I8, M, N, K, 0); /* codes also valid as E4M3 bytes below */
    for (size_t i = 0; i < (size_t)M * K; i++) o.xq[i] &= 0xf7; /* no E4M3 NaN pattern (0x7f / 0xff) */
    for (size_t i = 0; i < (size_t)N * K; i++) o.wq[i] &= 0xf7;
    uint16_t *hx = malloc((size_t)M * K * 2);
    float *xf = malloc((size_t)M * K * 4);
    fill16(hx, xf, (size_t)M * K, -2.0f, 2.0f, AKE_DT_F16);
    void *dx = dev_copy(o.xq, (size_t)M * K), *dw = dev_copy(o.wq, (size_t)N * K), *dx16 = dev_copy(hx, (size_t)M * K * 2);
    float *dsx = dev_copy(o.sx, (size_t)M * 4), *dsw = dev_copy(o.sw, (size_t)N * 4);
    const size_t ybytes = (size_t)M * N * 4;
    void *y0 = dev_poisoned(ybytes), *y1 = dev_poisoned(ybytes), *q0 = dev_poisoned((size_t)M * K),
         *q1 = dev_poisoned((size_t)M * K);
    float *s0 = dev_poisoned((size_t)M * 4), *s1 = dev_poisoned((size_t)M * 4);
    cudaStream_t st;
    GPU_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    const ake_dtype qdt = fp8 ? AKE_DT_F8_E4M3 : AKE_DT_I8;
    for (int pass = 0; pass < 2; pass++) { /* 0: eager into y0/q0; 1: captured, replayed into y1/q1 */
        void *y = pass ? y1 : y0, *q = pass ? q1 : q0;
        const ake_cuda_qout qo = {.qdt = qdt, .q = q, .scale = pass ? s1 : s0};
        cudaGraph_t graph = NULL;
        if (pass) GPU_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
        ake_cuda_quantize_rows(st, qo, AKE_DT_F16, dx16, M, K);
        if (fp8) ake_cuda_gemm_run_fp8(g, st, AKE_DT_F16, M, N, K, dx, dsx, dw, dsw, NULL, y);
        else ake_cuda_gemm_run_i8(g, st, M, N, K, dx, dw, (int32_t *)y);
        if (pass) {
            cudaGraphExec_t exec;
            GPU_CHECK(cudaStreamEndCapture(st, &graph));
            GPU_CHECK(cudaGraphInstantiate(&exec, graph, 0));
            GPU_CHECK(cudaGraphLaunch(exec, st));
            GPU_CHECK(cudaGraphExecDestroy(exec));
            GPU_CHECK(cudaGraphDestroy(graph));
        }
        GPU_CHECK(cudaStreamSynchronize(st));
    }
    uint8_t *a = fetch8(y0, ybytes), *b = fetch8(y1, ybytes), *qa = fetch8(q0, (size_t)M * K), *qb = fetch8(q1, (size_t)M * K);
    const size_t yb = fp8 ? (size_t)M * N * 2 : ybytes;
    char what[160];
    snprintf(what, sizeof what, "%s GEMM %s + quantize_rows captured in a graph replay the eager bits", fp8 ? "fp8" : "int8",
             path);
    expect_true(what, !memcmp(a, b, yb) && !memcmp(qa, qb, (size_t)M * K));
    if (!memcmp(a, b, yb) && !memcmp(qa, qb, (size_t)M * K)) printf("ok   %s\n", what);
    GPU_CHECK(cudaStreamDestroy(st));
    cudaFree(dx), cudaFree(dw), cudaFree(dx16), cudaFree(dsx), cudaFree(dsw), cudaFree(y0), cudaFree(y1), cudaFree(q0),
        cudaFree(q1), cudaFree(s0), cudaFree(s1);
    free(a), free(b), free(qa), free(qb), free(hx), free(xf);
    free_operands(&o);
}

/* Every 8-bit check. g: the handle of the 16-bit tests (its FP8 path as probed); gd: a handle
 * forced onto the dequant path. */
static void test_8bit(ake_cuda_gemm *g, ake_cuda_gemm *gd, int cc) {
    fflush(stdout); /* the probe may explain a fallback on stderr */
    const ake_fp8_path path = ake_cuda_gemm_fp8_path(g);
    ake_cuda_gemm_fp8_path(gd);
    printf("info FP8 GEMM path on this device (sm_%d): %s\n", cc,
           path == AKE_FP8_OUTER_VEC ? "cuBLASLt outer-vector scales + bias epilogue"
           : path == AKE_FP8_DEQUANT ? "fp32 sums + dequant kernel (outer-vector scaling refused)"
                                     : "none (compute capability below 8.9)");
    static const ake_dtype qdts[] = {AKE_DT_I8, AKE_DT_F8_E4M3};
    static const int ds[] = {384, 768, 1024};
    for (int qi = 0; qi < 2; qi++) {
        const ake_dtype qdt = qdts[qi];
        static const ake_dtype xdts[] = {AKE_DT_F16, AKE_DT_BF16, AKE_DT_F32};
        for (int xi = 0; xi < 3; xi++)
            for (int j = 0; j < 3; j++)
                for (int i = 0; i < NSIZES; i++) test_quantize_rows(qdt, xdts[xi], SIZES[i], ds[j], (i + j) % 2);
        static const int wide[] = {1536, 3072, 4096, 8192};
        for (int j = 0; j < 4; j++) test_quantize_rows(qdt, AKE_DT_F16, 129, wide[j], j % 2);
    }
    /* GELU (+ quantize) over FFN widths (MiniLM 1536, bert-base 3072, bert-large 4096) */
    static const ake_dtype ydts[] = {AKE_DT_F16, AKE_DT_BF16, AKE_DT_I32};
    static const ake_dtype outs[] = {AKE_DT_I8, AKE_DT_F8_E4M3, AKE_DT_F16, AKE_DT_BF16};
    static const int inters[] = {1536, 3072, 4096};
    for (int yi = 0; yi < 3; yi++)
        for (int oi = 0; oi < 4; oi++)
            for (int j = 0; j < 3; j++)
                for (int i = 0; i < NSIZES; i++) {
                    if (j > 0 && SIZES[i] != 7 && SIZES[i] != 129 && SIZES[i] != 512) continue;
                    test_gelu_quant(ydts[yi], outs[oi], SIZES[i], inters[j], (i + oi) % 2);
                }
    /* residual + LayerNorm (+ quantize) over hidden sizes 384, 768, 1024 */
    static const ake_dtype lnq[] = {AKE_DT_I8, AKE_DT_F8_E4M3, AKE_DT_F32 /* none */};
    for (int t = 0; t < 2; t++) {
        const ake_dtype dt = t ? AKE_DT_BF16 : AKE_DT_F16;
        for (int yi = 0; yi < 2; yi++)
            for (int qi = 0; qi < 3; qi++)
                for (int j = 0; j < 3; j++)
                    for (int i = 0; i < NSIZES; i++) {
                        if (j > 0 && SIZES[i] != 7 && SIZES[i] != 129 && SIZES[i] != 512) continue;
                        test_layernorm_quant(dt, yi ? AKE_DT_I32 : dt, lnq[qi], SIZES[i], ds[j], (i + qi) % 2, i % 3 == 1);
                    }
    }
    /* GEMMs at the shapes of MiniLM (d 384, inter 1536), bert-base (768, 3072), bert-large (1024, 4096) */
    static const int shapes[][2] = {{1152, 384}, {384, 384}, {1536, 384}, {384, 1536}, {2304, 768},
                                    {768, 3072}, {3072, 768}, {4096, 1024}, {1024, 4096}};
    for (int s = 0; s < 9; s++)
        for (int i = 0; i < NSIZES; i++) {
            if (s >= 4 && SIZES[i] != 7 && SIZES[i] != 129 && SIZES[i] != 512) continue;
            const int M = SIZES[i], N = shapes[s][0], K = shapes[s][1];
            test_gemm_i8(g, M, N, K, i % 2);
            if (path == AKE_FP8_NONE) continue;
            test_gemm_fp8(g, M, N, K, i % 2, (i + s) % 3 != 2);
            if (s < 4 || SIZES[i] == 129) test_gemm_fp8(gd, M, N, K, (i + 1) % 2, (i + s) % 3 != 1);
        }
    test_transforms();
    test_capture8(g, 0, "");
    if (path != AKE_FP8_NONE) {
        test_capture8(g, 1, path == AKE_FP8_OUTER_VEC ? "(outer-vec)" : "(dequant)");
        test_capture8(gd, 1, "(dequant)");
    } else {
        printf("info FP8 GEMM checks skipped: no FP8 tensor cores on sm_%d\n", cc);
    }
}

int main(void) {
    if (ake_cuda_device_count() == 0) {
        fprintf(stderr, "test_kernels: no CUDA GPU is visible; make test-gpu runs on a GPU machine\n");
        return 77;
    }
    struct cudaDeviceProp prop;
    GPU_CHECK(cudaGetDeviceProperties(&prop, 0));
    printf("device %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
    rng_seed_from_env();
    char err[256];
    ake_cuda_gemm *g = NULL;
    if (ake_cuda_gemm_create(&g, 1, err, sizeof err) != AKE_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const ake_dtype dts[] = {AKE_DT_F16, AKE_DT_BF16};
    test_convert();
    info_cublaslt_gelu(g);
    for (int k = 0; k < 2; k++) {
        const ake_dtype dt = dts[k];
        /* GEMM shapes of MiniLM/bge-small (d 384) and bert-base (d 768); every size for the
         * d-384 shapes, three sizes for the larger ones (the CPU reference is naive). */
        static const int shapes[][2] = {{1152, 384}, {384, 384}, {1536, 384}, {384, 1536}, {2304, 768}, {768, 3072}};
        for (int s = 0; s < 6; s++)
            for (int i = 0; i < NSIZES; i++) {
                if (s >= 4 && SIZES[i] != 7 && SIZES[i] != 129 && SIZES[i] != 512) continue;
                test_gemm(g, dt, SIZES[i], shapes[s][0], shapes[s][1], s == 1 || s == 3);
                if (s == 1 || s == 3) test_gemm_f32out(g, dt, SIZES[i], shapes[s][0], shapes[s][1]);
            }
        /* attention: each size alone, all sizes in one batch, a random mixed batch; head dims
         * 32 (MiniLM, bge-small), 64 (bert-base, bert-large), 128; mild and peaked softmax */
        static const int heads[][2] = {{12, 32}, {12, 64}, {16, 64}, {4, 128}};
        for (int hd = 0; hd < 4; hd++) {
            const int H = heads[hd][0], D = heads[hd][1];
            for (int i = 0; i < NSIZES; i++) {
                char label[32];
                snprintf(label, sizeof label, "len %d", SIZES[i]);
                test_attention(dt, H, D, &SIZES[i], 1, 1.0f, label);
            }
            test_attention(dt, H, D, SIZES, NSIZES, 1.0f, "lens 1,7,31,64,129,511,512");
            test_attention(dt, H, D, SIZES, NSIZES, 3.0f, "lens 1,7,31,64,129,511,512");
            int32_t lens[12];
            for (int i = 0; i < 12; i++) lens[i] = rng_int(1, 512);
            test_attention(dt, H, D, lens, 12, 2.0f, "12 random lens");
        }
        static const int ds[] = {384, 768, 1024};
        for (int j = 0; j < 3; j++)
            for (int i = 0; i < NSIZES; i++) {
                test_layernorm(dt, SIZES[i], ds[j], i % 3);
                test_layernorm_f32(dt, SIZES[i], ds[j]);
                if (j != 1) test_embed(dt, SIZES[i], ds[j]);
            }
        for (int i = 0; i < NSIZES; i++) test_gelu(dt, (size_t)SIZES[i] * 1536);
        int32_t lens[20];
        for (int i = 0; i < 20; i++) lens[i] = rng_int(1, 512);
        for (int mode = 0; mode < 3; mode++)
            for (int norm = 0; norm < 2; norm++) {
                test_pool(dt, SIZES, NSIZES, 384, mode, norm, "lens 1..512");
                test_pool(dt, lens, 20, 1024, mode, norm, "20 random lens");
            }
    }
    ake_cuda_gemm *gd = NULL; /* the FP8 dequant path, forced */
    if (ake_cuda_gemm_create(&gd, 1, err, sizeof err) != AKE_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    ake_cuda_gemm_fp8_force_dequant(gd, 1);
    test_8bit(g, gd, prop.major * 10 + prop.minor);
    ake_cuda_gemm_free(gd);
    ake_cuda_gemm_free(g);
    printf("%s: %d checks, %d failed\n", g_failures ? "FAIL" : "PASS", g_checks, g_failures);
    return g_failures ? 1 : 0;
}
