/* The 8-bit activation kernels of the W8A8 engines (see quant.cuh). All memory bound; bytes
 * per element (in + out): quantize_rows 2 + 1, layernorm_quant 2 + 2 (or 4 + 2 from int32) in
 * and 2 + 1 out, gelu_quant 2 (or 4) + 1, dequant_bias 4 + 2; the floors are in
 * dev/cuda/NOTES.md. A row whose scale depends on its own absmax is held in registers
 * between the reduction and the write, so every kernel reads its input once. */
#include <cuda_fp8.h>
#include <limits.h>

#include <type_traits>

#include "engine/cuda/common.cuh"
#include "engine/cuda/ln_row.cuh"

extern "C" {
#include "engine/cuda/layernorm.cuh"
#include "engine/cuda/quant.cuh"
}

enum { QB = 256 }; /* threads per block of every kernel here */

/* ---- the two 8-bit encodings, 8 values -> 8 bytes ------------------------------------ */

/* INT8: round-half-even (cvt.rni), saturate to +-127, NaN -> 0: base/dtype.h's ake_f32_to_i8. */
struct enc_i8 {
    static constexpr float qmax = AKE_I8_QMAX;
    static __device__ __forceinline__ uint2 pack8(const float v[8], float inv) {
        uint32_t w[2] = {0u, 0u};
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int q = max(-127, min(127, __float2int_rn(v[j] * inv)));
            w[j >> 2] |= (uint32_t)(q & 0xff) << (8 * (j & 3));
        }
        return make_uint2(w[0], w[1]);
    }
};

/* FP8 E4M3: round to nearest even from fp32, saturating to +-448: ake_f32_to_e4m3. */
struct enc_e4m3 {
    static constexpr float qmax = AKE_E4M3_QMAX;
    static __device__ __forceinline__ uint2 pack8(const float v[8], float inv) {
        uint32_t w[2];
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const uint32_t lo = __nv_cvt_float2_to_fp8x2(make_float2(v[4 * i] * inv, v[4 * i + 1] * inv), __NV_SATFINITE,
                                                         __NV_E4M3);
            const uint32_t hi = __nv_cvt_float2_to_fp8x2(make_float2(v[4 * i + 2] * inv, v[4 * i + 3] * inv),
                                                         __NV_SATFINITE, __NV_E4M3);
            w[i] = lo | (hi << 16);
        }
        return make_uint2(w[0], w[1]);
    }
};

template <typename O> struct is_enc : std::false_type {};
template <> struct is_enc<enc_i8> : std::true_type {};
template <> struct is_enc<enc_e4m3> : std::true_type {};

/* The scale of a row from its absmax (dynamic; 1 for a row of zeros) or the calibrated value
 * (static). */
template <typename E> static __device__ __forceinline__ float scale_of(float amax, const float *static_scale) {
    return static_scale ? __ldg(static_scale) : amax > 0.0f ? amax / E::qmax : 1.0f;
}

static __device__ __forceinline__ float absmax8(const float v[8], float m) {
#pragma unroll
    for (int j = 0; j < 8; j++) m = fmaxf(m, fabsf(v[j]));
    return m;
}

/* ---- reading a GEMM result -------------------------------------------------------------- */

static __device__ __forceinline__ void load8_i32(const int32_t *p, float f[8]) {
    const int4 a = *reinterpret_cast<const int4 *>(p), b = *reinterpret_cast<const int4 *>(p + 4);
    f[0] = (float)a.x, f[1] = (float)a.y, f[2] = (float)a.z, f[3] = (float)a.w;
    f[4] = (float)b.x, f[5] = (float)b.y, f[6] = (float)b.z, f[7] = (float)b.w;
}

/* y[row, c..c+8) of a GEMM result of element type Y (a 16-bit output, or int32 / fp32 sums
 * dequantized here with rsm = row_scale[row]: acc * (rsm * col_scale[n]) + bias[n], one fma). */
template <typename Y>
static __device__ __forceinline__ void load_result(const ake_cuda_gemm_result &g, size_t row, int N, int c, float rsm,
                                                   float v[8]) {
    const Y *p = (const Y *)g.y + row * (size_t)N + c;
    if constexpr (std::is_same<Y, int32_t>::value || std::is_same<Y, float>::value) {
        if constexpr (std::is_same<Y, int32_t>::value) load8_i32(p, v);
        else load8_f32(p, v);
        float cs[8], b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        load8_f32(g.col_scale + c, cs);
        if (g.bias) load8_f32(g.bias + c, b);
#pragma unroll
        for (int j = 0; j < 8; j++) v[j] = fmaf(v[j], rsm * cs[j], b[j]);
    } else {
        (void)rsm;
        vec8<Y>::load(p, v);
    }
}

template <typename Y> static __device__ __forceinline__ float row_scale_at(const ake_cuda_gemm_result &g, size_t row) {
    if constexpr (std::is_same<Y, int32_t>::value || std::is_same<Y, float>::value) return __ldg(g.row_scale + row);
    (void)g, (void)row;
    return 0.0f;
}

/* ---- rows spread over a group of G threads (quantize_rows, gelu_quant) ------------------- */

/* Up to 4 chunks of 8 values per thread: G = 32 covers rows of up to 1024 values, 256 up to 8192. */
enum { GROUP_NC = 4 };

/* Max over the G threads of a row group (G a power of two, 32..QB); every thread of the
 * block must call it (a block barrier when G > 32). */
template <int G> static __device__ __forceinline__ float group_max(float v, float *red /* [QB/32] shared */) {
    v = warp_max(v);
    if constexpr (G == 32) {
        return v;
    } else {
        if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
        __syncthreads();
        const int first = (int)(threadIdx.x / G) * (G / 32);
        float m = red[first];
#pragma unroll
        for (int i = 1; i < G / 32; i++) m = fmaxf(m, red[first + i]);
        return m;
    }
}

/* Quantizes (or, for a 16-bit O, stores) the row a group holds: v[i] is chunk t + G*i. */
template <typename O, int G>
static __device__ __forceinline__ void group_store(const float (&v)[GROUP_NC][8], float amax, bool live, size_t row,
                                                   int t, int K, void *out, float *scale, const float *static_scale,
                                                   float *red) {
    if constexpr (is_enc<O>::value) {
        const float s = static_scale ? __ldg(static_scale) : scale_of<O>(group_max<G>(amax, red), nullptr);
        if (!live) return;
        const float inv = 1.0f / s;
        uint8_t *q = (uint8_t *)out + row * (size_t)K;
#pragma unroll
        for (int i = 0; i < GROUP_NC; i++) {
            const int c = (t + G * i) * 8;
            if (c < K) *reinterpret_cast<uint2 *>(q + c) = O::pack8(v[i], inv);
        }
        if (t == 0) scale[row] = s;
    } else {
        (void)amax, (void)scale, (void)static_scale, (void)red;
        if (!live) return;
        O *h = (O *)out + row * (size_t)K;
#pragma unroll
        for (int i = 0; i < GROUP_NC; i++) {
            const int c = (t + G * i) * 8;
            if (c < K) vec8<O>::store(h + c, v[i]);
        }
    }
}

template <typename X, typename E, int G>
__global__ void __launch_bounds__(QB)
    quantize_rows_kernel(uint8_t *q, float *scale, const float *static_scale, const X *x, int M, int K) {
    __shared__ float red[QB / 32];
    const int row = blockIdx.x * (QB / G) + (int)(threadIdx.x / G), t = (int)(threadIdx.x % G);
    const bool live = row < M;
    float v[GROUP_NC][8], amax = 0.0f;
#pragma unroll
    for (int i = 0; i < GROUP_NC; i++) {
        const int c = (t + G * i) * 8;
        if (live && c < K) {
            vec8<X>::load(x + (size_t)row * K + c, v[i]);
            amax = absmax8(v[i], amax);
        }
    }
    group_store<E, G>(v, amax, live, (size_t)row, t, K, q, scale, static_scale, red);
}

template <typename Y, typename O, int G>
__global__ void __launch_bounds__(QB)
    gelu_quant_kernel(ake_cuda_gemm_result y, int M, int N, void *out, float *scale, const float *static_scale) {
    __shared__ float red[QB / 32];
    const int row = blockIdx.x * (QB / G) + (int)(threadIdx.x / G), t = (int)(threadIdx.x % G);
    const bool live = row < M;
    const float rsm = live ? row_scale_at<Y>(y, (size_t)row) : 0.0f;
    float v[GROUP_NC][8], amax = 0.0f;
#pragma unroll
    for (int i = 0; i < GROUP_NC; i++) {
        const int c = (t + G * i) * 8;
        if (live && c < N) {
            load_result<Y>(y, (size_t)row, N, c, rsm, v[i]);
#pragma unroll
            for (int j = 0; j < 8; j++) v[i][j] = 0.5f * v[i][j] * (1.0f + erff(v[i][j] * 0.70710678118654752f));
            amax = absmax8(v[i], amax);
        }
    }
    group_store<O, G>(v, amax, live, (size_t)row, t, N, out, scale, static_scale, red);
}

/* Calls F with G, the smallest row group (32..256 threads) whose GROUP_NC chunks cover K. */
#define DISPATCH_GROUP(K, G, ...)                                                   \
    do {                                                                            \
        const int chunks_ = (K) / 8;                                                \
        if (chunks_ <= 32 * GROUP_NC) { constexpr int G = 32; __VA_ARGS__; }        \
        else if (chunks_ <= 64 * GROUP_NC) { constexpr int G = 64; __VA_ARGS__; }   \
        else if (chunks_ <= 128 * GROUP_NC) { constexpr int G = 128; __VA_ARGS__; } \
        else { constexpr int G = 256; AKE_ASSERT(chunks_ <= 256 * GROUP_NC); __VA_ARGS__; } \
    } while (0)

#define DISPATCH_ENC(qdt, E, ...)                                                   \
    do {                                                                            \
        if ((qdt) == AKE_DT_I8) { typedef enc_i8 E; __VA_ARGS__; }                  \
        else if ((qdt) == AKE_DT_F8_E4M3) { typedef enc_e4m3 E; __VA_ARGS__; }      \
        else AKE_ASSERT(!"8-bit codes are I8 or F8_E4M3");                           \
    } while (0)

/* A GEMM result's element type: F16, BF16 or I32 (and F32 where `f32` is set). */
#define DISPATCH_RESULT(dt, Y, f32, ...)                                            \
    do {                                                                            \
        if ((dt) == AKE_DT_F16) { typedef __half Y; __VA_ARGS__; }                  \
        else if ((dt) == AKE_DT_BF16) { typedef __nv_bfloat16 Y; __VA_ARGS__; }     \
        else if ((dt) == AKE_DT_I32) { typedef int32_t Y; __VA_ARGS__; }            \
        else if ((f32) && (dt) == AKE_DT_F32) { typedef float Y; __VA_ARGS__; }     \
        else AKE_ASSERT(!"unsupported GEMM result type");                            \
    } while (0)

static bool aligned16(const void *p) { return (uintptr_t)p % 16 == 0; }

/* The scaled forms read row_scale and col_scale (16-byte aligned for the vector loads). */
static void check_result(const ake_cuda_gemm_result &y, int f32_ok) {
    AKE_ASSERT(y.y && aligned16(y.y));
    if (y.dt == AKE_DT_I32 || (f32_ok && y.dt == AKE_DT_F32)) {
        AKE_ASSERT(y.row_scale && y.col_scale && aligned16(y.col_scale) && aligned16(y.bias));
    }
}

static void check_qout(const ake_cuda_qout &q) {
    AKE_ASSERT(q.qdt == AKE_DT_I8 || q.qdt == AKE_DT_F8_E4M3);
    AKE_ASSERT(q.q && aligned16(q.q) && q.scale && (uintptr_t)q.scale % 4 == 0);
}

extern "C" void ake_cuda_quantize_rows(cudaStream_t stream, ake_cuda_qout q, ake_dtype xdt, const void *x, int M,
                                       int K) {
    AKE_ASSERT(M >= 0 && K > 0 && K % 8 == 0 && K <= 8 * 256 * GROUP_NC && x && aligned16(x));
    check_qout(q);
    if (M == 0) return;
    DISPATCH_GROUP(K, G, {
        const unsigned grid = (unsigned)((M + QB / G - 1) / (QB / G));
        DISPATCH_ENC(q.qdt, E, {
            if (xdt == AKE_DT_F32)
                quantize_rows_kernel<float, E, G>
                    <<<grid, QB, 0, stream>>>((uint8_t *)q.q, q.scale, q.static_scale, (const float *)x, M, K);
            else
                AKE_DISPATCH_DTYPE(xdt, T, quantize_rows_kernel<T, E, G><<<grid, QB, 0, stream>>>(
                                               (uint8_t *)q.q, q.scale, q.static_scale, (const T *)x, M, K));
        });
    });
    CUDA_CHECK_LAUNCH();
}

extern "C" void ake_cuda_gelu_quant(cudaStream_t stream, ake_cuda_gemm_result y, int M, int N, ake_cuda_qout q,
                                    ake_dtype hdt, void *h_out) {
    AKE_ASSERT(M >= 0 && N > 0 && N % 8 == 0 && N <= 8 * 256 * GROUP_NC);
    check_result(y, 0);
    if (q.q) check_qout(q);
    else AKE_ASSERT(h_out && aligned16(h_out) && h_out != y.y && (hdt == AKE_DT_F16 || hdt == AKE_DT_BF16));
    AKE_ASSERT(q.q != y.y);
    if (M == 0) return;
    DISPATCH_GROUP(N, G, {
        const unsigned grid = (unsigned)((M + QB / G - 1) / (QB / G));
        DISPATCH_RESULT(y.dt, Y, 0, {
            if (q.q)
                DISPATCH_ENC(q.qdt, E, gelu_quant_kernel<Y, E, G><<<grid, QB, 0, stream>>>(y, M, N, q.q, q.scale,
                                                                                         q.static_scale));
            else
                AKE_DISPATCH_DTYPE(hdt, H, gelu_quant_kernel<Y, H, G><<<grid, QB, 0, stream>>>(y, M, N, h_out, nullptr,
                                                                                             nullptr));
        });
    });
    CUDA_CHECK_LAUNCH();
}

/* ---- residual + LayerNorm (+ quantize): one warp per row --------------------------------- */

enum { LNQ_WARPS = QB / 32 };

/* enc_none: LayerNorm only (q.q NULL). */
struct enc_none {};

template <typename T, typename Y, typename E, int NC>
__global__ void __launch_bounds__(QB)
    layernorm_quant_kernel(T *out, const T *res, ake_cuda_gemm_result y, const float *gamma, const float *beta,
                           int rows, int d, float eps, uint8_t *q, float *scale, const float *static_scale) {
    const int row = blockIdx.x * LNQ_WARPS + (int)(threadIdx.x >> 5), lane = (int)(threadIdx.x & 31);
    if (row >= rows) return;
    const float rsm = row_scale_at<Y>(y, (size_t)row);
    const T *r = res ? res + (size_t)row * d : nullptr;
    float v[NC][8];
#pragma unroll
    for (int i = 0; i < NC; i++) {
        const int c = (lane + 32 * i) * 8;
        if (c < d) {
            load_result<Y>(y, (size_t)row, d, c, rsm, v[i]);
            if (r) {
                float rr[8];
                vec8<T>::load(r + c, rr);
#pragma unroll
                for (int j = 0; j < 8; j++) v[i][j] += rr[j];
            }
        }
    }
    float mean, rstd;
    ln_row_stats<NC>(v, d, eps, lane, mean, rstd);
    float amax = 0.0f;
    T *o = out + (size_t)row * d;
#pragma unroll
    for (int i = 0; i < NC; i++) {
        const int c = (lane + 32 * i) * 8;
        if (c < d) {
            float g[8], b[8];
            load8_f32(gamma + c, g);
            load8_f32(beta + c, b);
#pragma unroll
            for (int j = 0; j < 8; j++) v[i][j] = (v[i][j] - mean) * rstd * g[j] + b[j];
            vec8<T>::store(o + c, v[i]);
            amax = absmax8(v[i], amax);
        }
    }
    if constexpr (is_enc<E>::value) {
        const float sc = static_scale ? __ldg(static_scale) : scale_of<E>(warp_max(amax), nullptr);
        const float inv = 1.0f / sc;
        uint8_t *qr = q + (size_t)row * d;
#pragma unroll
        for (int i = 0; i < NC; i++) {
            const int c = (lane + 32 * i) * 8;
            if (c < d) *reinterpret_cast<uint2 *>(qr + c) = E::pack8(v[i], inv);
        }
        if (lane == 0) scale[row] = sc;
    } else {
        (void)amax, (void)q, (void)scale, (void)static_scale;
    }
}

/* NC (chunks of 8 per lane) covering d: 2 (d <= 512), 4 (<= 1024) or 8 (<= 2048); lanes skip
 * chunks past d, so one instance serves several hidden sizes. */
#define DISPATCH_LN_NC(d, NC, ...)                                   \
    do {                                                             \
        if ((d) <= 512) { constexpr int NC = 2; __VA_ARGS__; }       \
        else if ((d) <= 1024) { constexpr int NC = 4; __VA_ARGS__; } \
        else { constexpr int NC = 8; __VA_ARGS__; }                  \
    } while (0)

template <typename T, typename Y, typename E>
static void launch_ln_quant(cudaStream_t stream, void *out, const void *res, const ake_cuda_gemm_result &y,
                            const float *gamma, const float *beta, int rows, int d, float eps, const ake_cuda_qout &q) {
    const dim3 grid((unsigned)((rows + LNQ_WARPS - 1) / LNQ_WARPS)), block(QB);
    DISPATCH_LN_NC(d, NC, layernorm_quant_kernel<T, Y, E, NC><<<grid, block, 0, stream>>>(
                              (T *)out, (const T *)res, y, gamma, beta, rows, d, eps, (uint8_t *)q.q, q.scale,
                              q.static_scale));
}

extern "C" void ake_cuda_layernorm_quant(cudaStream_t stream, ake_dtype dt, void *out, const void *res,
                                         ake_cuda_gemm_result y, const float *gamma, const float *beta, int rows,
                                         int d, float eps, ake_cuda_qout q) {
    AKE_ASSERT(rows >= 0 && d > 0 && d % 8 == 0 && d <= AKE_CUDA_LN_MAX_D);
    AKE_ASSERT(out && aligned16(out) && aligned16(res) && gamma && beta && aligned16(gamma) && aligned16(beta));
    AKE_ASSERT(y.dt == dt || y.dt == AKE_DT_I32);
    check_result(y, 0);
    AKE_ASSERT(out != y.y);
    if (q.q) check_qout(q);
    if (rows == 0) return;
    AKE_DISPATCH_DTYPE(dt, T, {
        if (y.dt == AKE_DT_I32) {
            if (!q.q) launch_ln_quant<T, int32_t, enc_none>(stream, out, res, y, gamma, beta, rows, d, eps, q);
            else DISPATCH_ENC(q.qdt, E, launch_ln_quant<T, int32_t, E>(stream, out, res, y, gamma, beta, rows, d, eps, q));
        } else {
            if (!q.q) launch_ln_quant<T, T, enc_none>(stream, out, res, y, gamma, beta, rows, d, eps, q);
            else DISPATCH_ENC(q.qdt, E, launch_ln_quant<T, T, E>(stream, out, res, y, gamma, beta, rows, d, eps, q));
        }
    });
    CUDA_CHECK_LAUNCH();
}

/* ---- int32 (or fp32) sums -> 16-bit, elementwise ------------------------------------------- */

template <typename A, typename T>
__global__ void __launch_bounds__(QB) dequant_bias_kernel(T *Y, ake_cuda_gemm_result acc, int N, unsigned chunks) {
    for (unsigned i = blockIdx.x * QB + threadIdx.x; i < chunks; i += gridDim.x * QB) {
        const unsigned e = i * 8u, row = e / (unsigned)N, c = e - row * (unsigned)N;
        float v[8];
        load_result<A>(acc, row, N, (int)c, __ldg(acc.row_scale + row), v);
        vec8<T>::store(Y + e, v);
    }
}

extern "C" void ake_cuda_dequant_bias(cudaStream_t stream, ake_dtype dt, void *Y, ake_cuda_gemm_result acc, int M,
                                      int N) {
    AKE_ASSERT(M >= 0 && N > 0 && N % 8 == 0 && (size_t)M * N <= (size_t)INT_MAX);
    AKE_ASSERT(acc.dt == AKE_DT_I32 || acc.dt == AKE_DT_F32);
    check_result(acc, 1);
    AKE_ASSERT(Y && aligned16(Y) && Y != acc.y);
    const unsigned chunks = (unsigned)((size_t)M * N / 8);
    if (chunks == 0) return;
    unsigned blocks = (chunks + QB - 1) / QB;
    if (blocks > 132 * 16) blocks = 132 * 16; /* grid-stride beyond a few waves, as gelu.cu */
    AKE_DISPATCH_DTYPE(dt, T, {
        if (acc.dt == AKE_DT_I32) dequant_bias_kernel<int32_t, T><<<blocks, QB, 0, stream>>>((T *)Y, acc, N, chunks);
        else dequant_bias_kernel<float, T><<<blocks, QB, 0, stream>>>((T *)Y, acc, N, chunks);
    });
    CUDA_CHECK_LAUNCH();
}
