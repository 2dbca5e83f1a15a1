/* LayerNorm for training, forward (keeping mean and rstd) beside backward; plus the column sums
 * that reduce parameter gradients over tokens. One warp per row: rows are C = 384..1024 floats,
 * read three times from L1/L2. */
#include "train/cuda/train_common.cuh"

extern "C" {
#include "train/cuda/train_kernels.cuh"
}

template <typename T>
__global__ void __launch_bounds__(256)
    ln_forward_kernel(float *out, T *out_lo, float *mean, float *rstd, float *res, const float *a, const float *b,
                      const float *bias, const float *g, const float *beta, int T_, int C, float eps) {
    const int row = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= T_) return;
    const float *ar = a + (size_t)row * C;
    float *rr = res + (size_t)row * C;
    const bool sum = b || bias;
    float s = 0;
    for (int c = lane; c < C; c += 32) {
        float v = ar[c];
        if (b) v += b[(size_t)row * C + c];
        if (bias) v += bias[c];
        if (sum) rr[c] = v;
        s += v;
    }
    const float m = warp_sum(s) / C;
    float var = 0;
    for (int c = lane; c < C; c += 32) {
        const float d = rr[c] - m;
        var += d * d;
    }
    const float rs = rsqrtf(warp_sum(var) / C + eps);
    for (int c = lane; c < C; c += 32) {
        const float y = (rr[c] - m) * rs * g[c] + beta[c];
        out[(size_t)row * C + c] = y;
        if (out_lo) out_lo[(size_t)row * C + c] = to_lo<T>(y);
    }
    if (lane == 0) mean[row] = m, rstd[row] = rs;
}

extern "C" void ake_trk_layernorm_forward(cudaStream_t s, ake_dtype lo_dt, float *out, void *out_lo, float *mean,
                                          float *rstd, float *res, const float *a, const float *b, const float *bias,
                                          const float *g, const float *beta, int32_t T, int32_t C, float eps) {
    AKE_ASSERT(b || bias || res == a);
    if (T == 0) return;
    AKE_DISPATCH_DTYPE_OR_F32(lo_dt, L, (ln_forward_kernel<L><<<(T + 7) / 8, 256, 0, s>>>(out, (L *)out_lo, mean, rstd, res, a,
                                                                                 b, bias, g, beta, T, C, eps)));
    CUDA_CHECK_LAUNCH();
}

/* dx = rstd (dn - mean(dn) - xhat mean(dn xhat)), dn = dout g; scratch = dout xhat */
template <typename T>
__global__ void __launch_bounds__(256)
    ln_backward_kernel(float *dx, T *dx_lo, float *scratch, const float *dout, const float *x, const float *g,
                       const float *mean, const float *rstd, int T_, int C, int accumulate) {
    const int row = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= T_) return;
    const size_t o = (size_t)row * C;
    const float m = mean[row], rs = rstd[row];
    float s1 = 0, s2 = 0;
    for (int c = lane; c < C; c += 32) {
        const float xh = (x[o + c] - m) * rs, dn = dout[o + c] * g[c];
        s1 += dn;
        s2 += dn * xh;
        scratch[o + c] = dout[o + c] * xh;
    }
    s1 = warp_sum(s1) / C;
    s2 = warp_sum(s2) / C;
    for (int c = lane; c < C; c += 32) {
        const float xh = (x[o + c] - m) * rs, dn = dout[o + c] * g[c];
        float v = rs * (dn - s1 - xh * s2);
        if (accumulate) v += dx[o + c];
        dx[o + c] = v;
        if (dx_lo) dx_lo[o + c] = to_lo<T>(v);
    }
}

extern "C" void ake_trk_layernorm_backward(cudaStream_t s, ake_dtype lo_dt, float *dx, void *dx_lo, float *scratch,
                                           const float *dout, const float *x, const float *g, const float *mean,
                                           const float *rstd, int32_t T, int32_t C, int accumulate) {
    if (T == 0) return;
    AKE_DISPATCH_DTYPE_OR_F32(lo_dt, L, (ln_backward_kernel<L><<<(T + 7) / 8, 256, 0, s>>>(dx, (L *)dx_lo, scratch, dout, x, g,
                                                                                  mean, rstd, T, C, accumulate)));
    CUDA_CHECK_LAUNCH();
}

/* Column sums in two fixed-order stages: block (x: 32 columns, y: 8 row lanes) of chunk
 * blockIdx.y sums its rows into partial[chunk][c]; then one thread per column adds the chunks
 * in order into dst. */
enum { COLSUM_CHUNKS = 64 };

__global__ void __launch_bounds__(256) colsum_partial_kernel(float *partial, const float *src, int T_, int C) {
    __shared__ float acc[8][33];
    const int c = blockIdx.x * 32 + threadIdx.x, chunk = blockIdx.y;
    const int per = (T_ + COLSUM_CHUNKS - 1) / COLSUM_CHUNKS, r0 = chunk * per, r1 = min(T_, r0 + per);
    float v = 0;
    if (c < C)
        for (int r = r0 + threadIdx.y; r < r1; r += 8) v += src[(size_t)r * C + c];
    acc[threadIdx.y][threadIdx.x] = v;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float t = 0;
        for (int k = 0; k < 8; k++) t += acc[k][threadIdx.x];
        partial[(size_t)chunk * C + c] = t;
    }
}

__global__ void colsum_finish_kernel(float *dst, const float *partial, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float t = 0;
    for (int k = 0; k < COLSUM_CHUNKS; k++) t += partial[(size_t)k * C + c];
    dst[c] += t;
}

extern "C" size_t ake_trk_colsum_scratch(int32_t C) { return (size_t)COLSUM_CHUNKS * C; }

extern "C" void ake_trk_colsum(cudaStream_t s, float *dst, const float *src, int32_t T, int32_t C, float *partial) {
    colsum_partial_kernel<<<dim3((C + 31) / 32, COLSUM_CHUNKS), dim3(32, 8), 0, s>>>(partial, src, T, C);
    CUDA_CHECK_LAUNCH();
    colsum_finish_kernel<<<(C + 127) / 128, 128, 0, s>>>(dst, partial, C);
    CUDA_CHECK_LAUNCH();
}
