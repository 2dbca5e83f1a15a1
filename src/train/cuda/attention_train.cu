/* Attention for training over packed sequences: one block per (sequence, head), the head's
 * q, k, v (bias added) staged in shared memory with rows padded to dh + 1 floats (lanes
 * reading different rows of one column hit different banks).
 *
 * Forward: each warp takes queries a = warp, warp + 4, ...: lanes compute the scores of keys
 * b = lane, lane + 32, ... into the warp's row of shared memory, softmax with the warp's max and
 * sum, then lanes over the head's dimensions accumulate P v; lse = max + log(sum).
 * Backward (FlashAttention-2's equations, P recomputed from lse, D_a = dO_a . O_a):
 *   pass 1, per query a:  dS_ab = P_ab (dO_a . v_b - D_a);  dq_a = scale sum_b dS_ab k_b
 *   pass 2, per key b:    dk_b = scale sum_a dS_ab q_a;  dv_b = sum_a P_ab dO_a
 * recomputing P and dS in pass 2 instead of keeping the L x L matrices: shared memory stays
 * O(L dh), and the extra dot products are cheap at sentence lengths. No atomics: each pass
 * owns the rows it writes. */
#include "train/cuda/train_common.cuh"

extern "C" {
#include "train/cuda/train_kernels.cuh"
}

enum { ATT_WARPS = 4 };

extern "C" size_t ake_trk_attention_smem(int32_t max_len, int32_t NH, int32_t C) {
    const size_t dh = (size_t)(C / NH), L = (size_t)max_len;
    /* backward, the larger: q, k, v, dO rows (dh + 1 each), D and lse [L], two rows [L] per warp */
    return (4 * L * (dh + 1) + 2 * L + 2 * ATT_WARPS * L + ATT_WARPS * (dh + 1)) * sizeof(float);
}

/* rows [L][dh + 1] of column block `col` of X ([T, stride]), plus bias. */
static __device__ void stage(float *dst, const float *X, const float *bias, int t0, int len, int stride, int col,
                             int dh) {
    for (int i = threadIdx.x; i < len * dh; i += blockDim.x) {
        const int r = i / dh, e = i % dh;
        dst[r * (dh + 1) + e] = X[(size_t)(t0 + r) * stride + col + e] + (bias ? bias[col + e] : 0.0f);
    }
}

template <typename T>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    attention_forward_kernel(float *out, T *out_lo, float *lse, const float *qkv, const float *bqkv, const int32_t *cu,
                             int NH, int C, int max_len) {
    extern __shared__ float sm[];
    const int i = blockIdx.x, h = blockIdx.y, t0 = cu[i], len = cu[i + 1] - cu[i], dh = C / NH, ld = dh + 1;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, C3 = 3 * C;
    const float scale = rsqrtf((float)dh);
    float *Ks = sm, *Vs = Ks + max_len * ld, *P = Vs + max_len * ld, *Q = P + ATT_WARPS * max_len;
    stage(Ks, qkv, bqkv, t0, len, C3, C + h * dh, dh);
    stage(Vs, qkv, bqkv, t0, len, C3, 2 * C + h * dh, dh);
    __syncthreads();
    float *p = P + warp * max_len, *q = Q + warp * ld;
    for (int a = warp; a < len; a += ATT_WARPS) {
        for (int e = lane; e < dh; e += 32) q[e] = qkv[(size_t)(t0 + a) * C3 + h * dh + e] + bqkv[h * dh + e];
        __syncwarp();
        float m = -INFINITY;
        for (int b = lane; b < len; b += 32) {
            float sc = 0;
            for (int e = 0; e < dh; e++) sc += q[e] * Ks[b * ld + e];
            p[b] = sc * scale;
            m = fmaxf(m, p[b]);
        }
        m = warp_max(m);
        float l = 0;
        for (int b = lane; b < len; b += 32) l += (p[b] = __expf(p[b] - m));
        l = warp_sum(l);
        __syncwarp();
        const float inv = 1.0f / l;
        for (int e = lane; e < dh; e += 32) {
            float acc = 0;
            for (int b = 0; b < len; b++) acc += p[b] * Vs[b * ld + e];
            const size_t o = (size_t)(t0 + a) * C + h * dh + e;
            out[o] = acc * inv;
            if (out_lo) out_lo[o] = to_lo<T>(acc * inv);
        }
        if (lane == 0) lse[(size_t)(t0 + a) * NH + h] = m + __logf(l);
        __syncwarp();
    }
}

template <typename T>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    attention_backward_kernel(float *dqkv, T *dqkv_lo, const float *dout, const float *qkv, const float *bqkv,
                              const float *out, const float *lse, const int32_t *cu, int NH, int C, int max_len) {
    extern __shared__ float sm[];
    const int i = blockIdx.x, h = blockIdx.y, t0 = cu[i], len = cu[i + 1] - cu[i], dh = C / NH, ld = dh + 1;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, C3 = 3 * C;
    const float scale = rsqrtf((float)dh);
    float *Qs = sm, *Ks = Qs + max_len * ld, *Vs = Ks + max_len * ld, *dOs = Vs + max_len * ld;
    float *D = dOs + max_len * ld, *Ls = D + max_len, *rows = Ls + max_len;
    stage(Qs, qkv, bqkv, t0, len, C3, h * dh, dh);
    stage(Ks, qkv, bqkv, t0, len, C3, C + h * dh, dh);
    stage(Vs, qkv, bqkv, t0, len, C3, 2 * C + h * dh, dh);
    stage(dOs, dout, NULL, t0, len, C, h * dh, dh);
    __syncthreads();
    for (int a = warp; a < len; a += ATT_WARPS) { /* D_a = dO_a . O_a */
        float d = 0;
        for (int e = lane; e < dh; e += 32) d += dOs[a * ld + e] * out[(size_t)(t0 + a) * C + h * dh + e];
        d = warp_sum(d);
        if (lane == 0) D[a] = d, Ls[a] = lse[(size_t)(t0 + a) * NH + h];
    }
    __syncthreads();
    float *ps = rows + warp * 2 * max_len, *ds = ps + max_len;
    /* pass 1: dq */
    for (int a = warp; a < len; a += ATT_WARPS) {
        for (int b = lane; b < len; b += 32) {
            float sc = 0, dp = 0;
            for (int e = 0; e < dh; e++) sc += Qs[a * ld + e] * Ks[b * ld + e], dp += dOs[a * ld + e] * Vs[b * ld + e];
            const float p = __expf(sc * scale - Ls[a]);
            ds[b] = p * (dp - D[a]);
        }
        __syncwarp();
        for (int e = lane; e < dh; e += 32) {
            float acc = 0;
            for (int b = 0; b < len; b++) acc += ds[b] * Ks[b * ld + e];
            const size_t o = (size_t)(t0 + a) * C3 + h * dh + e;
            dqkv[o] = acc * scale;
            if (dqkv_lo) dqkv_lo[o] = to_lo<T>(acc * scale);
        }
        __syncwarp();
    }
    /* pass 2: dk, dv */
    for (int b = warp; b < len; b += ATT_WARPS) {
        for (int a = lane; a < len; a += 32) {
            float sc = 0, dp = 0;
            for (int e = 0; e < dh; e++) sc += Qs[a * ld + e] * Ks[b * ld + e], dp += dOs[a * ld + e] * Vs[b * ld + e];
            const float p = __expf(sc * scale - Ls[a]);
            ps[a] = p;
            ds[a] = p * (dp - D[a]);
        }
        __syncwarp();
        for (int e = lane; e < dh; e += 32) {
            float dk = 0, dv = 0;
            for (int a = 0; a < len; a++) dk += ds[a] * Qs[a * ld + e], dv += ps[a] * dOs[a * ld + e];
            const size_t ok = (size_t)(t0 + b) * C3 + C + h * dh + e, ov = ok + C;
            dqkv[ok] = dk * scale;
            dqkv[ov] = dv;
            if (dqkv_lo) dqkv_lo[ok] = to_lo<T>(dk * scale), dqkv_lo[ov] = to_lo<T>(dv);
        }
        __syncwarp();
    }
}

static void opt_in(const void *kernel, size_t smem) {
    static int max_optin = -1;
    if (max_optin < 0) {
        int dev = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    }
    AKE_ASSERT(smem <= (size_t)max_optin); /* the trainer refuses longer sequences at creation */
    if (smem > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
}

extern "C" void ake_trk_attention_forward(cudaStream_t s, ake_dtype lo_dt, float *out, void *out_lo, float *lse,
                                          const float *qkv, const float *bqkv, const int32_t *cu, int32_t n,
                                          int32_t max_len, int32_t NH, int32_t C) {
    if (n == 0) return;
    const size_t smem = ake_trk_attention_smem(max_len, NH, C);
    AKE_DISPATCH_DTYPE_OR_F32(lo_dt, L, {
        opt_in((const void *)attention_forward_kernel<L>, smem);
        attention_forward_kernel<L><<<dim3(n, NH), ATT_WARPS * 32, smem, s>>>(out, (L *)out_lo, lse, qkv, bqkv, cu,
                                                                             NH, C, max_len);
    });
    CUDA_CHECK_LAUNCH();
}

extern "C" void ake_trk_attention_backward(cudaStream_t s, ake_dtype lo_dt, float *dqkv, void *dqkv_lo,
                                           const float *dout, const float *qkv, const float *bqkv, const float *out,
                                           const float *lse, const int32_t *cu, int32_t n, int32_t max_len,
                                           int32_t NH, int32_t C) {
    if (n == 0) return;
    const size_t smem = ake_trk_attention_smem(max_len, NH, C);
    AKE_DISPATCH_DTYPE_OR_F32(lo_dt, L, {
        opt_in((const void *)attention_backward_kernel<L>, smem);
        attention_backward_kernel<L><<<dim3(n, NH), ATT_WARPS * 32, smem, s>>>(
            dqkv, (L *)dqkv_lo, dout, qkv, bqkv, out, lse, cu, NH, C, max_len);
    });
    CUDA_CHECK_LAUNCH();
}
