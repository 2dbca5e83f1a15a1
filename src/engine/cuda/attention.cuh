/* Attention over packed sequences (no padding): softmax(q k^T / sqrt(D)) v per sequence and
 * head, on tensor cores (mma.sync m16n8k16, fp32 accumulators) with an online softmax, so
 * scores never leave registers. Plain C header, usable from C tests.
 *
 * Work is cut into query tiles of AKE_CUDA_ATTN_TILE rows of one sequence; the host lists
 * them (ake_cuda_attention_tiles) and uploads the list with the batch, so that a captured
 * graph serves any mix of lengths whose tile count fits its grid. */
#ifndef AKE_ENGINE_CUDA_ATTENTION_CUH
#define AKE_ENGINE_CUDA_ATTENTION_CUH

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "model/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AKE_CUDA_ATTN_TILE 64

/* Writes the query tiles of the packed batch cu [n+1] as int32 quadruples
 * {first token of the sequence, its length, first query row (multiple of 64), 0} into
 * tiles (room for ake_cuda_attention_max_tiles(cu[n], n) quadruples); returns the count. */
int ake_cuda_attention_tiles(const int32_t *cu, int32_t n, int32_t *tiles);
/* Most tiles a batch of at most max_tokens tokens in at most max_seqs sequences has. */
int ake_cuda_attention_max_tiles(int32_t max_tokens, int32_t max_seqs);
/* 1 when head_dim has a kernel (32, 64, 128), else 0. */
int ake_cuda_attention_supports(int head_dim);

/* ctx[t, h*D + c] = sum_j softmax_j(q_t . k_j / sqrt(D)) v_j[c], j over t's sequence.
 * qkv: [T, 3*H*D] (q | k | v, head h at columns h*D of each third), ctx: [T, H*D], of dt
 * (F16 or BF16), 16-byte aligned. tiles: device copy of the list above; *ntiles_dev its
 * count (device memory, read by the kernel); the grid covers max_tiles tiles x heads, so
 * *ntiles_dev <= max_tiles. Rows of ctx outside every tile are not written. version: the
 * kernel, 1 or 2 (0: the default, 2; v1 stays for the kernel lab, dev/cuda/NOTES.md). */
void ake_cuda_attention(cudaStream_t stream, ake_dtype dt, void *ctx, const void *qkv, const int32_t *tiles,
                        const int32_t *ntiles_dev, int max_tiles, int heads, int head_dim, int version);

#ifdef __cplusplus
}
#endif
#endif
