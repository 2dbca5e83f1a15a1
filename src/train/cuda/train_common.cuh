/* Internals of the training kernels (CUDA C++ only). */
#ifndef AKE_TRAIN_CUDA_TRAIN_COMMON_CUH
#define AKE_TRAIN_CUDA_TRAIN_COMMON_CUH

#include "engine/cuda/common.cuh"

template <typename T> __device__ __forceinline__ T to_lo(float v);
template <> __device__ __forceinline__ float to_lo<float>(float v) { return v; }
template <> __device__ __forceinline__ __half to_lo<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 to_lo<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

static inline unsigned ake_trk_blocks(int64_t work, int per_block, unsigned cap) {
    int64_t b = (work + per_block - 1) / per_block;
    if (b < 1) b = 1;
    return b > (int64_t)cap ? cap : (unsigned)b;
}

/* Sum over a block of blockDim.x (a multiple of 32, <= 1024) threads, in a fixed order; every
 * thread gets the total. scratch: 32 floats of shared memory. */
static __device__ __forceinline__ float block_sum(float v, float *scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = lane < warps ? scratch[lane] : 0.0f;
    return warp_sum(t);
}

#endif
