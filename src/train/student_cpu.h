/* The student's forward and backward on the CPU, over a packed batch (ids [T], cu [n+1] as in
 * engine.h), in float (_f32: the CPU trainer) and in double (_f64: the whole-model gradient
 * check). This is training's own forward (ake_engine_ops stays inference-only): built from
 * ops.h, it keeps every activation the backward reads.
 *
 * The distillation loss of a batch (sentence-transformers' MSELoss on the sentence embedding,
 * plus the optional terms of ake_loss_weights w):
 *   loss = mse(out, target) + w.hidden * (1/J) sum_j mse(h_j, hidden_target_j)
 *          + w.contrastive * infonce(out, target; w.temperature)
 * out [n, C] the student's pooled (and, when the config says so, L2-normalized) embedding,
 * target [n, C] the teacher's; h_j [T, C] the output of student layer j, hidden_target_j the
 * output of the teacher's layer teacher_layer[j]; J = the student's layers; infonce as in ops.h
 * (each student embedding picks its own teacher embedding out of the batch's). */
#ifndef AKE_TRAIN_STUDENT_CPU_H
#define AKE_TRAIN_STUDENT_CPU_H

#include "train/ops.h"
#include "train/student.h"

#define AKE_TR_STUDENT(R, S)                                                                                   \
    typedef struct {                                                                                           \
        R *qkv;                /* [T, 3C] */                                                                   \
        R *lse;                /* [T, NH] attention log-sum-exp */                                            \
        R *ctx;                /* [T, C] attention output, before Wo */                                       \
        R *res1;               /* [T, C] layer input + ctx Wo^T + bo: LN1's input */                          \
        R *ln1_mean, *ln1_rstd; /* [T] */                                                                      \
        R *x1;                 /* [T, C] LN1's output */                                                       \
        R *ff_pre, *ff_act;    /* [T, inter] before and after GELU */                                          \
        R *res2;               /* [T, C] x1 + ff_act W2^T + b2: LN2's input */                                \
        R *ln2_mean, *ln2_rstd; /* [T] */                                                                      \
    } ake_tr_layer_acts##S;                                                                                    \
    typedef struct {                                                                                           \
        int32_t max_tokens, max_batch;                                                                         \
        R *emb_sum;            /* [T, C] word + position + type: the embedding LayerNorm's input */           \
        R *emb_mean, *emb_rstd; /* [T] */                                                                      \
        R **h;                 /* owned [layers + 1] of [T, C]: h[0] the embeddings' output, h[j+1] layer j's */ \
        ake_tr_layer_acts##S *layer; /* owned [layers] */                                                      \
        R *pooled, *norm, *out; /* [n, C], [n], [n, C] */                                                      \
        R *dh, *dres, *dctx, *dqkv, *dff, *dout; /* backward scratch: [T,C] x3, [T,3C], [T,inter], [n,C] */    \
        R *p;                  /* [n, n] the contrastive term's softmax */                                    \
        R *block;              /* owned: every array above */                                                 \
    } ake_tr_acts##S;                                                                                          \
    ake_status ake_tr_acts_create##S(ake_tr_acts##S *a, const ake_student_layout *L, int32_t max_tokens,       \
                                     int32_t max_batch, char *err, size_t errlen);                             \
    void ake_tr_acts_free##S(ake_tr_acts##S *a);                                                               \
    void ake_tr_forward##S(ake_tr_acts##S *a, const ake_student_layout *L, const R *params, const R *word,     \
                           const int32_t *ids, const int32_t *cu, int32_t n);                                  \
    double ake_tr_loss##S(ake_tr_acts##S *a, const ake_student_layout *L, const int32_t *cu, int32_t n,        \
                          const R *target, const R *const *hidden_target, const ake_loss_weights *w);          \
    void ake_tr_backward##S(ake_tr_acts##S *a, const ake_student_layout *L, const R *params, const int32_t *cu, \
                            int32_t n, const R *target, const R *const *hidden_target, const ake_loss_weights *w, \
                            R *grads);

/* acts_create: buffers for batches of up to max_tokens tokens and max_batch sequences;
 * AKE_ENOMEM. forward: the batch through the student; a->out holds the embeddings.
 * loss: the loss above of the last forward. backward: after forward, ADDS the loss's
 * gradient with respect to the flat parameter array into grads [L->numel] (the frozen word
 * table gets none); it reads the softmax loss() kept, so loss() comes first. hidden_target may
 * be NULL when w->hidden is 0. */
AKE_TR_STUDENT(float, _f32)
AKE_TR_STUDENT(double, _f64)
#undef AKE_TR_STUDENT

#endif
