/* The optimizer of distillation: AdamW (Loshchilov & Hutter, "Decoupled Weight Decay
 * Regularization", 2019) with torch.optim.AdamW's arithmetic, a learning rate with linear
 * warm-up then linear or cosine decay, and clipping by the global gradient norm
 * (torch.nn.utils.clip_grad_norm_). tests/golden/distill/ holds PyTorch's run of the same. */
#ifndef AKE_TRAIN_OPTIM_H
#define AKE_TRAIN_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef enum { AKE_LR_LINEAR = 0, AKE_LR_COSINE, AKE_LR_CONSTANT } ake_lr_schedule;

typedef struct {
    double lr;               /* peak learning rate */
    int64_t warmup_steps;    /* lr rises linearly over the first warmup_steps updates */
    int64_t total_steps;     /* then decays to 0 at total_steps (linear, cosine) or stays (constant) */
    ake_lr_schedule schedule;
    double weight_decay;     /* decoupled; applied to the layout's decay tensors only */
    double beta1, beta2, eps;
    double max_grad_norm;    /* clip the global L2 norm to this; <= 0: no clipping */
} ake_optim_config;

/* AdamW's usual settings (torch's betas and eps, sentence-transformers' weight decay 0.01 and
 * clipping at 1.0), for lr and total steps; 10 % warm-up, linear decay. */
ake_optim_config ake_optim_defaults(double lr, int64_t total_steps);

/* "linear", "cosine", "constant"; parse returns -1 for anything else. */
const char *ake_lr_schedule_name(ake_lr_schedule s);
int ake_lr_schedule_parse(const char *s, ake_lr_schedule *out);

/* AKE_EINVAL naming the field when a setting is out of range (lr <= 0, betas outside [0, 1),
 * eps <= 0, warm-up longer than the run, ...). */
ake_status ake_optim_check(const ake_optim_config *o, char *err, size_t errlen);

/* The learning rate of update s (0-based): lr (s+1)/W while s < W; then with
 * p = (s - W)/(S - W): lr (1 - p) (linear), lr (1 + cos(pi p))/2 (cosine), lr (constant). */
double ake_lr_at(const ake_optim_config *o, int64_t s);

/* L2 norm of g [n], accumulated in double. */
double ake_l2_norm_f32(const float *g, int64_t n);

/* The factor clipping multiplies the gradients by: min(1, max_grad_norm / (norm + 1e-6)) (1 when
 * clipping is off), as clip_grad_norm_ computes it. */
float ake_clip_factor(const ake_optim_config *o, double norm);

/* One AdamW update of p [n] from g [n] (multiplied by grad_scale first: the clip factor),
 * moments m, v [n] (zero before the first update), t the 1-based update count, lr this
 * update's rate, decay whether weight decay applies to this range:
 *   p *= 1 - lr wd;  m += (1 - b1)(g - m);  v = b2 v + (1 - b2) g^2;
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). */
void ake_adamw_update_f32(float *p, const float *g, float *m, float *v, int64_t n, const ake_optim_config *o,
                          double lr, float grad_scale, int64_t t, bool decay);

#endif
