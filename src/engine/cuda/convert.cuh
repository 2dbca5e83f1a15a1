/* Element type conversion (F32/F16/BF16 -> F16/BF16/F32): weights at engine creation, hidden
 * states for ake_engine_embed_tokens.
 * Plain C header, usable from C tests. */
#ifndef AKE_ENGINE_CUDA_CONVERT_CUH
#define AKE_ENGINE_CUDA_CONVERT_CUH

#include <cuda_runtime_api.h>
#include <stddef.h>

#include "model/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* dst[i] = (dst_dt) src[i] for i < n, rounding to nearest even. Both in device memory;
 * dtypes F32, F16 or BF16. */
void ake_cuda_convert(cudaStream_t stream, ake_dtype dst_dt, void *dst, ake_dtype src_dt, const void *src, size_t n);

#ifdef __cplusplus
}
#endif
#endif
