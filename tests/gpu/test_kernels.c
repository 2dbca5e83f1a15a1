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
    ake_cuda_attention(0, dt, dc, dq, dt_tiles, dn, max_tiles, H, D);
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
    ake_cuda_gemm_free(g);
    printf("%s: %d checks, %d failed\n", g_failures ? "FAIL" : "PASS", g_checks, g_failures);
    return g_failures ? 1 : 0;
}
