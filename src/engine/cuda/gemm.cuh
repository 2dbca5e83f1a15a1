/* GEMMs of the encoder through cuBLASLt: Y = X W^T (+ bias) (+ R), with the bias (and,
 * optionally, tanh-GELU) applied in the GEMM's epilogue. Algorithm choice is cached per
 * shape: cuBLASLt's heuristic proposes up to 8 candidates, the first call of a shape made
 * outside stream capture times them on the real operands and keeps the fastest.
 * Plain C header, usable from C tests. */
#ifndef AKE_ENGINE_CUDA_GEMM_CUH
#define AKE_ENGINE_CUDA_GEMM_CUH

#include <cuda_runtime_api.h>
#include <stddef.h>

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

#ifdef __cplusplus
}
#endif
#endif
