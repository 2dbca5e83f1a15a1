/* Embeddings gather + LayerNorm: the first op of the forward. Memory bound: per token
 * three rows read (word row random, position and type rows cached) and one written. */
#include <cuda_fp8.h>

#include "engine/cuda/common.cuh"
#include "engine/cuda/ln_row.cuh"

#include <type_traits>

extern "C" {
#include "engine/cuda/embed.cuh"
#include "engine/cuda/layernorm.cuh"
}

enum { EMB_WARPS = 8 };

/* A word row of 16-bit values (W = T) or of 8-bit codes with a row scale (W = int8_t: INT8,
 * W = __nv_fp8_e4m3: FP8 E4M3). */
template <typename W, typename T>
static __device__ __forceinline__ void load_word8(const W *w, float scale, float v[8]) {
    if constexpr (std::is_same<W, T>::value) {
        (void)scale;
        vec8<T>::load(w, v);
    } else {
        const uint2 u = *reinterpret_cast<const uint2 *>(w);
        const uint32_t word[2] = {u.x, u.y};
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const uint8_t b = (uint8_t)(word[j >> 2] >> (8 * (j & 3)));
            if constexpr (std::is_same<W, int8_t>::value) {
                v[j] = (float)(int8_t)b * scale;
            } else {
                const __half_raw h = __nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)b, __NV_E4M3);
                v[j] = __half2float(__half(h)) * scale;
            }
        }
    }
}

template <typename T, typename W, int NC>
__global__ void __launch_bounds__(EMB_WARPS * 32)
    embed_layernorm_kernel(T *out, float *out32, const int32_t *ids, const int32_t *pos, const W *word,
                           const float *word_scale, const T *pos_emb, const T *type_emb, const float *gamma,
                           const float *beta, int rows, int d, float eps) {
    const int row = blockIdx.x * EMB_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    const W *w = word + (size_t)ids[row] * d;
    const T *p = pos_emb + (size_t)pos[row] * d;
    const float ws = word_scale ? __ldg(word_scale + ids[row]) : 1.0f;
    float v[NC][8];
#pragma unroll
    for (int i = 0; i < NC; i++) {
        const int c = (lane + 32 * i) * 8;
        if (c < d) {
            float a[8], b[8];
            load_word8<W, T>(w + c, ws, v[i]);
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
    AKE_DISPATCH_DTYPE(dt, T, AKE_DISPATCH_NC(d, NC, embed_layernorm_kernel<T, T, NC><<<grid, block, 0, stream>>>(
                                                         (T *)out, out32, ids, pos, (const T *)word, nullptr,
                                                         (const T *)pos_emb, (const T *)type_emb, gamma, beta, rows,
                                                         d, eps)));
    CUDA_CHECK_LAUNCH();
}

extern "C" void ake_cuda_embed_layernorm_q8(cudaStream_t stream, ake_dtype dt, void *out, const int32_t *ids,
                                            const int32_t *pos, ake_dtype qdt, const void *wq, const float *word_scale,
                                            const void *pos_emb, const void *type_emb, const float *gamma,
                                            const float *beta, int rows, int d, float eps) {
    AKE_ASSERT(d > 0 && d % 8 == 0 && d <= AKE_CUDA_LN_MAX_D && rows >= 0 && word_scale);
    AKE_ASSERT(((uintptr_t)out | (uintptr_t)pos_emb | (uintptr_t)type_emb) % 16 == 0 && (uintptr_t)wq % 8 == 0);
    AKE_ASSERT(qdt == AKE_DT_I8 || qdt == AKE_DT_F8_E4M3);
    if (rows == 0) return;
    const dim3 grid((unsigned)((rows + EMB_WARPS - 1) / EMB_WARPS)), block(EMB_WARPS * 32);
    AKE_DISPATCH_DTYPE(dt, T, AKE_DISPATCH_NC(d, NC, {
        if (qdt == AKE_DT_I8)
            embed_layernorm_kernel<T, int8_t, NC><<<grid, block, 0, stream>>>(
                (T *)out, nullptr, ids, pos, (const int8_t *)wq, word_scale, (const T *)pos_emb, (const T *)type_emb,
                gamma, beta, rows, d, eps);
        else
            embed_layernorm_kernel<T, __nv_fp8_e4m3, NC><<<grid, block, 0, stream>>>(
                (T *)out, nullptr, ids, pos, (const __nv_fp8_e4m3 *)wq, word_scale, (const T *)pos_emb,
                (const T *)type_emb, gamma, beta, rows, d, eps);
    }));
    CUDA_CHECK_LAUNCH();
}
