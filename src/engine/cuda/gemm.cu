/* cuBLASLt GEMMs with fused epilogues and a per-shape algorithm cache.
 *
 * Row-major Y[M,N] = X[M,K] W[N,K]^T is, in cuBLASLt's column-major terms,
 * Y^T[N,M] = op(W)[N,K] X^T[K,M] with W stored as a K x N column-major matrix (ld K) and
 * op = T, X^T stored K x M (ld K), Y^T stored N x M (ld N); the bias runs along the rows
 * of Y^T (N), as cuBLASLt's epilogue expects. */
#include <cublasLt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/common.cuh"

extern "C" {
#include "engine/cuda/gemm.cuh"
}

#define CUBLAS_CHECK(x)                                                                          \
    do {                                                                                         \
        cublasStatus_t s_ = (x);                                                                 \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                         \
            ake_cuda_fail(#x, (int)s_, cublasLtGetStatusString(s_), __FILE__, __LINE__);         \
    } while (0)

enum { GEMM_CANDIDATES = 8, GEMM_CACHE = 512 };
static const size_t GEMM_WORKSPACE = 32u << 20;

typedef struct {
    int dt, M, N, K, epi, has_res, out32;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t cand[GEMM_CANDIDATES];
    int ncand, chosen; /* chosen < 0: not timed yet */
} gemm_entry;

struct ake_cuda_gemm {
    cublasLtHandle_t lt;
    void *workspace; /* device, GEMM_WORKSPACE bytes */
    int autotune;
    cudaEvent_t ev0, ev1;
    gemm_entry *cache; /* owned [GEMM_CACHE] */
    int n;
};

extern "C" ake_status ake_cuda_gemm_create(ake_cuda_gemm **out, int autotune, char *err, size_t errlen) {
    *out = NULL;
    ake_cuda_gemm *g = (ake_cuda_gemm *)calloc(1, sizeof *g);
    if (!g || !(g->cache = (gemm_entry *)calloc(GEMM_CACHE, sizeof *g->cache))) {
        free(g);
        return ake_errf(err, errlen, AKE_ENOMEM, "out of memory creating the GEMM cache");
    }
    g->autotune = autotune;
    cublasStatus_t s = cublasLtCreate(&g->lt);
    if (s != CUBLAS_STATUS_SUCCESS) {
        free(g->cache);
        free(g);
        return ake_errf(err, errlen, AKE_EUNSUPPORTED, "cublasLtCreate failed: %s", cublasLtGetStatusString(s));
    }
    cudaError_t ce = cudaMalloc(&g->workspace, GEMM_WORKSPACE);
    if (ce != cudaSuccess) {
        cublasLtDestroy(g->lt);
        free(g->cache);
        free(g);
        return ake_errf(err, errlen, AKE_ENOMEM, "cudaMalloc of the %zu MiB GEMM workspace: %s",
                        GEMM_WORKSPACE >> 20, cudaGetErrorString(ce));
    }
    CUDA_CHECK(cudaEventCreate(&g->ev0));
    CUDA_CHECK(cudaEventCreate(&g->ev1));
    *out = g;
    return AKE_OK;
}

extern "C" void ake_cuda_gemm_free(ake_cuda_gemm *g) {
    if (!g) return;
    for (int i = 0; i < g->n; i++) {
        cublasLtMatmulDescDestroy(g->cache[i].desc);
        cublasLtMatrixLayoutDestroy(g->cache[i].a);
        cublasLtMatrixLayoutDestroy(g->cache[i].b);
        cublasLtMatrixLayoutDestroy(g->cache[i].c);
    }
    cudaEventDestroy(g->ev0);
    cudaEventDestroy(g->ev1);
    cudaFree(g->workspace);
    cublasLtDestroy(g->lt);
    free(g->cache);
    free(g);
}

static gemm_entry *lookup(ake_cuda_gemm *g, ake_dtype dt, int M, int N, int K, ake_gemm_epilogue epi, int has_res,
                          int out32) {
    for (int i = 0; i < g->n; i++) {
        gemm_entry *e = &g->cache[i];
        if (e->dt == (int)dt && e->M == M && e->N == N && e->K == K && e->epi == (int)epi && e->has_res == has_res &&
            e->out32 == out32)
            return e;
    }
    AKE_ASSERT(g->n < GEMM_CACHE);
    gemm_entry *e = &g->cache[g->n++];
    memset(e, 0, sizeof *e);
    e->dt = dt, e->M = M, e->N = N, e->K = K, e->epi = epi, e->has_res = has_res, e->out32 = out32, e->chosen = -1;
    const cudaDataType_t t = dt == AKE_DT_F16 ? CUDA_R_16F : CUDA_R_16BF;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&e->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof opT));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof opN));
    const cublasLtEpilogue_t ep = epi == AKE_GEMM_BIAS           ? CUBLASLT_EPILOGUE_BIAS
                                  : epi == AKE_GEMM_BIAS_GELU_TANH ? CUBLASLT_EPILOGUE_GELU_BIAS
                                                                   : CUBLASLT_EPILOGUE_DEFAULT;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->a, t, (uint64_t)K, (uint64_t)N, (int64_t)K));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->b, t, (uint64_t)K, (uint64_t)M, (int64_t)K));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->c, out32 ? CUDA_R_32F : t, (uint64_t)N, (uint64_t)M, (int64_t)N));
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = GEMM_WORKSPACE;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    /* split-K partial sums stay in fp32 (never reduced through the 16-bit output) */
    const uint32_t red = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &red, sizeof red));
    cublasLtMatmulHeuristicResult_t res[GEMM_CANDIDATES];
    int got = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(g->lt, e->desc, e->a, e->b, e->c, e->c, pref, GEMM_CANDIDATES, res,
                                                &got));
    cublasLtMatmulPreferenceDestroy(pref);
    if (got <= 0) {
        fprintf(stderr, "cuBLASLt has no algorithm for M=%d N=%d K=%d epilogue %d\n", M, N, K, (int)epi);
        AKE_ASSERT(got > 0);
    }
    for (int i = 0; i < got; i++) e->cand[i] = res[i].algo;
    e->ncand = got;
    if (!g->autotune || got == 1) e->chosen = 0;
    return e;
}

static void matmul(ake_cuda_gemm *g, const gemm_entry *e, const cublasLtMatmulAlgo_t *algo, cudaStream_t stream,
                   const void *X, const void *W, const void *R, void *Y) {
    const float alpha = 1.0f, beta = R ? 1.0f : 0.0f;
    CUBLAS_CHECK(cublasLtMatmul(g->lt, e->desc, &alpha, W, e->a, X, e->b, &beta, R ? R : Y, e->c, Y, e->c, algo,
                                g->workspace, GEMM_WORKSPACE, stream));
}

static void run(ake_cuda_gemm *g, cudaStream_t stream, ake_dtype dt, int M, int N, int K, const void *X, const void *W,
                const void *bias, const void *R, void *Y, ake_gemm_epilogue epi, int out32) {
    AKE_ASSERT(M > 0 && N > 0 && K > 0 && (dt == AKE_DT_F16 || dt == AKE_DT_BF16));
    AKE_ASSERT(Y != X && Y != W && (R == NULL || Y != R) && (epi == AKE_GEMM_PLAIN) == (bias == NULL));
    gemm_entry *e = lookup(g, dt, M, N, K, epi, R != NULL, out32);
    if (bias) CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    if (e->chosen < 0) {
        cudaStreamCaptureStatus cs;
        CUDA_CHECK(cudaStreamIsCapturing(stream, &cs));
        if (cs == cudaStreamCaptureStatusNone) {
            /* Time each candidate on the real operands (Y is recomputed whole each time);
             * best of 3 rounds of 3 calls, after a warm-up. */
            float best = 1e30f;
            for (int i = 0; i < e->ncand; i++) {
                matmul(g, e, &e->cand[i], stream, X, W, R, Y); /* warm-up */
                for (int round = 0; round < 3; round++) {
                    CUDA_CHECK(cudaEventRecord(g->ev0, stream));
                    for (int r = 0; r < 3; r++) matmul(g, e, &e->cand[i], stream, X, W, R, Y);
                    CUDA_CHECK(cudaEventRecord(g->ev1, stream));
                    CUDA_CHECK(cudaEventSynchronize(g->ev1));
                    float ms;
                    CUDA_CHECK(cudaEventElapsedTime(&ms, g->ev0, g->ev1));
                    if (ms < best) best = ms, e->chosen = i;
                }
            }
        }
    }
    matmul(g, e, &e->cand[e->chosen < 0 ? 0 : e->chosen], stream, X, W, R, Y);
}

extern "C" void ake_cuda_gemm_run(ake_cuda_gemm *g, cudaStream_t stream, ake_dtype dt, int M, int N, int K,
                                  const void *X, const void *W, const void *bias, const void *R, void *Y,
                                  ake_gemm_epilogue epi) {
    run(g, stream, dt, M, N, K, X, W, bias, R, Y, epi, 0);
}

extern "C" void ake_cuda_gemm_run_f32out(ake_cuda_gemm *g, cudaStream_t stream, ake_dtype dt, int M, int N, int K,
                                         const void *X, const void *W, float *Y32) {
    run(g, stream, dt, M, N, K, X, W, NULL, NULL, Y32, AKE_GEMM_PLAIN, 1);
}
