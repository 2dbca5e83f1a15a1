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

/* The fp32 residual stream (bf16 engines): v = in32[r] + bias32 + res32[r] in fp32, then
 * out[r] = LN(v) * gamma + beta written twice: in dt (the next GEMM's input) and in fp32 to
 * out32 (the next residual). in32, res32, out32: [rows, d] fp32; out32 may alias res32 (rows
 * are read whole first); out: [rows, d] of dt; bias32, gamma, beta: [d] fp32. */
void ake_cuda_layernorm_f32(cudaStream_t stream, ake_dtype dt, void *out, float *out32, const float *in32,
                            const float *bias32, const float *res32, const float *gamma, const float *beta, int rows,
                            int d, float eps);

#ifdef __cplusplus
}
#endif
#endif
