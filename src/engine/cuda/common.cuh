/* Internals shared by the CUDA kernels (CUDA C++ only; the op headers beside it are
 * plain C so that C tests can call the launchers).
 *
 * Element types: __half (fp16) and __nv_bfloat16 (bf16) for activations and weights;
 * every reduction (LayerNorm statistics, softmax, GEMM and attention accumulators)
 * runs in fp32. Vector accesses move 16 bytes = 8 elements per thread. */
#ifndef AKE_ENGINE_CUDA_COMMON_CUH
#define AKE_ENGINE_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "base/status.h"
#include "model/safetensors.h"
}

/* Aborts with file:line and CUDA's message: for broken invariants and device faults
 * on the hot path (an illegal address leaves the context unusable anyway). Errors a
 * user can cause (no GPU, out of memory at creation) are returned as ake_status. */
extern "C" void ake_cuda_fail(const char *expr, int code, const char *msg, const char *file, int line)
    __attribute__((noreturn));
#define CUDA_CHECK(x)                                                                        \
    do {                                                                                     \
        cudaError_t e_ = (x);                                                                \
        if (e_ != cudaSuccess) ake_cuda_fail(#x, (int)e_, cudaGetErrorString(e_), __FILE__, __LINE__); \
    } while (0)
/* After a launch: catches bad configurations at once (not asynchronous faults). */
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

/* 8 elements of T in 16 bytes <-> 8 floats. */
template <typename T> struct vec8;

template <> struct vec8<__half> {
    static __device__ __forceinline__ void load(const __half *p, float f[8]) {
        uint4 u = *reinterpret_cast<const uint4 *>(p);
        const __half2 *h = reinterpret_cast<const __half2 *>(&u);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float2 v = __half22float2(h[i]);
            f[2 * i] = v.x;
            f[2 * i + 1] = v.y;
        }
    }
    static __device__ __forceinline__ void store(__half *p, const float f[8]) {
        uint4 u;
        __half2 *h = reinterpret_cast<__half2 *>(&u);
#pragma unroll
        for (int i = 0; i < 4; i++) h[i] = __floats2half2_rn(f[2 * i], f[2 * i + 1]);
        *reinterpret_cast<uint4 *>(p) = u;
    }
};

template <> struct vec8<__nv_bfloat16> {
    static __device__ __forceinline__ void load(const __nv_bfloat16 *p, float f[8]) {
        uint4 u = *reinterpret_cast<const uint4 *>(p);
        const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&u);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float2 v = __bfloat1622float2(h[i]);
            f[2 * i] = v.x;
            f[2 * i + 1] = v.y;
        }
    }
    static __device__ __forceinline__ void store(__nv_bfloat16 *p, const float f[8]) {
        uint4 u;
        __nv_bfloat162 *h = reinterpret_cast<__nv_bfloat162 *>(&u);
#pragma unroll
        for (int i = 0; i < 4; i++) h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
        *reinterpret_cast<uint4 *>(p) = u;
    }
};

template <> struct vec8<float> {
    static __device__ __forceinline__ void load(const float *p, float f[8]) {
        float4 a = *reinterpret_cast<const float4 *>(p), b = *reinterpret_cast<const float4 *>(p + 4);
        f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
    }
    static __device__ __forceinline__ void store(float *p, const float f[8]) {
        *reinterpret_cast<float4 *>(p) = make_float4(f[0], f[1], f[2], f[3]);
        *reinterpret_cast<float4 *>(p + 4) = make_float4(f[4], f[5], f[6], f[7]);
    }
};

static __device__ __forceinline__ void load8_f32(const float *p, float f[8]) {
    float4 a = *reinterpret_cast<const float4 *>(p), b = *reinterpret_cast<const float4 *>(p + 4);
    f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}

static __device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Calls F<T>() with T the element type of dt (F16 or BF16); anything else is a bug. */
#define AKE_DISPATCH_DTYPE(dt, T, ...)                                                 \
    do {                                                                              \
        if ((dt) == AKE_DT_F16) {                                                     \
            typedef __half T;                                                         \
            __VA_ARGS__;                                                              \
        } else if ((dt) == AKE_DT_BF16) {                                             \
            typedef __nv_bfloat16 T;                                                  \
            __VA_ARGS__;                                                              \
        } else {                                                                      \
            AKE_ASSERT(!"CUDA kernels take F16 or BF16");                              \
        }                                                                             \
    } while (0)

/* AKE_DISPATCH_DTYPE plus F32 (T = float), for kernels instantiated in all three (the
 * training kernels, whose F32 build checks the gradients tightly; pooling of an fp32 residual). */
#define AKE_DISPATCH_DTYPE_OR_F32(dt, T, ...)                                          \
    do {                                                                              \
        if ((dt) == AKE_DT_F32) {                                                     \
            typedef float T;                                                          \
            __VA_ARGS__;                                                              \
        } else {                                                                      \
            AKE_DISPATCH_DTYPE(dt, T, __VA_ARGS__);                                   \
        }                                                                             \
    } while (0)

#endif
