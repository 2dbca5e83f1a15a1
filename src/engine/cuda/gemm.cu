/* cuBLASLt GEMMs with fused epilogues and a per-shape algorithm cache.
 *
 * Row-major Y[M,N] = X[M,K] W[N,K]^T is, in cuBLASLt's column-major terms,
 * Y^T[N,M] = op(W)[N,K] X^T[K,M] with W stored as a K x N column-major matrix (ld K) and
 * op = T, X^T stored K x M (ld K), Y^T stored N x M (ld N); the bias runs along the rows
 * of Y^T (N), as cuBLASLt's epilogue expects. This is the "TN" form that cuBLASLt's FP8 and
 * IMMA (INT8) kernels require, so the 8-bit GEMMs use the same mapping: cuBLASLt's A is W
 * (its outer-vector scale has cuBLASLt's M = our N entries: sw) and its B is X (sx). */
#include <cublasLt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/common.cuh"

extern "C" {
#include "base/half.h"
#include "engine/cuda/gemm.cuh"
}

#define CUBLAS_CHECK(x)                                                                          \
    do {                                                                                         \
        cublasStatus_t s_ = (x);                                                                 \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                         \
            ake_cuda_fail(#x, (int)s_, cublasLtGetStatusString(s_), __FILE__, __LINE__);         \
    } while (0)

/* Training shapes change with every batch (M or K is its token count), so they live in a small
 * ring of their own, the oldest replaced first, instead of filling the inference cache. */
enum { GEMM_CANDIDATES = 8, GEMM_CACHE = 512, GEMM_TRAIN_CACHE = 64 };
static const size_t GEMM_WORKSPACE = 32u << 20;

/* What a cached shape computes. */
enum {
    KIND_16 = 0,        /* F16/BF16 inputs and output (ake_cuda_gemm_run, _f32out) */
    KIND_FP8 = 1,       /* E4M3 inputs, outer-vector scales and bias in the epilogue, dt output */
    KIND_FP8_RAW = 2,   /* E4M3 inputs, no scales, fp32 output (the AKE_FP8_DEQUANT path) */
    KIND_I8 = 3,        /* int8 inputs, int32 output */
    KIND_TRAIN = 4      /* any transposes, F32/F16/BF16 inputs, fp32 output, C += (ake_cuda_gemm_train) */
};

typedef struct {
    int kind, dt, M, N, K, epi, has_res, out32;
    char ta, tb;       /* KIND_TRAIN: 'N' or 'T' for A and B of the row-major product; 0 otherwise */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t cand[GEMM_CANDIDATES];
    int ncand, chosen; /* chosen < 0: not timed yet */
    int refused;       /* KIND_FP8 only: cuBLASLt's heuristic has no outer-vector algorithm for
                          this shape (no descriptors kept); the shape takes the dequant path */
    cublasStatus_t hstatus; /* the heuristic's answer, for the message of a refusal */
} gemm_entry;

struct ake_cuda_gemm {
    cublasLtHandle_t lt;
    void *workspace; /* device, GEMM_WORKSPACE bytes */
    int autotune;
    int cc;          /* compute capability of the current device at creation, 10 * major + minor */
    int fp8_path;    /* ake_fp8_path; -1 until probed */
    int fp8_force_dequant;
    float *scratch;  /* device [scratch_n] fp32: the AKE_FP8_DEQUANT path's sums; grown at a shape's first call */
    size_t scratch_n;
    cudaEvent_t ev0, ev1;
    gemm_entry *cache; /* owned [GEMM_CACHE] */
    int n;
    gemm_entry train[GEMM_TRAIN_CACHE]; /* KIND_TRAIN shapes */
    unsigned train_next;                /* the slot replaced next */
};

extern "C" ake_status ake_cuda_gemm_create(ake_cuda_gemm **out, int autotune, char *err, size_t errlen) {
    *out = NULL;
    ake_cuda_gemm *g = (ake_cuda_gemm *)calloc(1, sizeof *g);
    if (!g || !(g->cache = (gemm_entry *)calloc(GEMM_CACHE, sizeof *g->cache))) {
        free(g);
        return ake_errf(err, errlen, AKE_ENOMEM, "out of memory creating the GEMM cache");
    }
    g->autotune = autotune;
    g->fp8_path = -1;
    int dev = 0, major = 0, minor = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    g->cc = 10 * major + minor;
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

static void destroy_entry(gemm_entry *e) {
    if (e->desc) cublasLtMatmulDescDestroy(e->desc);
    if (e->a) cublasLtMatrixLayoutDestroy(e->a);
    if (e->b) cublasLtMatrixLayoutDestroy(e->b);
    if (e->c) cublasLtMatrixLayoutDestroy(e->c);
    e->desc = NULL, e->a = e->b = e->c = NULL;
}

extern "C" void ake_cuda_gemm_free(ake_cuda_gemm *g) {
    if (!g) return;
    for (int i = 0; i < g->n; i++) destroy_entry(&g->cache[i]);
    for (int i = 0; i < GEMM_TRAIN_CACHE; i++) destroy_entry(&g->train[i]);
    cudaEventDestroy(g->ev0);
    cudaEventDestroy(g->ev1);
    cudaFree(g->scratch);
    cudaFree(g->workspace);
    cublasLtDestroy(g->lt);
    free(g->cache);
    free(g);
}

/* The cached entry of a shape, created (descriptors, heuristic candidates) at its first
 * call. An FP8 shape whose outer-vector scaling cuBLASLt's heuristic refuses comes back
 * marked `refused` (the caller then takes the AKE_FP8_DEQUANT path); any other refusal is
 * a bug. */
static gemm_entry *lookup(ake_cuda_gemm *g, int kind, ake_dtype dt, int M, int N, int K, ake_gemm_epilogue epi,
                          int has_res, int out32, char ta = 0, char tb = 0) {
    const bool train = kind == KIND_TRAIN;
    gemm_entry *entries = train ? g->train : g->cache;
    for (int i = 0; i < (train ? GEMM_TRAIN_CACHE : g->n); i++) {
        gemm_entry *e = &entries[i];
        if (e->kind == kind && e->dt == (int)dt && e->M == M && e->N == N && e->K == K && e->epi == (int)epi &&
            e->has_res == has_res && e->out32 == out32 && e->ta == ta && e->tb == tb && (!train || e->desc))
            return e;
    }
    gemm_entry *e;
    if (train) {
        e = &g->train[g->train_next++ % GEMM_TRAIN_CACHE];
        destroy_entry(e);
    } else {
        AKE_ASSERT(g->n < GEMM_CACHE);
        e = &g->cache[g->n];
    }
    memset(e, 0, sizeof *e);
    e->kind = kind, e->dt = dt, e->M = M, e->N = N, e->K = K, e->epi = epi, e->has_res = has_res, e->out32 = out32;
    e->ta = ta, e->tb = tb;
    e->chosen = -1;
    const cudaDataType_t t = dt == AKE_DT_F16 ? CUDA_R_16F : dt == AKE_DT_F32 ? CUDA_R_32F : CUDA_R_16BF;
    cudaDataType_t tin = t, tout = out32 ? CUDA_R_32F : t;
    if (kind == KIND_FP8 || kind == KIND_FP8_RAW) tin = CUDA_R_8F_E4M3;
    if (kind == KIND_FP8_RAW) tout = CUDA_R_32F;
    if (kind == KIND_I8) tin = CUDA_R_8I, tout = CUDA_R_32I;
    if (kind == KIND_I8) CUBLAS_CHECK(cublasLtMatmulDescCreate(&e->desc, CUBLAS_COMPUTE_32I, CUDA_R_32I));
    else CUBLAS_CHECK(cublasLtMatmulDescCreate(&e->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    /* cuBLASLt's A is our B and its B our A (see the top): op(A') = tb, op(B') = ta */
    const cublasOperation_t opA = kind == KIND_TRAIN && tb == 'N' ? CUBLAS_OP_N : CUBLAS_OP_T,
                            opB = kind == KIND_TRAIN && ta == 'T' ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB));
    const cublasLtEpilogue_t ep = epi == AKE_GEMM_BIAS           ? CUBLASLT_EPILOGUE_BIAS
                                  : epi == AKE_GEMM_BIAS_GELU_TANH ? CUBLASLT_EPILOGUE_GELU_BIAS
                                                                   : CUBLASLT_EPILOGUE_DEFAULT;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep));
    if (kind == KIND_FP8) {
        /* per-row x per-column fp32 scales (cuBLASLt >= 12.9): D[i, j] = a_scale[i] b_scale[j] sum_l A'[i, l] B[l, j] */
        const int32_t outer = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &outer, sizeof outer));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &outer, sizeof outer));
        /* The heuristic reads a NULL scale pointer as "scale 1", which contradicts the vector
         * mode: it then finds no algorithm (seen on an H200, cuBLASLt 13.1). Non-NULL
         * placeholders here; each call sets the real pointers. */
        const void *ph = g->workspace;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &ph, sizeof ph));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &ph, sizeof ph));
        if (epi == AKE_GEMM_BIAS) {
            const int32_t bt = t; /* the bias has the output's type */
            CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
            CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &ph, sizeof ph));
        }
    }
    if (kind == KIND_TRAIN) { /* column-major views of the row-major operands */
        const uint64_t ar = tb == 'N' ? N : K, ac = tb == 'N' ? K : N, br = ta == 'N' ? K : M, bc = ta == 'N' ? M : K;
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->a, tin, ar, ac, (int64_t)ar));
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->b, tin, br, bc, (int64_t)br));
    } else {
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->a, tin, (uint64_t)K, (uint64_t)N, (int64_t)K));
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->b, tin, (uint64_t)K, (uint64_t)M, (int64_t)K));
    }
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->c, tout, (uint64_t)N, (uint64_t)M, (int64_t)N));
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = GEMM_WORKSPACE;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    /* split-K partial sums stay in fp32 (never reduced through the 16-bit output) */
    const uint32_t red = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &red, sizeof red));
    cublasLtMatmulHeuristicResult_t res[GEMM_CANDIDATES];
    int got = 0;
    cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(g->lt, e->desc, e->a, e->b, e->c, e->c, pref, GEMM_CANDIDATES,
                                                       res, &got);
    if (kind == KIND_FP8 && (hs != CUBLAS_STATUS_SUCCESS || got <= 0)) {
        /* the outer-vector kernels may all be split-K ones reducing in another type: ask again
         * without the reduction constraint before giving the shape up */
        const uint32_t any = CUBLASLT_REDUCTION_SCHEME_MASK;
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &any,
                                                          sizeof any));
        got = 0;
        hs = cublasLtMatmulAlgoGetHeuristic(g->lt, e->desc, e->a, e->b, e->c, e->c, pref, GEMM_CANDIDATES, res, &got);
    }
    cublasLtMatmulPreferenceDestroy(pref);
    e->hstatus = hs;
    if (hs != CUBLAS_STATUS_SUCCESS || got <= 0) {
        if (kind == KIND_FP8) {
            destroy_entry(e);
            e->refused = 1;
            g->n++;
            return e;
        }
        fprintf(stderr, "cuBLASLt has no algorithm for kind %d M=%d N=%d K=%d epilogue %d: %s\n", kind, M, N, K,
                (int)epi, cublasLtGetStatusString(hs));
        AKE_ASSERT(got > 0);
    }
    for (int i = 0; i < got; i++) e->cand[i] = res[i].algo;
    e->ncand = got;
    /* training GEMMs accumulate (C += ...): timing candidates on the real operands would add
       their product many times, so they take the heuristic's first choice */
    if (!g->autotune || got == 1 || train) e->chosen = 0;
    if (!train) g->n++;
    return e;
}

/* The operands of one cuBLASLt call (cuBLASLt's A = W, B = X; C = D unless accumulating). */
typedef struct {
    const void *A, *B, *C;
    void *D;
    const void *alpha, *beta; /* host, of the descriptor's scale type */
} gemm_ops;

static cublasStatus_t matmul(ake_cuda_gemm *g, const gemm_entry *e, const cublasLtMatmulAlgo_t *algo,
                             cudaStream_t stream, const gemm_ops *o) {
    return cublasLtMatmul(g->lt, e->desc, o->alpha, o->A, e->a, o->B, e->b, o->beta, o->C, e->c, o->D, e->c, algo,
                          g->workspace, GEMM_WORKSPACE, stream);
}

/* Runs the shape's chosen algorithm; at the first call made outside stream capture (with
 * autotune) first times each candidate on the real operands (D is recomputed whole each
 * time): best of 3 rounds of 3 calls, after a warm-up. */
static void pick_and_run(ake_cuda_gemm *g, gemm_entry *e, cudaStream_t stream, const gemm_ops *o) {
    if (e->chosen < 0) {
        cudaStreamCaptureStatus cs;
        CUDA_CHECK(cudaStreamIsCapturing(stream, &cs));
        if (cs == cudaStreamCaptureStatusNone) {
            float best = 1e30f;
            for (int i = 0; i < e->ncand; i++) {
                CUBLAS_CHECK(matmul(g, e, &e->cand[i], stream, o)); /* warm-up */
                for (int round = 0; round < 3; round++) {
                    CUDA_CHECK(cudaEventRecord(g->ev0, stream));
                    for (int r = 0; r < 3; r++) CUBLAS_CHECK(matmul(g, e, &e->cand[i], stream, o));
                    CUDA_CHECK(cudaEventRecord(g->ev1, stream));
                    CUDA_CHECK(cudaEventSynchronize(g->ev1));
                    float ms;
                    CUDA_CHECK(cudaEventElapsedTime(&ms, g->ev0, g->ev1));
                    if (ms < best) best = ms, e->chosen = i;
                }
            }
        }
    }
    CUBLAS_CHECK(matmul(g, e, &e->cand[e->chosen < 0 ? 0 : e->chosen], stream, o));
}

static const float F_ONE = 1.0f, F_ZERO = 0.0f;
static const int32_t I_ONE = 1, I_ZERO = 0;

static void run(ake_cuda_gemm *g, cudaStream_t stream, ake_dtype dt, int M, int N, int K, const void *X, const void *W,
                const void *bias, const void *R, void *Y, ake_gemm_epilogue epi, int out32) {
    AKE_ASSERT(M > 0 && N > 0 && K > 0 && (dt == AKE_DT_F16 || dt == AKE_DT_BF16));
    AKE_ASSERT(Y != X && Y != W && (R == NULL || Y != R) && (epi == AKE_GEMM_PLAIN) == (bias == NULL));
    gemm_entry *e = lookup(g, KIND_16, dt, M, N, K, epi, R != NULL, out32);
    if (bias) CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    const gemm_ops o = {W, X, R ? R : Y, Y, &F_ONE, R ? &F_ONE : &F_ZERO};
    pick_and_run(g, e, stream, &o);
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

extern "C" void ake_cuda_gemm_train(ake_cuda_gemm *g, cudaStream_t stream, char ta, char tb, int M, int N, int K,
                                    ake_dtype dt, const void *A, const void *B, float beta, float *C) {
    AKE_ASSERT(M > 0 && N > 0 && K > 0 && (ta == 'N' || ta == 'T') && (tb == 'N' || tb == 'T'));
    AKE_ASSERT(dt == AKE_DT_F32 || dt == AKE_DT_F16 || dt == AKE_DT_BF16);
    gemm_entry *e = lookup(g, KIND_TRAIN, dt, M, N, K, AKE_GEMM_PLAIN, 0, 1, ta, tb);
    const gemm_ops o = {B, A, C, C, &F_ONE, beta != 0 ? &F_ONE : &F_ZERO};
    AKE_ASSERT(beta == 0 || beta == 1);
    pick_and_run(g, e, stream, &o);
}

/* ---- FP8 E4M3 ------------------------------------------------------------------------------ */

/* The AKE_FP8_DEQUANT path's second kernel: Y = acc * (sx[m] * sw[n]) + bias[n], acc fp32 [M, N]. */
template <typename T>
__global__ void __launch_bounds__(256)
    fp8_dequant_kernel(T *Y, const float *acc, const float *sx, const float *sw, const T *bias, int N, unsigned chunks) {
    for (unsigned i = blockIdx.x * 256u + threadIdx.x; i < chunks; i += gridDim.x * 256u) {
        const unsigned e = i * 8u, row = e / (unsigned)N, c = e - row * (unsigned)N;
        float a[8], w[8], b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        load8_f32(acc + e, a);
        load8_f32(sw + c, w);
        if (bias) vec8<T>::load(bias + c, b);
        const float s = __ldg(sx + row);
#pragma unroll
        for (int j = 0; j < 8; j++) a[j] = fmaf(a[j], s * w[j], b[j]);
        vec8<T>::store(Y + e, a);
    }
}

/* FP8 with scales and bias on either path; `check` (the probe only) returns cuBLASLt's status
 * of the outer-vector call instead of aborting on it. */
static cublasStatus_t run_fp8(ake_cuda_gemm *g, cudaStream_t stream, ake_dtype dt, int M, int N, int K,
                              const void *Xq, const float *sx, const void *Wq, const float *sw, const void *bias,
                              void *Y, int path, int check) {
    const ake_gemm_epilogue epi = bias ? AKE_GEMM_BIAS : AKE_GEMM_PLAIN;
    gemm_entry *e = path == AKE_FP8_OUTER_VEC ? lookup(g, KIND_FP8, dt, M, N, K, epi, 0, 0) : NULL;
    if (e && !e->refused) {
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sw, sizeof sw));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sx, sizeof sx));
        if (bias)
            CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
        const gemm_ops o = {Wq, Xq, Y, Y, &F_ONE, &F_ZERO};
        if (check) {
            if (e->chosen < 0) e->chosen = 0;
            return matmul(g, e, &e->cand[e->chosen], stream, &o);
        }
        pick_and_run(g, e, stream, &o);
        return CUBLAS_STATUS_SUCCESS;
    }
    if (check) return e && e->hstatus != CUBLAS_STATUS_SUCCESS ? e->hstatus : CUBLAS_STATUS_NOT_SUPPORTED;
    /* AKE_FP8_DEQUANT (chosen, forced, or this shape refused): unscaled fp32 sums, then scales + bias */
    const size_t need = (size_t)M * N;
    if (need > g->scratch_n) {
        cudaStreamCaptureStatus cs;
        CUDA_CHECK(cudaStreamIsCapturing(stream, &cs));
        AKE_ASSERT(cs == cudaStreamCaptureStatusNone); /* a shape's first call is eager */
        CUDA_CHECK(cudaStreamSynchronize(stream));
        cudaFree(g->scratch);
        CUDA_CHECK(cudaMalloc(&g->scratch, need * sizeof(float)));
        g->scratch_n = need;
    }
    AKE_ASSERT(need <= 0x7fffffffu);
    e = lookup(g, KIND_FP8_RAW, dt, M, N, K, AKE_GEMM_PLAIN, 0, 0);
    const gemm_ops o = {Wq, Xq, g->scratch, g->scratch, &F_ONE, &F_ZERO};
    pick_and_run(g, e, stream, &o);
    const unsigned chunks = (unsigned)(need / 8);
    unsigned blocks = (chunks + 255) / 256;
    if (blocks > 132 * 16) blocks = 132 * 16;
    AKE_DISPATCH_DTYPE(dt, T, fp8_dequant_kernel<T><<<blocks, 256, 0, stream>>>((T *)Y, g->scratch, sx, sw,
                                                                                (const T *)bias, N, chunks));
    CUDA_CHECK_LAUNCH();
    return CUBLAS_STATUS_SUCCESS;
}

/* Outer-vector scaling is new (cuBLASLt 12.9) and its support depends on the card and the
 * library: run it once on a shape whose exact result is known, and fall back to the dequant
 * path where it fails. M = N = K = 256, Xq = Wq = 1 (E4M3 0x38), sx[m] = (m%16 + 1)/256,
 * sw[n] = n%16 + 1, bias 0.5: Y[m, n] = (m%16 + 1)(n%16 + 1) + 0.5, exact in F16. */
static ake_fp8_path probe_fp8(ake_cuda_gemm *g) {
    if (g->cc < 89) return AKE_FP8_NONE;
    enum { P = 256 };
    uint8_t *ones = (uint8_t *)malloc((size_t)P * P);
    uint16_t *y = (uint16_t *)malloc((size_t)P * P * 2);
    AKE_ASSERT(ones && y);
    memset(ones, 0x38, (size_t)P * P);
    float sx[P], sw[P];
    uint16_t bias[P];
    for (int i = 0; i < P; i++)
        sx[i] = (float)(i % 16 + 1) / 256.0f, sw[i] = (float)(i % 16 + 1), bias[i] = ake_f32_to_f16(0.5f);
    void *dx, *db, *dy;
    float *dsx, *dsw;
    CUDA_CHECK(cudaMalloc(&dx, (size_t)P * P));
    CUDA_CHECK(cudaMalloc(&dsx, sizeof sx));
    CUDA_CHECK(cudaMalloc(&dsw, sizeof sw));
    CUDA_CHECK(cudaMalloc(&db, sizeof bias));
    CUDA_CHECK(cudaMalloc(&dy, (size_t)P * P * 2));
    CUDA_CHECK(cudaMemcpy(dx, ones, (size_t)P * P, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dsx, sx, sizeof sx, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dsw, sw, sizeof sw, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(db, bias, sizeof bias, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemset(dy, 0xff, (size_t)P * P * 2));
    /* X and W are the same all-ones matrix */
    cublasStatus_t s = run_fp8(g, 0, AKE_DT_F16, P, P, P, dx, dsx, dx, dsw, db, dy, AKE_FP8_OUTER_VEC, 1);
    ake_fp8_path path = AKE_FP8_DEQUANT;
    if (s == CUBLAS_STATUS_SUCCESS) {
        CUDA_CHECK(cudaMemcpy(y, dy, (size_t)P * P * 2, cudaMemcpyDeviceToHost));
        int bad = 0;
        for (int m = 0; m < P; m++)
            for (int n = 0; n < P; n++)
                bad += ake_f16_to_f32(y[m * P + n]) != (float)((m % 16 + 1) * (n % 16 + 1)) + 0.5f;
        if (!bad) path = AKE_FP8_OUTER_VEC;
        else fprintf(stderr, "cuBLASLt FP8 outer-vector scaling gave wrong values (%d of %d): using the dequant path\n",
                     bad, P * P);
    } else {
        fprintf(stderr, "cuBLASLt refuses FP8 outer-vector scaling at 256^3 (%s): using the dequant path\n",
                cublasLtGetStatusString(s));
    }
    cudaFree(dx), cudaFree(dsx), cudaFree(dsw), cudaFree(db), cudaFree(dy);
    free(ones), free(y);
    return path;
}

extern "C" ake_fp8_path ake_cuda_gemm_fp8_path(ake_cuda_gemm *g) {
    if (g->fp8_path < 0) g->fp8_path = probe_fp8(g);
    if (g->fp8_path == AKE_FP8_OUTER_VEC && g->fp8_force_dequant) return AKE_FP8_DEQUANT;
    return (ake_fp8_path)g->fp8_path;
}

extern "C" void ake_cuda_gemm_fp8_force_dequant(ake_cuda_gemm *g, int on) { g->fp8_force_dequant = on != 0; }

extern "C" ake_fp8_path ake_cuda_gemm_fp8_shape_path(ake_cuda_gemm *g, ake_dtype dt, int M, int N, int K, int bias) {
    const ake_fp8_path p = ake_cuda_gemm_fp8_path(g);
    if (p != AKE_FP8_OUTER_VEC) return p;
    AKE_ASSERT(M > 0 && N > 0 && K > 0 && (dt == AKE_DT_F16 || dt == AKE_DT_BF16));
    const gemm_entry *e = lookup(g, KIND_FP8, dt, M, N, K, bias ? AKE_GEMM_BIAS : AKE_GEMM_PLAIN, 0, 0);
    return e->refused ? AKE_FP8_DEQUANT : AKE_FP8_OUTER_VEC;
}

static bool aligned16(const void *p) { return (uintptr_t)p % 16 == 0; }

extern "C" void ake_cuda_gemm_run_fp8(ake_cuda_gemm *g, cudaStream_t stream, ake_dtype dt, int M, int N, int K,
                                      const void *Xq, const float *sx, const void *Wq, const float *sw,
                                      const void *bias, void *Y) {
    AKE_ASSERT(M > 0 && N > 0 && K > 0 && K % 16 == 0 && N % 16 == 0 && (dt == AKE_DT_F16 || dt == AKE_DT_BF16));
    AKE_ASSERT(Xq && Wq && sx && sw && Y && Y != Xq && Y != Wq && Y != bias);
    AKE_ASSERT(aligned16(Xq) && aligned16(Wq) && aligned16(sx) && aligned16(sw) && aligned16(bias) && aligned16(Y));
    const ake_fp8_path path = ake_cuda_gemm_fp8_path(g);
    AKE_ASSERT(path != AKE_FP8_NONE);
    run_fp8(g, stream, dt, M, N, K, Xq, sx, Wq, sw, bias, Y, path, 0);
}

/* ---- INT8 IMMA --------------------------------------------------------------------------------- */

extern "C" void ake_cuda_gemm_run_i8(ake_cuda_gemm *g, cudaStream_t stream, int M, int N, int K, const void *Xq,
                                     const void *Wq, int32_t *ACC) {
    AKE_ASSERT(M > 0 && N > 0 && K > 0 && N % 4 == 0 && K % 4 == 0 && K < 133144);
    AKE_ASSERT(Xq && Wq && ACC && (const void *)ACC != Xq && (const void *)ACC != Wq);
    AKE_ASSERT(aligned16(Xq) && aligned16(Wq) && aligned16(ACC));
    gemm_entry *e = lookup(g, KIND_I8, AKE_DT_F16 /* unused */, M, N, K, AKE_GEMM_PLAIN, 0, 0);
    const gemm_ops o = {Wq, Xq, ACC, ACC, &I_ONE, &I_ZERO};
    pick_and_run(g, e, stream, &o);
}
