/* The training kernels on the GPU: each op's forward beside its backward, the same
 * operations as the CPU's src/train/ops.h (which is their reference in tests/gpu), over the
 * packed batch (cu [n+1] on the device). Activations and gradients are fp32; a GEMM's inputs
 * also get a copy in the compute type `lo` (BF16, F16 or F32; where it is F32 the copy is the
 * fp32 buffer itself, and writing it is a second store of the same value). Parameter gradients
 * are added to (+=); reductions over tokens are deterministic (fixed partitions, fixed order,
 * no atomics), so a step is bit-exact from run to run, which resume depends on.
 * Plain C header (launchers enqueue on `stream`). */
#ifndef AKE_TRAIN_CUDA_TRAIN_KERNELS_CUH
#define AKE_TRAIN_CUDA_TRAIN_KERNELS_CUH

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "base/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[t] = word[ids[t]] + pos[t - cu[i]] + type0 (fp32 [T, C]). */
void ake_trk_embed_forward(cudaStream_t s, float *out, const int32_t *ids, const int32_t *cu, int32_t n, int32_t T,
                           const float *word, const float *pos, const float *type0, int32_t C);
/* dpos[p] += sum over sequences long enough of dout[cu[i] + p]; dtype0 by ake_trk_colsum. */
void ake_trk_embed_backward_pos(cudaStream_t s, float *dpos, const float *dout, const int32_t *cu, int32_t n,
                                int32_t max_len, int32_t C);

/* res = a + b + bias (b, bias may be NULL; when both are, res must be a), then
 * out = LN(res) g + beta, mean/rstd [T] kept; out_lo the compute-type copy (may be NULL). */
void ake_trk_layernorm_forward(cudaStream_t s, ake_dtype lo_dt, float *out, void *out_lo, float *mean, float *rstd,
                               float *res, const float *a, const float *b, const float *bias, const float *g,
                               const float *beta, int32_t T, int32_t C, float eps);
/* dx (and dx_lo, may be NULL) from dout; scratch [T, C] receives dout * xhat, whose column sums
 * (ake_trk_colsum) are dg; db = colsum(dout). accumulate: dx += instead of =. */
void ake_trk_layernorm_backward(cudaStream_t s, ake_dtype lo_dt, float *dx, void *dx_lo, float *scratch,
                                const float *dout, const float *x, const float *g, const float *mean, const float *rstd,
                                int32_t T, int32_t C, int accumulate);

/* dst[c] += sum_t src[t, c] over T rows of C columns, in a fixed order. partial: device scratch
 * of ake_trk_colsum_scratch(C) floats. */
void ake_trk_colsum(cudaStream_t s, float *dst, const float *src, int32_t T, int32_t C, float *partial);
size_t ake_trk_colsum_scratch(int32_t C);

/* pre += b (in place, [T, I]); act_lo = gelu(pre) in the compute type (exact erf GELU). */
void ake_trk_gelu_forward(cudaStream_t s, ake_dtype lo_dt, float *pre, void *act_lo, const float *b, int64_t T,
                          int32_t I);
/* d (in place, [T, I]) *= gelu'(pre); d_lo its compute-type copy. */
void ake_trk_gelu_backward(cudaStream_t s, ake_dtype lo_dt, float *d, void *d_lo, const float *pre, int64_t count);

/* Attention per sequence and head over qkv [T, 3C] (fp32, without its bias, which is added
 * here: bqkv [3C]); out [T, C] fp32 and its copy out_lo, lse [T, NH]. max_len: the longest
 * sequence (shared memory is sized by it). */
void ake_trk_attention_forward(cudaStream_t s, ake_dtype lo_dt, float *out, void *out_lo, float *lse,
                               const float *qkv, const float *bqkv, const int32_t *cu, int32_t n, int32_t max_len,
                               int32_t NH, int32_t C);
/* dqkv [T, 3C] (and dqkv_lo) from dout [T, C], with out and lse of the forward. */
void ake_trk_attention_backward(cudaStream_t s, ake_dtype lo_dt, float *dqkv, void *dqkv_lo, const float *dout,
                                const float *qkv, const float *bqkv, const float *out, const float *lse,
                                const int32_t *cu, int32_t n, int32_t max_len, int32_t NH, int32_t C);
/* Shared memory the two attention kernels need for sequences of max_len tokens (bytes). */
size_t ake_trk_attention_smem(int32_t max_len, int32_t NH, int32_t C);

/* The head, one block per sequence: pooled = mean (pool 0) or first row (pool 1) of h [T, C];
 * emb = pooled / norm, norm = max(|pooled|, 1e-12) when normalize (else 1), into emb [n, C] and
 * norm [n]. The backward takes demb [n, C] back through normalization and pooling into dh [T, C]. */
void ake_trk_head_forward(cudaStream_t s, float *emb, float *norm, const float *h, const int32_t *cu, int32_t n,
                          int32_t C, int pool, int normalize);
void ake_trk_head_backward(cudaStream_t s, float *dh, const float *demb, const float *emb, const float *norm,
                           const int32_t *cu, int32_t n, int32_t C, int pool, int normalize);

/* The embedding MSE: loss_part[i] = sum_c (emb - target)^2 (the caller divides by n C) and
 * demb = 2 (emb - target) / (n C). */
void ake_trk_emb_mse(cudaStream_t s, float *loss_part, float *demb, const float *emb, const float *target, int32_t n,
                     int32_t C);

/* The contrastive term's softmax: p [n, n] holds the logits emb target^T on entry; per row,
 * loss_part[i] = -log softmax(p_i / tau)_i, and p is overwritten with weight (softmax - I) /
 * (n tau), so that demb += p target (a GEMM) adds the term's gradient. */
void ake_trk_infonce_softmax(cudaStream_t s, float *p, float *loss_part, int32_t n, float tau, float weight);

/* Hidden-state MSE of one layer: part[b] = partial sums of (h - t)^2 over blocks of rows, and
 * dh += weight 2 (h - t) / (T C). ake_trk_mse_blocks(T) blocks. */
void ake_trk_hidden_mse(cudaStream_t s, float *part, float *dh, const float *h, const float *t, int32_t T, int32_t C,
                        float weight);
int32_t ake_trk_mse_blocks(int32_t T);

/* The global gradient norm and the clip factor, on the device: norm_out[0] = |g| (double),
 * clip_out[0] = min(1, max_norm / (|g| + 1e-6)) (1 when max_norm <= 0). partial: 256 doubles. */
void ake_trk_grad_norm(cudaStream_t s, const float *g, int64_t n, double *partial, double *norm_out, float *clip_out,
                       float max_norm);

/* AdamW over the flat arrays (optim.h's arithmetic, its per-update constants computed by the
 * caller as ake_adamw_update_f32 does: keep = 1 - lr wd, step_size = lr / (1 - b1^t),
 * bc2_sqrt = sqrt(1 - b2^t)), decay[i] != 0 where weight decay applies, gradients scaled by
 * *clip; p_lo (may be NULL) receives the updated weights in the compute type. */
void ake_trk_adamw(cudaStream_t s, ake_dtype lo_dt, float *p, void *p_lo, const float *g, float *m, float *v,
                   const uint8_t *decay, int64_t n, const float *clip, float keep, float beta1, float beta2, float eps,
                   float step_size, float bc2_sqrt);

/* dst (compute type) = src (fp32), count elements. */
void ake_trk_convert(cudaStream_t s, ake_dtype lo_dt, void *dst, const float *src, int64_t count);

#ifdef __cplusplus
}
#endif
#endif
