/* Exact (erf) GELU in place, after the first FFN GEMM (whose epilogue added the bias).
 * Plain C header, usable from C tests. */
#ifndef AKE_ENGINE_CUDA_GELU_CUH
#define AKE_ENGINE_CUDA_GELU_CUH

#include <cuda_runtime_api.h>
#include <stddef.h>

#include "model/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* h[i] = 0.5 h[i] (1 + erf(h[i] / sqrt(2))) for i < n, computed in fp32 (HF "gelu").
 * h: [n] of dt (F16 or BF16), 16-byte aligned, n % 8 == 0. */
void ake_cuda_gelu(cudaStream_t stream, ake_dtype dt, void *h, size_t n);

#ifdef __cplusplus
}
#endif
#endif
