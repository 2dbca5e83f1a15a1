/* Pooling (mean / cls / max) + optional L2 normalization, fused: one block per sequence.
 * Plain C header, usable from C tests. */
#ifndef AKE_ENGINE_CUDA_POOL_CUH
#define AKE_ENGINE_CUDA_POOL_CUH

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "model/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* For each sequence s < *n_dev (s < max_seqs): out[s] = pool(x[cu[s] .. cu[s+1]-1]) and,
 * when normalize, out[s] /= max(||out[s]||, 1e-12) (torch.nn.functional.normalize).
 * mode: 0 mean, 1 cls (first token), 2 max: the values of ake_pooling.
 * out: [max_seqs, d] fp32; x: [T, d] of dt (F16, BF16 or F32); cu: [n+1] and n_dev: device memory (read by
 * the kernel, so a captured graph serves any n <= max_seqs). d % 8 == 0, d <= 2048. */
void ake_cuda_pool(cudaStream_t stream, ake_dtype dt, float *out, const void *x, const int32_t *cu,
                   const int32_t *n_dev, int max_seqs, int d, int mode, int normalize);

#ifdef __cplusplus
}
#endif
#endif
