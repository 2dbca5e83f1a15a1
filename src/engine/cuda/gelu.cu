/* Exact GELU, elementwise and in place: 2 bytes read and 2 written per element. */
#include "engine/cuda/common.cuh"

extern "C" {
#include "engine/cuda/gelu.cuh"
}

template <typename T> __global__ void __launch_bounds__(256) gelu_kernel(T *h, size_t chunks) {
    for (size_t c = blockIdx.x * (size_t)blockDim.x + threadIdx.x; c < chunks; c += (size_t)gridDim.x * blockDim.x) {
        float v[8];
        vec8<T>::load(h + c * 8, v);
#pragma unroll
        for (int j = 0; j < 8; j++) v[j] = 0.5f * v[j] * (1.0f + erff(v[j] * 0.70710678118654752f));
        vec8<T>::store(h + c * 8, v);
    }
}

extern "C" void ake_cuda_gelu(cudaStream_t stream, ake_dtype dt, void *h, size_t n) {
    AKE_ASSERT(n % 8 == 0 && (uintptr_t)h % 16 == 0);
    const size_t chunks = n / 8;
    if (chunks == 0) return;
    size_t blocks = (chunks + 255) / 256;
    if (blocks > 132 * 16) blocks = 132 * 16; /* grid-stride beyond a few waves */
    AKE_DISPATCH_DTYPE(dt, T, gelu_kernel<T><<<(unsigned)blocks, 256, 0, stream>>>((T *)h, chunks));
    CUDA_CHECK_LAUNCH();
}
