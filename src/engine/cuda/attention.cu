/* Flash-style attention over packed variable-length sequences (sm_80+ mma.sync path).
 *
 * Block = 4 warps = one query tile of 64 rows of one (sequence, head); each warp owns 16
 * query rows. K and V tiles of 64 keys stream through shared memory, double-buffered
 * with cp.async (zero-filled past the sequence end). Per key tile, a warp computes
 * S = Q K^T (16 x 64) on tensor cores, updates the running row max m and sum l (exp2
 * with the scale folded in), rescales its output accumulators, and adds P V with P
 * taken straight from the S accumulators (the C fragment of m16n8k16 is the A fragment
 * of the next product once packed to 16 bits). Shared rows are padded by 16 bytes so
 * that ldmatrix reads are free of bank conflicts.
 *
 * Fragment layouts (PTX ISA, mma.m16n8k16, g = lane / 4, q = lane % 4):
 *   A 16x16: a0 (g, 2q..2q+1), a1 (g+8, 2q..), a2 (g, 2q+8..), a3 (g+8, 2q+8..)
 *   B 16x8 : b0 (k = 2q..2q+1, n = g), b1 (k = 2q+8.., n = g)
 *   C 16x8 : c0 c1 (g, 2q..2q+1), c2 c3 (g+8, 2q..2q+1) */
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/common.cuh"

extern "C" {
#include "engine/cuda/attention.cuh"
}

enum { BM = AKE_CUDA_ATTN_TILE, BN = 64, ATTN_THREADS = 128 };

static __device__ __forceinline__ uint32_t smem_addr(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* 16 bytes global -> shared, asynchronously; bytes = 0 writes zeros (src not read). */
static __device__ __forceinline__ void cp_async16(void *dst, const void *src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(bytes)
                 : "memory");
}
static __device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> static __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

static __device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}
static __device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}

template <typename T> struct mma_op;
template <> struct mma_op<__half> {
    static __device__ __forceinline__ void run(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        __half2 h = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&h);
    }
};
template <> struct mma_op<__nv_bfloat16> {
    static __device__ __forceinline__ void run(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&h);
    }
};

template <int D> constexpr int attn_smem_bytes() { return (BM + 4 * BN) * (D + 8) * 2; }

/* Versions (dev/cuda/NOTES.md): MINB = 1 is v1 (136 registers at D=64, 3 blocks per SM);
 * MINB = 4 is v2 (registers capped so that 4 blocks of 4 warps fit an SM). */
template <typename T, int D, int MINB>
__global__ void __launch_bounds__(ATTN_THREADS, MINB)
    attention_kernel(T *__restrict__ ctx, const T *__restrict__ qkv, const int4 *__restrict__ tiles,
                     const int32_t *__restrict__ ntiles, int H, float scale_log2) {
    static_assert(D % 16 == 0 && D <= 128, "head dim");
    constexpr int LDS = D + 8;   /* padded shared row, elements */
    constexpr int CPR = D / 8;   /* 16-byte chunks per row */
    if ((int)blockIdx.x >= *ntiles) return;
    const int4 tile = tiles[blockIdx.x];
    const int start = tile.x, len = tile.y, q0 = tile.z, h = blockIdx.y;
    const int d = H * D, stride = 3 * d;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T *Qs = reinterpret_cast<T *>(smem_raw); /* [BM][LDS] */
    T *Ks = Qs + BM * LDS;                   /* [2][BN][LDS] */
    T *Vs = Ks + 2 * BN * LDS;               /* [2][BN][LDS] */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;

    /* Rows row0..row0+63 of the sequence, columns col..col+D-1 of qkv, into dst. */
    auto load_tile = [&](T *dst, int row0, int col) {
#pragma unroll
        for (int i = tid; i < 64 * CPR; i += ATTN_THREADS) {
            const int r = i / CPR, c = (i % CPR) * 8, row = row0 + r;
            const int safe = row < len ? row : len - 1; /* address stays inside the sequence */
            cp_async16(dst + r * LDS + c, qkv + (size_t)(start + safe) * stride + col + c, row < len ? 16 : 0);
        }
    };

    load_tile(Qs, q0, h * D);
    load_tile(Ks, 0, d + h * D);
    load_tile(Vs, 0, 2 * d + h * D);
    cp_async_commit();

    const int nkv = (len + BN - 1) / BN;
    const bool active = q0 + warp * 16 < len; /* this warp has at least one real query row */
    uint32_t qf[D / 16][4];
    float o[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f; /* rows g and g+8 */

    for (int j = 0; j < nkv; j++) {
        const int buf = j & 1;
        if (j + 1 < nkv) {
            load_tile(Ks + (buf ^ 1) * BN * LDS, (j + 1) * BN, d + h * D);
            load_tile(Vs + (buf ^ 1) * BN * LDS, (j + 1) * BN, 2 * d + h * D);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (active) {
            if (j == 0) {
#pragma unroll
                for (int ks = 0; ks < D / 16; ks++)
                    ldmatrix_x4(qf[ks], Qs + (warp * 16 + (lane & 15)) * LDS + ks * 16 + (lane >> 4) * 8);
            }
            const T *Kb = Ks + buf * BN * LDS, *Vb = Vs + buf * BN * LDS;
            float s[BN / 8][4];
#pragma unroll
            for (int i = 0; i < BN / 8; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
            for (int ks = 0; ks < D / 16; ks++)
#pragma unroll
                for (int np = 0; np < BN / 16; np++) {
                    uint32_t b[4];
                    ldmatrix_x4(b, Kb + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * LDS + ks * 16 +
                                       ((lane >> 3) & 1) * 8);
                    mma_op<T>::run(s[2 * np], qf[ks], b[0], b[1]);
                    mma_op<T>::run(s[2 * np + 1], qf[ks], b[2], b[3]);
                }
            /* scale into log2 units, mask keys past the end (last tile only), row max over the quad */
            const int kvalid = len - j * BN;
            if (kvalid < BN) {
#pragma unroll
                for (int nt = 0; nt < BN / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        if (nt * 8 + (lane & 3) * 2 + (e & 1) >= kvalid) s[nt][e] = -INFINITY;
            }
            float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
            for (int nt = 0; nt < BN / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const float v = s[nt][e] * scale_log2;
                    s[nt][e] = v;
                    if (e < 2) mx0 = fmaxf(mx0, v);
                    else mx1 = fmaxf(mx1, v);
                }
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
            const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1); /* finite: key 0 of each tile is real */
            const float a0 = exp2f(m0 - mn0), a1 = exp2f(m1 - mn1); /* 0 on the first tile */
            m0 = mn0;
            m1 = mn1;
            float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
            for (int nt = 0; nt < BN / 8; nt++) {
                s[nt][0] = exp2f(s[nt][0] - mn0);
                s[nt][1] = exp2f(s[nt][1] - mn0);
                s[nt][2] = exp2f(s[nt][2] - mn1);
                s[nt][3] = exp2f(s[nt][3] - mn1);
                rs0 += s[nt][0] + s[nt][1];
                rs1 += s[nt][2] + s[nt][3];
            }
            l0 = l0 * a0 + rs0; /* per-thread partial sums; the quad adds them at the end */
            l1 = l1 * a1 + rs1;
#pragma unroll
            for (int i = 0; i < D / 8; i++) {
                o[i][0] *= a0;
                o[i][1] *= a0;
                o[i][2] *= a1;
                o[i][3] *= a1;
            }
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
                const uint32_t pa[4] = {mma_op<T>::pack(s[2 * kk][0], s[2 * kk][1]),
                                        mma_op<T>::pack(s[2 * kk][2], s[2 * kk][3]),
                                        mma_op<T>::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                        mma_op<T>::pack(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
                for (int dp = 0; dp < D / 16; dp++) {
                    uint32_t b[4];
                    ldmatrix_x4_trans(b, Vb + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS + dp * 16 +
                                             (lane >> 4) * 8);
                    mma_op<T>::run(o[2 * dp], pa, b[0], b[1]);
                    mma_op<T>::run(o[2 * dp + 1], pa, b[2], b[3]);
                }
            }
        }
        __syncthreads(); /* the next iteration's loads overwrite the other buffer */
    }
    if (!active) return;
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
    const int r0 = q0 + warp * 16 + (lane >> 2), r1 = r0 + 8;
#pragma unroll
    for (int i = 0; i < D / 8; i++) {
        const int col = h * D + i * 8 + (lane & 3) * 2;
        if (r0 < len)
            *reinterpret_cast<uint32_t *>(ctx + (size_t)(start + r0) * d + col) =
                mma_op<T>::pack(o[i][0] * inv0, o[i][1] * inv0);
        if (r1 < len)
            *reinterpret_cast<uint32_t *>(ctx + (size_t)(start + r1) * d + col) =
                mma_op<T>::pack(o[i][2] * inv1, o[i][3] * inv1);
    }
}

extern "C" int ake_cuda_attention_tiles(const int32_t *cu, int32_t n, int32_t *tiles) {
    int k = 0;
    for (int32_t s = 0; s < n; s++) {
        const int32_t len = cu[s + 1] - cu[s];
        for (int32_t q0 = 0; q0 < len; q0 += BM, k++) {
            tiles[4 * k] = cu[s];
            tiles[4 * k + 1] = len;
            tiles[4 * k + 2] = q0;
            tiles[4 * k + 3] = 0;
        }
    }
    return k;
}

extern "C" int ake_cuda_attention_max_tiles(int32_t max_tokens, int32_t max_seqs) {
    /* sum ceil(len/64) <= sum (len/64 + 1) = T/64 + n */
    return (max_tokens + BM - 1) / BM + max_seqs;
}

extern "C" int ake_cuda_attention_supports(int head_dim) {
    return head_dim == 32 || head_dim == 64 || head_dim == 128;
}

template <typename T, int D, int MINB>
static void launch_v(cudaStream_t stream, void *ctx, const void *qkv, const int32_t *tiles, const int32_t *ntiles,
                     int max_tiles, int heads) {
    constexpr int smem = attn_smem_bytes<D>();
    if (smem > 48 * 1024) /* per device; cheap, and only at capture time on the graph path */
        CUDA_CHECK(cudaFuncSetAttribute(attention_kernel<T, D, MINB>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        smem));
    const float scale_log2 = 1.4426950408889634f / sqrtf((float)D);
    attention_kernel<T, D, MINB><<<dim3((unsigned)max_tiles, (unsigned)heads), ATTN_THREADS, smem, stream>>>(
        (T *)ctx, (const T *)qkv, (const int4 *)tiles, ntiles, heads, scale_log2);
    CUDA_CHECK_LAUNCH();
}

template <typename T, int D>
static void launch(cudaStream_t stream, void *ctx, const void *qkv, const int32_t *tiles, const int32_t *ntiles,
                   int max_tiles, int heads, int version) {
    if (version == 1) launch_v<T, D, 1>(stream, ctx, qkv, tiles, ntiles, max_tiles, heads);
    else launch_v<T, D, D <= 64 ? 4 : 2>(stream, ctx, qkv, tiles, ntiles, max_tiles, heads);
}

extern "C" void ake_cuda_attention(cudaStream_t stream, ake_dtype dt, void *ctx, const void *qkv,
                                   const int32_t *tiles, const int32_t *ntiles_dev, int max_tiles, int heads,
                                   int head_dim, int version) {
    AKE_ASSERT(ake_cuda_attention_supports(head_dim) && heads > 0 && max_tiles >= 0 && version >= 0 && version <= 2);
    AKE_ASSERT(((uintptr_t)ctx | (uintptr_t)qkv | (uintptr_t)tiles) % 16 == 0);
    if (max_tiles == 0) return;
    AKE_DISPATCH_DTYPE(dt, T, {
        if (head_dim == 32) launch<T, 32>(stream, ctx, qkv, tiles, ntiles_dev, max_tiles, heads, version);
        else if (head_dim == 64) launch<T, 64>(stream, ctx, qkv, tiles, ntiles_dev, max_tiles, heads, version);
        else launch<T, 128>(stream, ctx, qkv, tiles, ntiles_dev, max_tiles, heads, version);
    });
}
