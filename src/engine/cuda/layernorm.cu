/* Residual + LayerNorm: x = LN(y + x) after the output projections. Memory bound:
 * reads 2 rows and writes 1 (2 bytes each), see dev/cuda/NOTES.md for the floor. */
#include "engine/cuda/common.cuh"
#include "engine/cuda/ln_row.cuh"

extern "C" {
#include "engine/cuda/layernorm.cuh"
}

enum { LN_WARPS = 8 }; /* rows per block of 256 threads */

template <typename T, int NC>
__global__ void __launch_bounds__(LN_WARPS * 32)
    layernorm_kernel(T *out, const T *in, const T *res, const float *gamma, const float *beta, int rows, int d,
                     float eps) {
    const int row = blockIdx.x * LN_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    const T *x = in + (size_t)row * d;
    const T *r = res ? res + (size_t)row * d : nullptr;
    float v[NC][8];
#pragma unroll
    for (int i = 0; i < NC; i++) {
        const int c = (lane + 32 * i) * 8;
        if (c < d) {
            vec8<T>::load(x + c, v[i]);
            if (r) {
                float rr[8];
                vec8<T>::load(r + c, rr);
#pragma unroll
                for (int j = 0; j < 8; j++) v[i][j] += rr[j];
            }
        }
    }
    ln_row_store<T, NC>(v, out + (size_t)row * d, gamma, beta, d, eps, lane);
}

extern "C" void ake_cuda_layernorm(cudaStream_t stream, ake_dtype dt, void *out, const void *in, const void *res,
                                   const float *gamma, const float *beta, int rows, int d, float eps) {
    AKE_ASSERT(d > 0 && d % 8 == 0 && d <= AKE_CUDA_LN_MAX_D && rows >= 0);
    AKE_ASSERT(((uintptr_t)out | (uintptr_t)in | (uintptr_t)res | (uintptr_t)gamma | (uintptr_t)beta) % 16 == 0);
    if (rows == 0) return;
    const dim3 grid((unsigned)((rows + LN_WARPS - 1) / LN_WARPS)), block(LN_WARPS * 32);
    AKE_DISPATCH_DTYPE(dt, T, AKE_DISPATCH_NC(d, NC, layernorm_kernel<T, NC><<<grid, block, 0, stream>>>(
                                                         (T *)out, (const T *)in, (const T *)res, gamma, beta, rows,
                                                         d, eps)));
    CUDA_CHECK_LAUNCH();
}

template <typename T, int NC>
__global__ void __launch_bounds__(LN_WARPS * 32)
    layernorm_f32_kernel(T *out, float *out32, const float *in32, const float *bias32, const float *res32,
                         const float *gamma, const float *beta, int rows, int d, float eps) {
    const int row = blockIdx.x * LN_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    const float *x = in32 + (size_t)row * d, *r = res32 + (size_t)row * d;
    float v[NC][8];
#pragma unroll
    for (int i = 0; i < NC; i++) {
        const int c = (lane + 32 * i) * 8;
        if (c < d) {
            float b[8], rr[8];
            load8_f32(x + c, v[i]);
            load8_f32(bias32 + c, b);
            load8_f32(r + c, rr);
#pragma unroll
            for (int j = 0; j < 8; j++) v[i][j] += b[j] + rr[j];
        }
    }
    ln_row_store<T, NC>(v, out + (size_t)row * d, gamma, beta, d, eps, lane, out32 + (size_t)row * d);
}

extern "C" void ake_cuda_layernorm_f32(cudaStream_t stream, ake_dtype dt, void *out, float *out32, const float *in32,
                                       const float *bias32, const float *res32, const float *gamma, const float *beta,
                                       int rows, int d, float eps) {
    AKE_ASSERT(d > 0 && d % 8 == 0 && d <= AKE_CUDA_LN_MAX_D && rows >= 0);
    AKE_ASSERT(((uintptr_t)out | (uintptr_t)out32 | (uintptr_t)in32 | (uintptr_t)bias32 | (uintptr_t)res32 |
                (uintptr_t)gamma | (uintptr_t)beta) % 16 == 0);
    if (rows == 0) return;
    const dim3 grid((unsigned)((rows + LN_WARPS - 1) / LN_WARPS)), block(LN_WARPS * 32);
    AKE_DISPATCH_DTYPE(dt, T, AKE_DISPATCH_NC(d, NC, layernorm_f32_kernel<T, NC><<<grid, block, 0, stream>>>(
                                                         (T *)out, out32, in32, bias32, res32, gamma, beta, rows, d,
                                                         eps)));
    CUDA_CHECK_LAUNCH();
}
