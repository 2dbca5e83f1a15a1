/* The LayerNorm of one row held in a warp's registers, shared by embed.cu,
 * layernorm.cu and quant.cu (CUDA C++ only). */
#ifndef AKE_ENGINE_CUDA_LN_ROW_CUH
#define AKE_ENGINE_CUDA_LN_ROW_CUH

#include "engine/cuda/common.cuh"

/* Mean and 1/sqrt(variance + eps) of a row of d values held by a warp (lane's chunks in v),
 * two-pass (mean, then centered variance) in fp32, as the CPU engine. */
template <int NC>
__device__ __forceinline__ void ln_row_stats(const float (&v)[NC][8], int d, float eps, int lane, float &mean,
                                             float &rstd) {
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < NC; i++)
        if ((lane + 32 * i) * 8 < d)
#pragma unroll
            for (int j = 0; j < 8; j++) s += v[i][j];
    mean = warp_sum(s) / (float)d;
    float q = 0.0f;
#pragma unroll
    for (int i = 0; i < NC; i++)
        if ((lane + 32 * i) * 8 < d)
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const float t = v[i][j] - mean;
                q += t * t;
            }
    rstd = rsqrtf(warp_sum(q) / (float)d + eps);
}

/* Lane `lane` holds chunks c = lane + 32*i (i < NC) of a row of d features, 8 values each
 * (only chunks with 8*c < d are meaningful). Writes LN(row) * gamma + beta to out [d] and,
 * when out32 is not NULL, in fp32 to out32 [d] too.
 * Two-pass statistics (mean, then centered variance) in fp32, as the CPU engine. */
template <typename T, int NC>
__device__ __forceinline__ void ln_row_store(const float (&v)[NC][8], T *out, const float *gamma, const float *beta,
                                             int d, float eps, int lane, float *out32 = nullptr) {
    float mean, rstd;
    ln_row_stats<NC>(v, d, eps, lane, mean, rstd);
#pragma unroll
    for (int i = 0; i < NC; i++) {
        const int c = (lane + 32 * i) * 8;
        if (c < d) {
            float g[8], b[8], o[8];
            load8_f32(gamma + c, g);
            load8_f32(beta + c, b);
#pragma unroll
            for (int j = 0; j < 8; j++) o[j] = (v[i][j] - mean) * rstd * g[j] + b[j];
            vec8<T>::store(out + c, o);
            if (out32) {
                *reinterpret_cast<float4 *>(out32 + c) = make_float4(o[0], o[1], o[2], o[3]);
                *reinterpret_cast<float4 *>(out32 + c + 4) = make_float4(o[4], o[5], o[6], o[7]);
            }
        }
    }
}

/* Calls F<NC> for the chunk count that covers d (1..8), as a switch over constants. */
#define AKE_DISPATCH_NC(d, NC, ...)                                 \
    do {                                                            \
        switch (((d) / 8 + 31) / 32) {                              \
        case 1: { constexpr int NC = 1; __VA_ARGS__; } break;       \
        case 2: { constexpr int NC = 2; __VA_ARGS__; } break;       \
        case 3: { constexpr int NC = 3; __VA_ARGS__; } break;       \
        case 4: { constexpr int NC = 4; __VA_ARGS__; } break;       \
        case 5: { constexpr int NC = 5; __VA_ARGS__; } break;       \
        case 6: { constexpr int NC = 6; __VA_ARGS__; } break;       \
        case 7: { constexpr int NC = 7; __VA_ARGS__; } break;       \
        case 8: { constexpr int NC = 8; __VA_ARGS__; } break;       \
        default: AKE_ASSERT(!"hidden size over 2048");              \
        }                                                           \
    } while (0)

#endif
