/* The encoder's operations for training on the CPU, each forward beside its backward (as
 * llm.c keeps layernorm_forward and layernorm_backward together), over a packed batch: the
 * T tokens of n sequences end to end, sequence i owning rows cu[i] .. cu[i+1]-1 (engine.h).
 *
 * Every op exists twice, generated from one source (ops_cpu.inc): in float (suffix _f32,
 * the CPU trainer; GEMMs through oneDNN's sgemm) and in double (_f64, the reference the
 * gradient checks hold against float64 finite differences; plain loops). The forward ops
 * keep what their backward needs (LayerNorm mean and rstd, the attention's log-sum-exp).
 *
 * Conventions of the backward ops: a gradient of a parameter (dW, db, dg, ...) is ADDED to
 * (the caller zeroes gradients once per step); a gradient of an activation is written (=),
 * except where `accumulate` says add (an activation read by two consumers, such as a layer's
 * input, which feeds the QKV GEMM and the residual). Shapes are row-major.
 *
 *   embed       out[T,C] = word[ids[t]] + pos[t - cu[i]] + type0         (word is frozen)
 *   layernorm   out[T,C] = (x - mean) * rstd * g + b, rstd = 1/sqrt(var + eps) (biased var)
 *   matmul      out[T,N] = x[T,K] W[N,K]^T + b[N]                          (HF Linear layout)
 *   gelu        exact: 0.5 x (1 + erf(x / sqrt 2))                          (BERT's "gelu")
 *   attention   per sequence and head h (dh = C / NH): softmax(q k^T / sqrt(dh)) v over that
 *               sequence only; qkv[T,3C] holds q | k | v, head h at columns h*dh of each;
 *               lse[T,NH] = the log-sum-exp of each query's scaled scores, from which the
 *               backward recomputes the softmax (FlashAttention-2's statistics)
 *   pool        mean over a sequence's rows, or its first row ([CLS])
 *   l2norm      y = x / max(|x|, 1e-12)                                     (F.normalize)
 *   mse         mean over all elements of (pred - target)^2                (nn.MSELoss)
 *   infonce     contrastive distillation over the batch (InfoNCE with the teacher's embeddings as
 *               keys: DistilCSE, Xu et al. 2023): p_ij = softmax_j(s_i . t_j / tau),
 *               loss = mean_i -log p_ii; p [n, n] keeps the softmax for the backward
 */
#ifndef AKE_TRAIN_OPS_H
#define AKE_TRAIN_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "model/model.h"

#define AKE_TR_OPS(R, S)                                                                                       \
    void ake_tr_embed_forward##S(R *out, const int32_t *ids, const int32_t *cu, int32_t n, const R *word,      \
                                 const R *pos, const R *type0, int32_t C);                                     \
    void ake_tr_embed_backward##S(R *dpos, R *dtype0, const R *dout, const int32_t *cu, int32_t n, int32_t C); \
    void ake_tr_layernorm_forward##S(R *out, R *mean, R *rstd, const R *x, const R *g, const R *b, int64_t T,  \
                                     int32_t C, double eps);                                                   \
    void ake_tr_layernorm_backward##S(R *dx, R *dg, R *db, const R *dout, const R *x, const R *g,              \
                                      const R *mean, const R *rstd, int64_t T, int32_t C);                     \
    void ake_tr_matmul_forward##S(R *out, const R *x, const R *W, const R *b, int64_t T, int32_t K, int32_t N); \
    void ake_tr_matmul_backward##S(R *dx, R *dW, R *db, const R *dout, const R *x, const R *W, int64_t T,       \
                                   int32_t K, int32_t N, bool accumulate);                                     \
    void ake_tr_gelu_forward##S(R *out, const R *x, int64_t count);                                            \
    void ake_tr_gelu_backward##S(R *dx, const R *dout, const R *x, int64_t count);                             \
    void ake_tr_attention_forward##S(R *out, R *lse, const R *qkv, const int32_t *cu, int32_t n, int32_t NH,   \
                                     int32_t C);                                                               \
    void ake_tr_attention_backward##S(R *dqkv, const R *dout, const R *qkv, const R *out, const R *lse,         \
                                      const int32_t *cu, int32_t n, int32_t NH, int32_t C);                    \
    void ake_tr_pool_forward##S(R *out, const R *x, const int32_t *cu, int32_t n, int32_t C, ake_pooling mode); \
    void ake_tr_pool_backward##S(R *dx, const R *dout, const int32_t *cu, int32_t n, int32_t C,                \
                                 ake_pooling mode);                                                            \
    void ake_tr_l2norm_forward##S(R *out, R *norm, const R *x, int32_t n, int32_t C);                          \
    void ake_tr_l2norm_backward##S(R *dx, const R *dout, const R *out, const R *norm, int32_t n, int32_t C);   \
    double ake_tr_mse_forward##S(const R *pred, const R *target, int64_t count);                               \
    void ake_tr_mse_backward##S(R *dpred, const R *pred, const R *target, int64_t count, double weight,         \
                                bool accumulate);                                                              \
    double ake_tr_infonce_forward##S(R *p, const R *s, const R *t, int32_t n, int32_t C, double tau);          \
    void ake_tr_infonce_backward##S(R *ds, const R *p, const R *t, int32_t n, int32_t C, double tau,           \
                                    double weight);

/* mse_backward: dpred (= or +=) weight * 2 (pred - target) / count, the gradient of
 * weight * mse. infonce_backward: ds += weight (p - I) t / (n tau), the gradient of weight *
 * infonce with respect to s (t is the teacher's, a constant). pool supports AKE_POOL_MEAN and
 * AKE_POOL_CLS (callers refuse max). */
AKE_TR_OPS(float, _f32)
AKE_TR_OPS(double, _f64)
#undef AKE_TR_OPS

#endif
