/* Pooling + L2 normalize. Threads split a sequence's tokens into groups (one 16-byte
 * column chunk per thread, ngrp token groups), partial results meet in shared memory. */
#include "engine/cuda/common.cuh"

extern "C" {
#include "engine/cuda/pool.cuh"
}

/* 1024 threads: d/8 column chunks x up to 1024/(d/8) token groups, so that a long sequence
 * is read by many threads at once (256 threads left bert-base S=512 at 14% of its floor). */
enum { POOL_THREADS = 1024, POOL_MEAN = 0, POOL_CLS = 1, POOL_MAX = 2 };

template <typename T>
__global__ void __launch_bounds__(POOL_THREADS)
    pool_kernel(float *out, const T *x, const int32_t *cu, const int32_t *n_dev, int d, int mode, int normalize) {
    __shared__ float part[2048 * 4]; /* [ngrp, d]: ngrp * d <= 8 * (ngrp * chunks) <= 8 * 1024 */
    __shared__ float red[POOL_THREADS / 32];
    const int s = blockIdx.x;
    if (s >= *n_dev) return;
    const int start = cu[s], len = cu[s + 1] - start, tokens = mode == POOL_CLS ? 1 : len;
    const int chunks = d / 8, ngrp = POOL_THREADS / chunks, tid = threadIdx.x;
    const int ch = tid % chunks, grp = tid / chunks;
    if (grp < ngrp) {
        float acc[8], v[8];
#pragma unroll
        for (int j = 0; j < 8; j++) acc[j] = mode == POOL_MAX ? -INFINITY : 0.0f;
        for (int t = grp; t < tokens; t += ngrp) {
            vec8<T>::load(x + (size_t)(start + t) * d + ch * 8, v);
#pragma unroll
            for (int j = 0; j < 8; j++) acc[j] = mode == POOL_MAX ? fmaxf(acc[j], v[j]) : acc[j] + v[j];
        }
#pragma unroll
        for (int j = 0; j < 8; j++) part[grp * d + ch * 8 + j] = acc[j];
    }
    __syncthreads();
    float ss = 0.0f;
    for (int c = tid; c < d; c += POOL_THREADS) {
        float v = part[c];
        for (int g = 1; g < ngrp && g < tokens; g++) v = mode == POOL_MAX ? fmaxf(v, part[g * d + c]) : v + part[g * d + c];
        if (mode == POOL_MEAN) v /= (float)len;
        part[c] = v; /* only this thread reads column c again */
        ss += v * v;
    }
    ss = warp_sum(ss);
    if ((tid & 31) == 0) red[tid >> 5] = ss;
    __syncthreads();
    float total = 0.0f;
#pragma unroll
    for (int w = 0; w < POOL_THREADS / 32; w++) total += red[w];
    const float inv = normalize ? 1.0f / fmaxf(sqrtf(total), 1e-12f) : 1.0f;
    for (int c = tid; c < d; c += POOL_THREADS) out[(size_t)s * d + c] = part[c] * inv;
}

extern "C" void ake_cuda_pool(cudaStream_t stream, ake_dtype dt, float *out, const void *x, const int32_t *cu,
                              const int32_t *n_dev, int max_seqs, int d, int mode, int normalize) {
    AKE_ASSERT(d > 0 && d % 8 == 0 && d / 8 <= POOL_THREADS && mode >= 0 && mode <= 2 && max_seqs >= 0);
    AKE_ASSERT((uintptr_t)x % 16 == 0);
    if (max_seqs == 0) return;
    AKE_DISPATCH_DTYPE_OR_F32(dt, T,
                              pool_kernel<T><<<(unsigned)max_seqs, POOL_THREADS, 0, stream>>>(
                                  out, (const T *)x, cu, n_dev, d, mode, normalize));
    CUDA_CHECK_LAUNCH();
}
