/* Residual + LayerNorm, fused: one warp per row, the row held in registers.
 * Plain C header (the launcher is extern "C"), usable from C tests. */
#ifndef AKE_ENGINE_CUDA_LAYERNORM_CUH
#define AKE_ENGINE_CUDA_LAYERNORM_CUH

#include <cuda_runtime_api.h>

#include "model/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest hidden size the LayerNorm kernels take (8 x 16-byte chunks per lane). */
#define AKE_CUDA_LN_MAX_D 2048

/* out[r] = LN(in[r] + res[r]) * gamma + beta over d features, for r < rows.
 * out, in, res: [rows, d] of dt (F16 or BF16); res may be NULL (plain LN) and out may
 * alias in or res (each row is read whole before it is written). gamma, beta: [d] fp32.
 * d % 8 == 0 and d <= AKE_CUDA_LN_MAX_D; pointers 16-byte aligned. Statistics in fp32. */
void ake_cuda_layernorm(cudaStream_t stream, ake_dtype dt, void *out, const void *in, const void *res,
                        const float *gamma, const float *beta, int rows, int d, float eps);

#ifdef __cplusplus
}
#endif
#endif
