/* Embeddings gather + LayerNorm, fused: one warp per token.
 * Plain C header (the launcher is extern "C"), usable from C tests. */
#ifndef AKE_ENGINE_CUDA_EMBED_CUH
#define AKE_ENGINE_CUDA_EMBED_CUH

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "model/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[t] = LN(word[ids[t]] + pos_emb[pos[t]] + type_emb[0]) * gamma + beta, for t < rows.
 * out: [rows, d]; word: [vocab, d]; pos_emb: [max_position, d]; type_emb: [types, d], all
 * of dt (F16 or BF16). ids, pos: [rows] device arrays, already checked against vocab and
 * max_position by the engine. gamma, beta: [d] fp32. d % 8 == 0, d <= 2048. Token type 0:
 * single-sequence inputs, as the CPU engine. out32 [rows, d] fp32: a second copy of the output
 * in fp32 (the residual stream of bf16 engines), or NULL. */
void ake_cuda_embed_layernorm(cudaStream_t stream, ake_dtype dt, void *out, float *out32, const int32_t *ids,
                              const int32_t *pos, const void *word, const void *pos_emb, const void *type_emb,
                              const float *gamma, const float *beta, int rows, int d, float eps);

/* The same with an 8-bit word table (the W8A8 engines): word[v] ~ wq[v] * word_scale[v], wq
 * [vocab, d] of qdt (I8 or F8_E4M3, 8-byte aligned rows), word_scale [vocab] fp32, dequantized
 * on lookup (the model format's per-row scales, model.h); pos_emb and type_emb of dt. */
void ake_cuda_embed_layernorm_q8(cudaStream_t stream, ake_dtype dt, void *out, const int32_t *ids, const int32_t *pos,
                                 ake_dtype qdt, const void *wq, const float *word_scale, const void *pos_emb,
                                 const void *type_emb, const float *gamma, const float *beta, int rows, int d,
                                 float eps);

#ifdef __cplusplus
}
#endif
#endif
