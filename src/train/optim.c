#include "train/optim.h"

#include <math.h>
#include <string.h>

ake_optim_config ake_optim_defaults(double lr, int64_t total_steps) {
    return (ake_optim_config){.lr = lr,
                              .warmup_steps = total_steps / 10,
                              .total_steps = total_steps,
                              .schedule = AKE_LR_LINEAR,
                              .weight_decay = 0.01,
                              .beta1 = 0.9,
                              .beta2 = 0.999,
                              .eps = 1e-8,
                              .max_grad_norm = 1.0};
}

static const char *const schedule_names[] = {"linear", "cosine", "constant"};

const char *ake_lr_schedule_name(ake_lr_schedule s) {
    return s >= 0 && s <= AKE_LR_CONSTANT ? schedule_names[s] : "?";
}

int ake_lr_schedule_parse(const char *s, ake_lr_schedule *out) {
    for (int i = 0; i <= AKE_LR_CONSTANT; i++)
        if (strcmp(s, schedule_names[i]) == 0) {
            *out = (ake_lr_schedule)i;
            return 0;
        }
    return -1;
}

ake_status ake_optim_check(const ake_optim_config *o, char *err, size_t errlen) {
    if (!(o->lr > 0) || !isfinite(o->lr)) return ake_errf(err, errlen, AKE_EINVAL, "lr must be > 0, not %g", o->lr);
    if (o->total_steps < 1) return ake_errf(err, errlen, AKE_EINVAL, "steps must be >= 1");
    if (o->warmup_steps < 0 || o->warmup_steps >= o->total_steps)
        return ake_errf(err, errlen, AKE_EINVAL, "warm-up (%lld steps) must be shorter than the run (%lld)",
                        (long long)o->warmup_steps, (long long)o->total_steps);
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        return ake_errf(err, errlen, AKE_EINVAL, "betas must lie in [0, 1), not %g and %g", o->beta1, o->beta2);
    if (!(o->eps > 0)) return ake_errf(err, errlen, AKE_EINVAL, "eps must be > 0, not %g", o->eps);
    if (!(o->weight_decay >= 0) || !isfinite(o->weight_decay))
        return ake_errf(err, errlen, AKE_EINVAL, "weight decay must be >= 0, not %g", o->weight_decay);
    if (isnan(o->max_grad_norm)) return ake_errf(err, errlen, AKE_EINVAL, "max gradient norm is NaN");
    return AKE_OK;
}

double ake_lr_at(const ake_optim_config *o, int64_t s) {
    if (s < o->warmup_steps) return o->lr * (double)(s + 1) / (double)o->warmup_steps;
    if (o->schedule == AKE_LR_CONSTANT) return o->lr;
    double p = (double)(s - o->warmup_steps) / (double)(o->total_steps - o->warmup_steps);
    if (p > 1) p = 1;
    return o->schedule == AKE_LR_COSINE ? o->lr * 0.5 * (1 + cos(M_PI * p)) : o->lr * (1 - p);
}

double ake_l2_norm_f32(const float *g, int64_t n) {
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (int64_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return sqrt(s);
}

float ake_clip_factor(const ake_optim_config *o, double norm) {
    if (!(o->max_grad_norm > 0)) return 1.0f;
    const float f = (float)(o->max_grad_norm / (norm + 1e-6));
    return f < 1.0f ? f : 1.0f;
}

void ake_adamw_update_f32(float *p, const float *g, float *m, float *v, int64_t n, const ake_optim_config *o,
                          double lr, float grad_scale, int64_t t, bool decay) {
    const float keep = decay ? (float)(1 - lr * o->weight_decay) : 1.0f;
    const float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    const float step_size = (float)(lr / (1 - pow(o->beta1, (double)t)));
    const float bc2_sqrt = (float)sqrt(1 - pow(o->beta2, (double)t));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i] * grad_scale;
        p[i] *= keep;
        m[i] += (1 - b1) * (gi - m[i]);
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        p[i] -= step_size * (m[i] / (sqrtf(v[i]) / bc2_sqrt + eps));
    }
}
