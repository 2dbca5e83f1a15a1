/* Embeddings gather + LayerNorm: the first op of the forward. Memory bound: per token
 * three rows read (word row random, position and type rows cached) and one written. */
#include "engine/cuda/common.cuh"
#include "engine/cuda/ln_row.cuh"

extern "C" {
#include "engine/cuda/embed.cuh"
#include "engine/cuda/layernorm.cuh"
}

enum { EMB_WARPS = 8 };

template <typename T, int NC>
__global__ void __launch_bounds__(EMB_WARPS * 32)
    embed_layernorm_kernel(T *out, float *out32, const int32_t *ids, const int32_t *pos, const T *word, const T *pos_emb,
                           const T *type_emb, const float *gamma, const float *beta, int rows, int d, float eps) {
    const int row = blockIdx.x * EMB_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    const T *w = word + (size_t)ids[row] * d, *p = pos_emb + (size_t)pos[row] * d;
    float v[NC][8];
#pragma unroll
    for (int i = 0; i < NC; i++) {
        const int c = (lane + 32 * i) * 8;
        if (c < d) {
            float a[8], b[8];
            vec8<T>::load(w + c, v[i]);
            vec8<T>::load(p + c, a);
            vec8<T>::load(type_emb + c, b);
#pragma unroll
            for (int j = 0; j < 8; j++) v[i][j] += a[j] + b[j];
        }
    }
    ln_row_store<T, NC>(v, out + (size_t)row * d, gamma, beta, d, eps, lane, out32 ? out32 + (size_t)row * d : nullptr);
}

extern "C" void ake_cuda_embed_layernorm(cudaStream_t stream, ake_dtype dt, void *out, float *out32,
                                         const int32_t *ids, const int32_t *pos, const void *word, const void *pos_emb,
                                         const void *type_emb, const float *gamma, const float *beta, int rows, int d,
                                         float eps) {
    AKE_ASSERT(d > 0 && d % 8 == 0 && d <= AKE_CUDA_LN_MAX_D && rows >= 0);
    AKE_ASSERT(((uintptr_t)out | (uintptr_t)out32 | (uintptr_t)word | (uintptr_t)pos_emb | (uintptr_t)type_emb) % 16 == 0);
    if (rows == 0) return;
    const dim3 grid((unsigned)((rows + EMB_WARPS - 1) / EMB_WARPS)), block(EMB_WARPS * 32);
    AKE_DISPATCH_DTYPE(dt, T, AKE_DISPATCH_NC(d, NC, embed_layernorm_kernel<T, NC><<<grid, block, 0, stream>>>(
                                                         (T *)out, out32, ids, pos, (const T *)word, (const T *)pos_emb,
                                                         (const T *)type_emb, gamma, beta, rows, d, eps)));
    CUDA_CHECK_LAUNCH();
}
