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

/* INT8: round-half-even (cvt.rni), NaN -> 0, then + zp (the zero point: 0 for symmetric
 * codes) and saturation to lo..127 (lo = -127 symmetric, -128 asymmetric): base/dtype.h's
 * ake_f32_to_i8 for zp = 0, the CPU engine's quantize_row otherwise. */
struct enc_i8 {
    static constexpr float qmax = AKE_I8_QMAX;
    static __device__ __forceinline__ uint2 pack8(const float v[8], float inv, int zp, int lo) {
        uint32_t w[2] = {0u, 0u};
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int q = max(lo, min(127, __float2int_rn(v[j] * inv) + zp));
            w[j >> 2] |= (uint32_t)(q & 0xff) << (8 * (j & 3));
        }
        return make_uint2(w[0], w[1]);
    }
};

/* FP8 E4M3: round to nearest even from fp32, saturating to +-448: ake_f32_to_e4m3. */
struct enc_e4m3 {
    static constexpr float qmax = AKE_E4M3_QMAX;
    static __device__ __forceinline__ uint2 pack8(const float v[8], float inv, int zp, int lo) {
        (void)zp, (void)lo; /* symmetric only */
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

/* ---- reading a GEMM result -------------------------------------------------------------- */

static __device__ __forceinline__ void load8_i32(const int32_t *p, float f[8]) {
    const int4 a = *reinterpret_cast<const int4 *>(p), b = *reinterpret_cast<const int4 *>(p + 4);
    f[0] = (float)a.x, f[1] = (float)a.y, f[2] = (float)a.z, f[3] = (float)a.w;
    f[4] = (float)b.x, f[5] = (float)b.y, f[6] = (float)b.z, f[7] = (float)b.w;
}

/* y[row, c..c+8) of a GEMM result of element type Y (a 16-bit output, or int32 / fp32 sums
 * dequantized here with rsm = row_scale[row], rz = row_zero[row] (0 when symmetric):
 * (acc - rz wsum[n]) * (rsm * col_scale[n]) + bias[n]). */
template <typename Y>
static __device__ __forceinline__ void load_result(const ake_cuda_gemm_result &g, size_t row, int N, int c, float rsm,
                                                   float rz, float v[8]) {
    const Y *p = (const Y *)g.y + row * (size_t)N + c;
    if constexpr (std::is_same<Y, int32_t>::value || std::is_same<Y, float>::value) {
        if constexpr (std::is_same<Y, int32_t>::value) load8_i32(p, v);
        else load8_f32(p, v);
        float cs[8], b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        load8_f32(g.col_scale + c, cs);
        if (g.bias) load8_f32(g.bias + c, b);
        if (g.col_wsum) {
            float ws[8];
            load8_f32(g.col_wsum + c, ws);
#pragma unroll
            for (int j = 0; j < 8; j++) v[j] = fmaf(-rz, ws[j], v[j]);
        }
#pragma unroll
        for (int j = 0; j < 8; j++) v[j] = fmaf(v[j], rsm * cs[j], b[j]);
    } else {
        (void)rsm, (void)rz;
        vec8<Y>::load(p, v);
    }
}

template <typename Y> static __device__ __forceinline__ float row_scale_at(const ake_cuda_gemm_result &g, size_t row) {
    if constexpr (std::is_same<Y, int32_t>::value || std::is_same<Y, float>::value) return __ldg(g.row_scale + row);
    (void)g, (void)row;
    return 0.0f;
}

template <typename Y> static __device__ __forceinline__ float row_zero_at(const ake_cuda_gemm_result &g, size_t row) {
    if constexpr (std::is_same<Y, int32_t>::value || std::is_same<Y, float>::value)
        return g.row_zero ? __ldg(g.row_zero + row) : 0.0f;
    (void)g, (void)row;
    return 0.0f;
}

/* ---- a row held in registers by a group of G threads ------------------------------------
 * Warp-major layout: thread t of the group (lane = t % 32, warp w = t / 32) holds the chunks
 * c = 32 NC w + lane + 32 i (i < NC) of 8 values each, elements 8c .. 8c+7. A warp's span of
 * 256 NC elements then holds every Hadamard block of up to 256 NC values whole: the transform
 * needs shuffles within a warp, never shared memory. G = 32 is the LayerNorm's one warp per row. */

template <int NC> static __device__ __forceinline__ int chunk_of(int t, int i) {
    return 32 * NC * (t >> 5) + (t & 31) + 32 * i;
}

/* v <- v H over each block of b values (b a power of two <= 256 NC), normalized by
 * 1/sqrt(b): the butterflies of ake_hadamard_rows in the same order (stride 1, 2, 4 inside
 * a chunk, 8..128 across lanes, 256.. across a lane's chunks). Every lane of the warp must
 * call it; chunks past the row's end hold zeros and only ever meet each other. */
template <int NC> static __device__ __forceinline__ void hadamard_held(float (&v)[NC][8], int b) {
    const int lane = (int)(threadIdx.x & 31);
#pragma unroll
    for (int h = 1; h < 8; h *= 2) {
        if (h >= b) break;
#pragma unroll
        for (int i = 0; i < NC; i++)
#pragma unroll
            for (int j = 0; j < 8; j++)
                if (!(j & h)) {
                    const float x = v[i][j], y = v[i][j + h];
                    v[i][j] = x + y;
                    v[i][j + h] = x - y;
                }
    }
#pragma unroll
    for (int m = 1; m < 32; m *= 2) {
        if (8 * m >= b) break;
        const bool upper = lane & m;
#pragma unroll
        for (int i = 0; i < NC; i++)
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const float o = __shfl_xor_sync(0xffffffffu, v[i][j], m);
                v[i][j] = upper ? o - v[i][j] : v[i][j] + o;
            }
    }
#pragma unroll
    for (int m = 1; m < NC; m *= 2) {
        if (256 * m >= b) break;
#pragma unroll
        for (int i = 0; i < NC; i++)
            if (!(i & m))
#pragma unroll
                for (int j = 0; j < 8; j++) {
                    const float x = v[i][j], y = v[i + m][j];
                    v[i][j] = x + y;
                    v[i + m][j] = x - y;
                }
    }
    const float norm = __fdiv_rn(1.0f, __fsqrt_rn((float)b)); /* as the CPU's 1.0f / sqrtf(b) */
#pragma unroll
    for (int i = 0; i < NC; i++)
#pragma unroll
        for (int j = 0; j < 8; j++) v[i][j] *= norm;
}

/* (max, -min) over the G threads of a row group (G a power of two, 32..QB); every thread of
 * the block must call it (a block barrier when G > 32). */
template <int G> static __device__ __forceinline__ float2 group_max2(float2 v, float2 *red /* [QB/32] shared */) {
    v.x = warp_max(v.x);
    v.y = warp_max(v.y);
    if constexpr (G == 32) {
        return v;
    } else {
        if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
        __syncthreads();
        const int first = (int)(threadIdx.x / G) * (G / 32);
        float2 m = red[first];
#pragma unroll
        for (int i = 1; i < G / 32; i++) m = make_float2(fmaxf(m.x, red[first + i].x), fmaxf(m.y, red[first + i].y));
        return m;
    }
}

/* Quantizes the row x a group holds (v, layout above; chunks past K are zeros) into q: the
 * transform, the scale (and zero point), the codes, as quant.cuh states. Every thread of the
 * block calls it (live: whether this group has a row; the others only join the barriers). */
template <typename E, int G, int NC>
static __device__ __forceinline__ void quantize_held(float (&v)[NC][8], bool live, size_t row, int t, int K,
                                                     const ake_cuda_qout &q, float2 *red) {
    if (q.col_mul) {
#pragma unroll
        for (int i = 0; i < NC; i++) {
            const int c = chunk_of<NC>(t, i) * 8;
            if (live && c < K) {
                float m[8];
                load8_f32(q.col_mul + c, m);
#pragma unroll
                for (int j = 0; j < 8; j++) v[i][j] *= m[j];
            }
        }
    }
    if (q.rot > 1) hadamard_held<NC>(v, q.rot);
    float s, zp = 0.0f;
    int lo = -127;
    if (q.static_scale) {
        s = __ldg(q.static_scale);
    } else {
        float2 mm = make_float2(0.0f, 0.0f); /* (max, -min), both >= 0: keeps 0 inside the range */
#pragma unroll
        for (int i = 0; i < NC; i++)
#pragma unroll
            for (int j = 0; j < 8; j++) mm = make_float2(fmaxf(mm.x, v[i][j]), fmaxf(mm.y, -v[i][j]));
        mm = group_max2<G>(mm, red);
        if (q.zero) {
            const float mx = mm.x, mn = -mm.y;
            s = mx > mn ? (mx - mn) / 255.0f : 1.0f;
            zp = -128.0f - rintf(mn / s);
            lo = -128;
        } else {
            const float amax = fmaxf(mm.x, mm.y);
            s = amax > 0.0f ? amax / E::qmax : 1.0f;
        }
    }
    if (!live) return;
    const float inv = 1.0f / s;
    uint8_t *qr = (uint8_t *)q.q + row * (size_t)K;
#pragma unroll
    for (int i = 0; i < NC; i++) {
        const int c = chunk_of<NC>(t, i) * 8;
        if (c < K) *reinterpret_cast<uint2 *>(qr + c) = E::pack8(v[i], inv, (int)zp, lo);
    }
    if (t == 0) {
        q.scale[row] = s;
        if (q.zero) q.zero[row] = zp;
    }
}

/* Up to 4 chunks of 8 values per thread: G = 32 covers rows of up to 1024 values, 256 up to 8192. */
enum { GROUP_NC = 4 };

template <typename X, typename E, int G>
__global__ void __launch_bounds__(QB) quantize_rows_kernel(ake_cuda_qout q, const X *x, int M, int K) {
    __shared__ float2 red[QB / 32];
    const int row = blockIdx.x * (QB / G) + (int)(threadIdx.x / G), t = (int)(threadIdx.x % G);
    const bool live = row < M;
    float v[GROUP_NC][8];
#pragma unroll
    for (int i = 0; i < GROUP_NC; i++) {
        const int c = chunk_of<GROUP_NC>(t, i) * 8;
        if (live && c < K) vec8<X>::load(x + (size_t)row * K + c, v[i]);
        else
#pragma unroll
            for (int j = 0; j < 8; j++) v[i][j] = 0.0f;
    }
    quantize_held<E, G, GROUP_NC>(v, live, (size_t)row, t, K, q, red);
}

/* O: an encoder (quantized output in q) or a 16-bit type (h written to out as it is). */
template <typename Y, typename O, int G>
__global__ void __launch_bounds__(QB) gelu_quant_kernel(ake_cuda_gemm_result y, int M, int N, ake_cuda_qout q, O *out) {
    __shared__ float2 red[QB / 32];
    const int row = blockIdx.x * (QB / G) + (int)(threadIdx.x / G), t = (int)(threadIdx.x % G);
    const bool live = row < M;
    const float rsm = live ? row_scale_at<Y>(y, (size_t)row) : 0.0f, rz = live ? row_zero_at<Y>(y, (size_t)row) : 0.0f;
    float v[GROUP_NC][8];
#pragma unroll
    for (int i = 0; i < GROUP_NC; i++) {
        const int c = chunk_of<GROUP_NC>(t, i) * 8;
        if (live && c < N) {
            load_result<Y>(y, (size_t)row, N, c, rsm, rz, v[i]);
#pragma unroll
            for (int j = 0; j < 8; j++) v[i][j] = 0.5f * v[i][j] * (1.0f + erff(v[i][j] * 0.70710678118654752f));
        } else {
#pragma unroll
            for (int j = 0; j < 8; j++) v[i][j] = 0.0f;
        }
    }
    if constexpr (is_enc<O>::value) {
        (void)out;
        quantize_held<O, G, GROUP_NC>(v, live, (size_t)row, t, N, q, red);
    } else {
        (void)q;
        if (!live) return;
#pragma unroll
        for (int i = 0; i < GROUP_NC; i++) {
            const int c = chunk_of<GROUP_NC>(t, i) * 8;
            if (c < N) vec8<O>::store(out + (size_t)row * N + c, v[i]);
        }
    }
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
        AKE_ASSERT(!y.row_zero == !y.col_wsum && aligned16(y.col_wsum));
    } else {
        AKE_ASSERT(!y.row_zero && !y.col_wsum); /* a 16-bit result is final */
    }
}

static void check_qout(const ake_cuda_qout &q, int K) {
    AKE_ASSERT(q.qdt == AKE_DT_I8 || q.qdt == AKE_DT_F8_E4M3);
    AKE_ASSERT(q.q && aligned16(q.q) && q.scale && (uintptr_t)q.scale % 4 == 0);
    AKE_ASSERT(!q.zero || (q.qdt == AKE_DT_I8 && !q.static_scale)); /* asymmetric: dynamic INT8 only */
    AKE_ASSERT(aligned16(q.col_mul));
    AKE_ASSERT(q.rot <= 1 || (q.rot <= 512 && !(q.rot & (q.rot - 1)) && K % q.rot == 0));
}

extern "C" void ake_cuda_quantize_rows(cudaStream_t stream, ake_cuda_qout q, ake_dtype xdt, const void *x, int M,
                                       int K) {
    AKE_ASSERT(M >= 0 && K > 0 && K % 8 == 0 && K <= 8 * 256 * GROUP_NC && x && aligned16(x));
    check_qout(q, K);
    if (M == 0) return;
    DISPATCH_GROUP(K, G, {
        const unsigned grid = (unsigned)((M + QB / G - 1) / (QB / G));
        DISPATCH_ENC(q.qdt, E, {
            if (xdt == AKE_DT_F32)
                quantize_rows_kernel<float, E, G><<<grid, QB, 0, stream>>>(q, (const float *)x, M, K);
            else
                AKE_DISPATCH_DTYPE(xdt, T, quantize_rows_kernel<T, E, G><<<grid, QB, 0, stream>>>(q, (const T *)x, M, K));
        });
    });
    CUDA_CHECK_LAUNCH();
}

extern "C" void ake_cuda_gelu_quant(cudaStream_t stream, ake_cuda_gemm_result y, int M, int N, ake_cuda_qout q,
                                    ake_dtype hdt, void *h_out) {
    AKE_ASSERT(M >= 0 && N > 0 && N % 8 == 0 && N <= 8 * 256 * GROUP_NC);
    check_result(y, 0);
    if (q.q) check_qout(q, N);
    else AKE_ASSERT(h_out && aligned16(h_out) && h_out != y.y && (hdt == AKE_DT_F16 || hdt == AKE_DT_BF16));
    AKE_ASSERT(q.q != y.y);
    if (M == 0) return;
    DISPATCH_GROUP(N, G, {
        const unsigned grid = (unsigned)((M + QB / G - 1) / (QB / G));
        DISPATCH_RESULT(y.dt, Y, 0, {
            if (q.q)
                DISPATCH_ENC(q.qdt, E, gelu_quant_kernel<Y, E, G><<<grid, QB, 0, stream>>>(y, M, N, q, (E *)nullptr));
            else
                AKE_DISPATCH_DTYPE(hdt, H, gelu_quant_kernel<Y, H, G><<<grid, QB, 0, stream>>>(y, M, N, q, (H *)h_out));
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
                           int rows, int d, float eps, ake_cuda_qout q) {
    const int row = blockIdx.x * LNQ_WARPS + (int)(threadIdx.x >> 5), lane = (int)(threadIdx.x & 31);
    if (row >= rows) return; /* the whole warp: one row per warp, no block barrier below */
    const float rsm = row_scale_at<Y>(y, (size_t)row), rz = row_zero_at<Y>(y, (size_t)row);
    const T *r = res ? res + (size_t)row * d : nullptr;
    float v[NC][8];
#pragma unroll
    for (int i = 0; i < NC; i++) {
        const int c = (lane + 32 * i) * 8;
        if (c < d) {
            load_result<Y>(y, (size_t)row, d, c, rsm, rz, v[i]);
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
        } else {
#pragma unroll
            for (int j = 0; j < 8; j++) v[i][j] = 0.0f;
        }
    }
    if constexpr (is_enc<E>::value) quantize_held<E, 32, NC>(v, true, (size_t)row, lane, d, q, nullptr);
    else (void)q;
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
                              (T *)out, (const T *)res, y, gamma, beta, rows, d, eps, q));
}

extern "C" void ake_cuda_layernorm_quant(cudaStream_t stream, ake_dtype dt, void *out, const void *res,
                                         ake_cuda_gemm_result y, const float *gamma, const float *beta, int rows,
                                         int d, float eps, ake_cuda_qout q) {
    AKE_ASSERT(rows >= 0 && d > 0 && d % 8 == 0 && d <= AKE_CUDA_LN_MAX_D);
    AKE_ASSERT(out && aligned16(out) && aligned16(res) && gamma && beta && aligned16(gamma) && aligned16(beta));
    AKE_ASSERT(y.dt == dt || y.dt == AKE_DT_I32);
    check_result(y, 0);
    AKE_ASSERT(out != y.y);
    if (q.q) check_qout(q, d);
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
        load_result<A>(acc, row, N, (int)c, __ldg(acc.row_scale + row), acc.row_zero ? __ldg(acc.row_zero + row) : 0.0f, v);
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
