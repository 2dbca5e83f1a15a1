/* The training kernels that are not LayerNorm or attention: embeddings, GELU, the pooled
 * head with its loss, the hidden-state MSE, the gradient norm, AdamW and conversion. Each
 * forward sits beside its backward. */
#include "train/cuda/train_common.cuh"

extern "C" {
#include "train/cuda/train_kernels.cuh"
}

static const unsigned GRID_CAP = 132 * 8;

/* ---- embeddings ---- */

__global__ void embed_forward_kernel(float *out, const int32_t *ids, const int32_t *cu, int n, int T_,
                                     const float *word, const float *pos, const float *type0, int C) {
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < (int64_t)T_ * C;
         k += (int64_t)gridDim.x * blockDim.x) {
        const int t = (int)(k / C), c = (int)(k % C);
        int lo = 0, hi = n; /* the sequence holding token t: cu[lo] <= t < cu[lo + 1] */
        while (hi - lo > 1) {
            const int mid = (lo + hi) / 2;
            if (cu[mid] <= t) lo = mid;
            else hi = mid;
        }
        out[k] = word[(size_t)ids[t] * C + c] + pos[(size_t)(t - cu[lo]) * C + c] + type0[c];
    }
}

extern "C" void ake_trk_embed_forward(cudaStream_t s, float *out, const int32_t *ids, const int32_t *cu, int32_t n,
                                      int32_t T, const float *word, const float *pos, const float *type0, int32_t C) {
    if (T == 0) return;
    embed_forward_kernel<<<ake_trk_blocks((int64_t)T * C, 256, GRID_CAP), 256, 0, s>>>(out, ids, cu, n, T, word, pos,
                                                                                       type0, C);
    CUDA_CHECK_LAUNCH();
}

/* one thread per (position, column): sums that token of every sequence long enough, in order */
__global__ void embed_backward_pos_kernel(float *dpos, const float *dout, const int32_t *cu, int n, int max_len,
                                          int C) {
    const int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (k >= (int64_t)max_len * C) return;
    const int p = (int)(k / C), c = (int)(k % C);
    float acc = 0;
    for (int i = 0; i < n; i++)
        if (p < cu[i + 1] - cu[i]) acc += dout[(size_t)(cu[i] + p) * C + c];
    dpos[k] += acc;
}

extern "C" void ake_trk_embed_backward_pos(cudaStream_t s, float *dpos, const float *dout, const int32_t *cu,
                                           int32_t n, int32_t max_len, int32_t C) {
    if (n == 0) return;
    embed_backward_pos_kernel<<<(unsigned)(((int64_t)max_len * C + 255) / 256), 256, 0, s>>>(dpos, dout, cu, n,
                                                                                             max_len, C);
    CUDA_CHECK_LAUNCH();
}

/* ---- GELU (exact) ---- */

template <typename T>
__global__ void gelu_forward_kernel(float *pre, T *act_lo, const float *b, int64_t count, int I) {
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < count; k += (int64_t)gridDim.x * blockDim.x) {
        const float x = pre[k] + b[k % I];
        pre[k] = x;
        act_lo[k] = to_lo<T>(0.5f * x * (1.0f + erff(x * 0.70710678118654752f)));
    }
}

template <typename T> __global__ void gelu_backward_kernel(float *d, T *d_lo, const float *pre, int64_t count) {
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < count; k += (int64_t)gridDim.x * blockDim.x) {
        const float x = pre[k];
        const float v = d[k] * (0.5f * (1.0f + erff(x * 0.70710678118654752f)) +
                                x * 0.3989422804014327f * __expf(-0.5f * x * x));
        d[k] = v;
        d_lo[k] = to_lo<T>(v);
    }
}

extern "C" void ake_trk_gelu_forward(cudaStream_t s, ake_dtype lo_dt, float *pre, void *act_lo, const float *b,
                                     int64_t T, int32_t I) {
    const int64_t count = T * I;
    if (count == 0) return;
    AKE_DISPATCH_DTYPE_OR_F32(lo_dt, L, (gelu_forward_kernel<L><<<ake_trk_blocks(count, 256, GRID_CAP), 256, 0, s>>>(
                                  pre, (L *)act_lo, b, count, I)));
    CUDA_CHECK_LAUNCH();
}

extern "C" void ake_trk_gelu_backward(cudaStream_t s, ake_dtype lo_dt, float *d, void *d_lo, const float *pre,
                                      int64_t count) {
    if (count == 0) return;
    AKE_DISPATCH_DTYPE_OR_F32(lo_dt, L, (gelu_backward_kernel<L><<<ake_trk_blocks(count, 256, GRID_CAP), 256, 0, s>>>(
                                  d, (L *)d_lo, pre, count)));
    CUDA_CHECK_LAUNCH();
}

/* ---- pooled head: pooling and L2 normalization, and back; the embedding's losses ---- */

enum { HEAD_THREADS = 256 };

__global__ void __launch_bounds__(HEAD_THREADS)
    head_forward_kernel(float *emb, float *norm_out, const float *h, const int32_t *cu, int C, int pool, int normalize) {
    __shared__ float red[32];
    const int i = blockIdx.x, t0 = cu[i], len = cu[i + 1] - cu[i], rows = pool == 1 ? 1 : len;
    float ss = 0;
    for (int c = threadIdx.x; c < C; c += HEAD_THREADS) {
        float acc = 0;
        for (int t = 0; t < rows; t++) acc += h[(size_t)(t0 + t) * C + c];
        acc /= rows;
        emb[(size_t)i * C + c] = acc;
        ss += acc * acc;
    }
    const float norm = normalize ? fmaxf(sqrtf(block_sum(ss, red)), 1e-12f) : 1.0f;
    for (int c = threadIdx.x; c < C; c += HEAD_THREADS) emb[(size_t)i * C + c] /= norm;
    if (threadIdx.x == 0) norm_out[i] = norm;
}

extern "C" void ake_trk_head_forward(cudaStream_t s, float *emb, float *norm, const float *h, const int32_t *cu,
                                     int32_t n, int32_t C, int pool, int normalize) {
    if (n == 0) return;
    head_forward_kernel<<<n, HEAD_THREADS, 0, s>>>(emb, norm, h, cu, C, pool, normalize);
    CUDA_CHECK_LAUNCH();
}

/* dpooled = (demb - y (y . demb)) / norm when normalized (y = emb), else demb; dh rows = dpooled / rows */
__global__ void __launch_bounds__(HEAD_THREADS)
    head_backward_kernel(float *dh, const float *demb, const float *emb, const float *norm, const int32_t *cu, int C,
                         int pool, int normalize) {
    __shared__ float red[32];
    const int i = blockIdx.x, t0 = cu[i], len = cu[i + 1] - cu[i], rows = pool == 1 ? 1 : len;
    float yd = 0;
    if (normalize)
        for (int c = threadIdx.x; c < C; c += HEAD_THREADS) yd += emb[(size_t)i * C + c] * demb[(size_t)i * C + c];
    yd = normalize ? block_sum(yd, red) : 0.0f;
    const float nr = norm[i];
    for (int c = threadIdx.x; c < C; c += HEAD_THREADS) {
        const float d = demb[(size_t)i * C + c];
        const float dp = (normalize ? (d - emb[(size_t)i * C + c] * yd) / nr : d) / rows;
        for (int t = 0; t < len; t++) dh[(size_t)(t0 + t) * C + c] = t < rows ? dp : 0.0f;
    }
}

extern "C" void ake_trk_head_backward(cudaStream_t s, float *dh, const float *demb, const float *emb, const float *norm,
                                      const int32_t *cu, int32_t n, int32_t C, int pool, int normalize) {
    if (n == 0) return;
    head_backward_kernel<<<n, HEAD_THREADS, 0, s>>>(dh, demb, emb, norm, cu, C, pool, normalize);
    CUDA_CHECK_LAUNCH();
}

__global__ void __launch_bounds__(HEAD_THREADS)
    emb_mse_kernel(float *loss_part, float *demb, const float *emb, const float *target, int C, float k) {
    __shared__ float red[32];
    const int i = blockIdx.x;
    float loss = 0;
    for (int c = threadIdx.x; c < C; c += HEAD_THREADS) {
        const float d = emb[(size_t)i * C + c] - target[(size_t)i * C + c];
        loss += d * d;
        demb[(size_t)i * C + c] = k * d;
    }
    loss = block_sum(loss, red);
    if (threadIdx.x == 0) loss_part[i] = loss;
}

extern "C" void ake_trk_emb_mse(cudaStream_t s, float *loss_part, float *demb, const float *emb, const float *target,
                                int32_t n, int32_t C) {
    if (n == 0) return;
    emb_mse_kernel<<<n, HEAD_THREADS, 0, s>>>(loss_part, demb, emb, target, C, 2.0f / ((float)n * C));
    CUDA_CHECK_LAUNCH();
}

__global__ void __launch_bounds__(HEAD_THREADS)
    infonce_softmax_kernel(float *p, float *loss_part, int n, float inv_tau, float k) {
    __shared__ float red[32];
    const int i = blockIdx.x;
    float *row = p + (size_t)i * n;
    float m = -INFINITY;
    for (int j = threadIdx.x; j < n; j += HEAD_THREADS) m = fmaxf(m, row[j] * inv_tau);
    m = warp_max(m);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = m;
    __syncthreads();
    m = -INFINITY;
    for (int w = 0; w < HEAD_THREADS / 32; w++) m = fmaxf(m, red[w]);
    float z = 0;
    for (int j = threadIdx.x; j < n; j += HEAD_THREADS) z += expf(row[j] * inv_tau - m);
    z = block_sum(z, red);
    const float lz = logf(z);
    if (threadIdx.x == 0) loss_part[i] = -(row[i] * inv_tau - m - lz);
    __syncthreads(); /* row[i] is read above before any thread overwrites it */
    for (int j = threadIdx.x; j < n; j += HEAD_THREADS) row[j] = k * (expf(row[j] * inv_tau - m - lz) - (j == i));
}

extern "C" void ake_trk_infonce_softmax(cudaStream_t s, float *p, float *loss_part, int32_t n, float tau,
                                        float weight) {
    if (n == 0) return;
    infonce_softmax_kernel<<<n, HEAD_THREADS, 0, s>>>(p, loss_part, n, 1.0f / tau, weight / ((float)n * tau));
    CUDA_CHECK_LAUNCH();
}

/* ---- hidden-state MSE ---- */

enum { MSE_ROWS = 16 };

extern "C" int32_t ake_trk_mse_blocks(int32_t T) { return (T + MSE_ROWS - 1) / MSE_ROWS; }

__global__ void __launch_bounds__(256)
    hidden_mse_kernel(float *part, float *dh, const float *h, const float *t, int T_, int C, float k) {
    __shared__ float red[32];
    const int r0 = blockIdx.x * MSE_ROWS, r1 = min(T_, r0 + MSE_ROWS);
    float acc = 0;
    for (int64_t x = (int64_t)r0 * C + threadIdx.x; x < (int64_t)r1 * C; x += 256) {
        const float d = h[x] - t[x];
        acc += d * d;
        dh[x] += k * d;
    }
    acc = block_sum(acc, red);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

extern "C" void ake_trk_hidden_mse(cudaStream_t s, float *part, float *dh, const float *h, const float *t, int32_t T,
                                   int32_t C, float weight) {
    if (T == 0) return;
    hidden_mse_kernel<<<ake_trk_mse_blocks(T), 256, 0, s>>>(part, dh, h, t, T, C, 2.0f * weight / ((float)T * C));
    CUDA_CHECK_LAUNCH();
}

/* ---- gradient norm and clip factor ---- */

enum { NORM_BLOCKS = 256 };

__global__ void __launch_bounds__(256) sumsq_kernel(double *partial, const float *g, int64_t n) {
    __shared__ double red[256];
    double acc = 0;
    for (int64_t k = blockIdx.x * 256 + threadIdx.x; k < n; k += (int64_t)NORM_BLOCKS * 256)
        acc += (double)g[k] * g[k];
    red[threadIdx.x] = acc;
    __syncthreads();
    for (int w = 128; w > 0; w >>= 1) {
        if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = red[0];
}

__global__ void norm_finish_kernel(const double *partial, double *norm_out, float *clip_out, float max_norm) {
    double t = 0;
    for (int b = 0; b < NORM_BLOCKS; b++) t += partial[b];
    const double norm = sqrt(t);
    *norm_out = norm;
    float f = 1.0f;
    if (max_norm > 0) {
        f = (float)(max_norm / (norm + 1e-6));
        if (f > 1.0f) f = 1.0f;
    }
    *clip_out = f;
}

extern "C" void ake_trk_grad_norm(cudaStream_t s, const float *g, int64_t n, double *partial, double *norm_out,
                                  float *clip_out, float max_norm) {
    sumsq_kernel<<<NORM_BLOCKS, 256, 0, s>>>(partial, g, n);
    CUDA_CHECK_LAUNCH();
    norm_finish_kernel<<<1, 1, 0, s>>>(partial, norm_out, clip_out, max_norm);
    CUDA_CHECK_LAUNCH();
}

/* ---- AdamW ---- */

template <typename T>
__global__ void adamw_kernel(float *p, T *p_lo, const float *g, float *m, float *v, const uint8_t *decay, int64_t n,
                             const float *clip, float keep, float b1, float b2, float eps, float step_size,
                             float bc2_sqrt) {
    const float cf = *clip;
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < n; k += (int64_t)gridDim.x * blockDim.x) {
        const float gi = g[k] * cf;
        float pk = p[k];
        if (decay[k]) pk *= keep;
        const float mk = m[k] + (1.0f - b1) * (gi - m[k]);
        const float vk = b2 * v[k] + (1.0f - b2) * gi * gi;
        pk -= step_size * (mk / (sqrtf(vk) / bc2_sqrt + eps));
        p[k] = pk;
        m[k] = mk;
        v[k] = vk;
        if (p_lo) p_lo[k] = to_lo<T>(pk);
    }
}

extern "C" void ake_trk_adamw(cudaStream_t s, ake_dtype lo_dt, float *p, void *p_lo, const float *g, float *m,
                              float *v, const uint8_t *decay, int64_t n, const float *clip, float keep, float beta1,
                              float beta2, float eps, float step_size, float bc2_sqrt) {
    AKE_DISPATCH_DTYPE_OR_F32(lo_dt, L, (adamw_kernel<L><<<ake_trk_blocks(n, 256, GRID_CAP), 256, 0, s>>>(
                                  p, (L *)p_lo, g, m, v, decay, n, clip, keep, beta1, beta2, eps, step_size,
                                  bc2_sqrt)));
    CUDA_CHECK_LAUNCH();
}

/* ---- conversion ---- */

template <typename T> __global__ void convert_kernel(T *dst, const float *src, int64_t n) {
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < n; k += (int64_t)gridDim.x * blockDim.x)
        dst[k] = to_lo<T>(src[k]);
}

extern "C" void ake_trk_convert(cudaStream_t s, ake_dtype lo_dt, void *dst, const float *src, int64_t count) {
    if (count == 0) return;
    AKE_DISPATCH_DTYPE_OR_F32(lo_dt, L,
                    (convert_kernel<L><<<ake_trk_blocks(count, 256, GRID_CAP), 256, 0, s>>>((L *)dst, src, count)));
    CUDA_CHECK_LAUNCH();
}
