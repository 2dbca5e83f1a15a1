/* GEMMs of the encoder through cuBLASLt: Y = X W^T (+ bias) (+ R), with the bias (and,
 * optionally, tanh-GELU) applied in the GEMM's epilogue; and the 8-bit GEMMs of the W8A8
 * engines (FP8 E4M3 with per-row x per-channel scales, INT8 with int32 sums). Algorithm
 * choice is cached per shape: cuBLASLt's heuristic proposes up to 8 candidates, the first
 * call of a shape made outside stream capture times them on the real operands and keeps
 * the fastest.
 * Plain C header, usable from C tests. */
#ifndef AKE_ENGINE_CUDA_GEMM_CUH
#define AKE_ENGINE_CUDA_GEMM_CUH

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "model/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ake_cuda_gemm ake_cuda_gemm;

typedef enum {
    AKE_GEMM_PLAIN = 0,        /* Y = X W^T (+ R) */
    AKE_GEMM_BIAS = 1,         /* Y = X W^T + bias (+ R) */
    AKE_GEMM_BIAS_GELU_TANH = 2 /* Y = gelu_tanh(X W^T + bias): cuBLASLt's GELU, not the exact erf
                                  one; only for measuring (AKE_CUDA_GELU=tanh) */
} ake_gemm_epilogue;

/* A cuBLASLt handle, a workspace and the shape cache, on the current device. autotune:
 * 0 takes the heuristic's first choice. Free with ake_cuda_gemm_free (NULL is fine). */
ake_status ake_cuda_gemm_create(ake_cuda_gemm **out, int autotune, char *err, size_t errlen);
void ake_cuda_gemm_free(ake_cuda_gemm *g);

/* Y[M, N] = X[M, K] W[N, K]^T (+ bias[N]) (+ R[M, N]), all row-major of dt (F16 or BF16),
 * fp32 accumulation, W in Hugging Face Linear layout. R may be NULL; Y must not alias X,
 * W or R. Enqueued on stream; capturable into a CUDA graph once the shape was seen. */
void ake_cuda_gemm_run(ake_cuda_gemm *g, cudaStream_t stream, ake_dtype dt, int M, int N, int K, const void *X,
                       const void *W, const void *bias, const void *R, void *Y, ake_gemm_epilogue epi);

/* Y32[M, N] = X[M, K] W[N, K]^T with the product written in fp32 (no epilogue): the
 * sublayer outputs of bf16 engines, whose bias and residual are added in fp32 by the
 * LayerNorm that follows. */
void ake_cuda_gemm_run_f32out(ake_cuda_gemm *g, cudaStream_t stream, ake_dtype dt, int M, int N, int K, const void *X,
                              const void *W, float *Y32);

/* The GEMMs of training (src/train/): row-major C[M, N] (fp32) = op(A) op(B) + beta C, op(A)
 * [M, K] and op(B) [K, N], ta / tb 'N' (A stored [M, K], B [K, N]) or 'T' (A stored [K, M], B
 * [N, K]); A and B of dt (F32: full fp32 products, no TF32; F16 or BF16: fp32 accumulation);
 * beta 0 or 1 (accumulate into C: weight gradients). The heuristic's first algorithm (no
 * timing: C += cannot be re-run). Enqueued on stream; capturable once the shape was seen. */
void ake_cuda_gemm_train(ake_cuda_gemm *g, cudaStream_t stream, char ta, char tb, int M, int N, int K, ake_dtype dt,
                         const void *A, const void *B, float beta, float *C);

/* ---- 8-bit GEMMs (W8A8) ----------------------------------------------------------------
 * Weights carry a per-output-channel scale sw[n], activations a per-row (per-token) scale
 * sx[m] (see quant.cuh): X[m, k] ~ Xq[m, k] sx[m], W[n, k] ~ Wq[n, k] sw[n]. Both take the
 * same row-major layouts as ake_cuda_gemm_run (cuBLASLt's "TN"), share its handle,
 * workspace and per-shape cache, and are capturable into a CUDA graph once the shape was
 * seen by an eager call. */

/* How ake_cuda_gemm_run_fp8 applies the scales on this device. */
typedef enum {
    AKE_FP8_NONE = 0,      /* no FP8 tensor cores (compute capability below 8.9): do not call it */
    AKE_FP8_OUTER_VEC = 1, /* cuBLASLt scales by sx[m] sw[n] ("outer vector" scaling) and adds the
                              bias in its epilogue: one kernel (shapes it has no algorithm for
                              take the dequant path, see ake_cuda_gemm_fp8_shape_path) */
    AKE_FP8_DEQUANT = 2    /* cuBLASLt writes the unscaled fp32 sums to a scratch buffer of the
                              handle, a second kernel applies sx, sw and the bias */
} ake_fp8_path;

/* The FP8 path of this handle's device. The first call probes it (outside stream capture:
 * it allocates, runs a 256^3 FP8 GEMM with outer-vector scales and bias, checks the exact
 * result, and synchronizes); later calls return the cached answer. */
ake_fp8_path ake_cuda_gemm_fp8_path(ake_cuda_gemm *g);

/* The path one FP8 shape takes (bias: whether it has one): the device's path, except that a
 * shape for which cuBLASLt's heuristic has no outer-vector algorithm takes AKE_FP8_DEQUANT.
 * Asks the heuristic once per shape (host only) and caches the answer, as the shape's first
 * ake_cuda_gemm_run_fp8 would. */
ake_fp8_path ake_cuda_gemm_fp8_shape_path(ake_cuda_gemm *g, ake_dtype dt, int M, int N, int K, int bias);

/* on != 0: FP8 GEMMs take the AKE_FP8_DEQUANT path even where outer-vector scaling works
 * (tests and measurements of the fallback). Call before the shapes are first run. */
void ake_cuda_gemm_fp8_force_dequant(ake_cuda_gemm *g, int on);

/* Y[M, N] = sx[m] sw[n] sum_k Xq[m, k] Wq[n, k] + bias[n], fp32 accumulation (cuBLASLt's
 * precise FP8 mode, not fast accumulation), one rounding to dt.
 * Xq: [M, K] FP8 E4M3; Wq: [N, K] FP8 E4M3 (HF Linear layout); sx: [M] fp32; sw: [N] fp32;
 * bias: [N] of dt or NULL; Y: [M, N] of dt (F16 or BF16), not aliasing the inputs.
 * Needs ake_cuda_gemm_fp8_path(g) != AKE_FP8_NONE (the handle's first FP8 call probes it and
 * must be eager, as a shape's first call is anyway; on the dequant path that call also grows
 * the handle's fp32 scratch to M x N); K % 16 == 0 and N % 16 == 0 (cuBLASLt's FP8 alignment
 * rules); every pointer 16-byte aligned. */
void ake_cuda_gemm_run_fp8(ake_cuda_gemm *g, cudaStream_t stream, ake_dtype dt, int M, int N, int K, const void *Xq,
                           const float *sx, const void *Wq, const float *sw, const void *bias, void *Y);

/* ACC[M, N] = sum_k Xq[m, k] Wq[n, k] exactly, in int32, through cuBLASLt's IMMA kernels
 * (CUBLAS_COMPUTE_32I); the scales and the bias are applied by the kernel that reads ACC
 * (quant.cuh: ake_cuda_dequant_bias, ake_cuda_layernorm_quant, ake_cuda_gelu_quant).
 * Xq: [M, K] int8; Wq: [N, K] int8; ACC: [M, N] int32, not aliasing the inputs.
 * cuBLASLt's IMMA rules for the regular (column-major) ordering: "TN" only (as here), the
 * dimensions m, k and the leading dimensions multiples of 4 (here N % 4 == 0 and K % 4 == 0),
 * pointers 4-byte aligned (16 asserted here, for the fast kernels). |ACC| < 2^31 holds for
 * K < 133144 (127^2 K). */
void ake_cuda_gemm_run_i8(ake_cuda_gemm *g, cudaStream_t stream, int M, int N, int K, const void *Xq, const void *Wq,
                          int32_t *ACC);

#ifdef __cplusplus
}
#endif
#endif
