/* Element type conversion: weights once at engine creation, and the last hidden state to fp32
 * for ake_engine_embed_tokens. */
#include "engine/cuda/common.cuh"

extern "C" {
#include "engine/cuda/convert.cuh"
}

static __device__ __forceinline__ float to_f32(const void *p, int dt, size_t i) {
    if (dt == AKE_DT_F32) return ((const float *)p)[i];
    if (dt == AKE_DT_F16) return __half2float(((const __half *)p)[i]);
    return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
}

__global__ void convert_kernel(void *dst, int dst_dt, const void *src, int src_dt, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float v = to_f32(src, src_dt, i);
        if (dst_dt == AKE_DT_F32) ((float *)dst)[i] = v;
        else if (dst_dt == AKE_DT_F16) ((__half *)dst)[i] = __float2half_rn(v);
        else ((__nv_bfloat16 *)dst)[i] = __float2bfloat16_rn(v);
    }
}

extern "C" void ake_cuda_convert(cudaStream_t stream, ake_dtype dst_dt, void *dst, ake_dtype src_dt, const void *src,
                                 size_t n) {
    AKE_ASSERT(dst_dt == AKE_DT_F32 || dst_dt == AKE_DT_F16 || dst_dt == AKE_DT_BF16);
    AKE_ASSERT(src_dt == AKE_DT_F32 || src_dt == AKE_DT_F16 || src_dt == AKE_DT_BF16);
    if (n == 0) return;
    size_t blocks = (n + 255) / 256;
    if (blocks > 4096) blocks = 4096;
    convert_kernel<<<(unsigned)blocks, 256, 0, stream>>>(dst, (int)dst_dt, src, (int)src_dt, n);
    CUDA_CHECK_LAUNCH();
}
