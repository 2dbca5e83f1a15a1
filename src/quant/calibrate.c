#include "quant/calibrate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One linear layer's input statistics. */
typedef struct {
    int32_t cols;
    float *ch_absmax;  /* [cols] pass 1 */
    float *inv_s;      /* [cols] 1 / SmoothQuant factor (1 until set) */
    float range;       /* histogram covers |x / s| in [0, range] (set with the factors) */
    float absmax;      /* largest |x / s| seen in pass 2 */
    uint64_t *hist;    /* [AKE_CALIB_BINS] pass 2 */
    int32_t rot;       /* Hadamard block of the input rotation, 1 for none */
    float *row;        /* [cols] scratch: one transformed row */
} lin_stat;

struct ake_calib {
    int32_t layers;
    lin_stat *s;       /* [layers * AKE_LINEAR_KINDS] */
    int64_t tokens;
};

static lin_stat *stat_of(const ake_calib *c, int32_t layer, ake_linear_kind which) {
    AKE_ASSERT(layer >= 0 && layer < c->layers && which < AKE_LINEAR_KINDS);
    return &c->s[layer * AKE_LINEAR_KINDS + which];
}

ake_calib *ake_calib_create(const ake_model *m) {
    ake_calib *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->layers = m->cfg.layers;
    c->s = calloc((size_t)c->layers * AKE_LINEAR_KINDS, sizeof *c->s);
    if (!c->s) {
        free(c);
        return NULL;
    }
    for (int32_t i = 0; i < c->layers * AKE_LINEAR_KINDS; i++) {
        lin_stat *s = &c->s[i];
        s->cols = i % AKE_LINEAR_KINDS == AKE_LINEAR_FFN2 ? m->cfg.intermediate : m->cfg.hidden;
        s->ch_absmax = calloc((size_t)s->cols, sizeof(float));
        s->inv_s = malloc((size_t)s->cols * sizeof(float));
        s->hist = calloc(AKE_CALIB_BINS, sizeof(uint64_t));
        s->row = malloc((size_t)s->cols * sizeof(float));
        s->rot = 1;
        if (!s->ch_absmax || !s->inv_s || !s->hist || !s->row) {
            ake_calib_free(c);
            return NULL;
        }
        for (int32_t k = 0; k < s->cols; k++) s->inv_s[k] = 1.0f;
    }
    return c;
}

void ake_calib_free(ake_calib *c) {
    if (!c) return;
    for (int32_t i = 0; c->s && i < c->layers * AKE_LINEAR_KINDS; i++) {
        free(c->s[i].ch_absmax);
        free(c->s[i].inv_s);
        free(c->s[i].hist);
        free(c->s[i].row);
    }
    free(c->s);
    free(c);
}

void ake_calib_observe_channels(void *ctx, int32_t layer, ake_linear_kind which, const float *x, int32_t rows,
                                int32_t cols) {
    ake_calib *c = ctx;
    lin_stat *s = stat_of(c, layer, which);
    AKE_ASSERT(cols == s->cols);
    for (int32_t r = 0; r < rows; r++)
        for (int32_t k = 0; k < cols; k++) {
            const float a = fabsf(x[(size_t)r * cols + k]);
            if (a > s->ch_absmax[k]) s->ch_absmax[k] = a;
        }
    if (layer == 0 && which == AKE_LINEAR_QKV) c->tokens += rows;
}

void ake_calib_observe_hist(void *ctx, int32_t layer, ake_linear_kind which, const float *x, int32_t rows,
                            int32_t cols) {
    lin_stat *s = stat_of(ctx, layer, which);
    AKE_ASSERT(cols == s->cols && s->range > 0.0f);
    const float per_bin = AKE_CALIB_BINS / s->range;
    for (int32_t r = 0; r < rows; r++) {
        for (int32_t k = 0; k < cols; k++) s->row[k] = x[(size_t)r * cols + k] * s->inv_s[k];
        if (s->rot > 1) ake_hadamard_rows(s->row, 1, cols, s->rot);
        for (int32_t k = 0; k < cols; k++) {
            const float a = fabsf(s->row[k]);
            if (a > s->absmax) s->absmax = a;
            int64_t b = (int64_t)(a * per_bin);
            s->hist[b < AKE_CALIB_BINS ? b : AKE_CALIB_BINS - 1]++;
        }
    }
}

void ake_calib_set_rotation(ake_calib *c, int32_t layer, ake_linear_kind which, int32_t rot) {
    lin_stat *s = stat_of(c, layer, which);
    s->rot = rot;
    /* |(x / s) H| <= sqrt(b) max |x / s| within a block: the histogram's range must cover it */
    if (rot > 1) s->range *= sqrtf((float)rot);
}

const float *ake_calib_channel_absmax(const ake_calib *c, int32_t layer, ake_linear_kind which) {
    return stat_of(c, layer, which)->ch_absmax;
}

int64_t ake_calib_tokens(const ake_calib *c) { return c->tokens; }

void ake_calib_set_smooth(ake_calib *c, int32_t layer, ake_linear_kind which, const float *w_colmax, float alpha,
                          float *s_out) {
    lin_stat *s = stat_of(c, layer, which);
    s->range = 0.0f;
    for (int32_t k = 0; k < s->cols; k++) {
        const float xa = s->ch_absmax[k], wa = w_colmax ? w_colmax[k] : 0.0f;
        float f = xa > 0.0f && wa > 0.0f ? powf(xa, alpha) / powf(wa, 1.0f - alpha) : 1.0f;
        f = fminf(fmaxf(f, 1e-4f), 1e4f);
        s->inv_s[k] = 1.0f / f;
        if (s_out) s_out[k] = f;
        s->range = fmaxf(s->range, xa * s->inv_s[k]);
    }
    if (!(s->range > 0.0f)) s->range = 1.0f;
}

/* Expected squared rounding error of codes of qdt at scale `step` (I8: the code step; FP8:
 * the scale, each value's step depending on its exponent) for a value v inside the range. */
static double round_err(double v, double scale, ake_dtype qdt) {
    if (qdt == AKE_DT_I8) return scale * scale / 12.0;
    const double u = v / scale; /* in code units */
    const double step = u < 0.015625 ? 1.0 / 512.0 : ldexp(1.0, (int)floor(log2(u)) - 3);
    return (step * scale) * (step * scale) / 12.0;
}

float ake_calib_static_scale(const ake_calib *c, int32_t layer, ake_linear_kind which, ake_calib_method method,
                             double percentile, ake_dtype qdt) {
    const lin_stat *s = stat_of(c, layer, which);
    const double qmax = qdt == AKE_DT_I8 ? AKE_I8_QMAX : AKE_E4M3_QMAX;
    const double width = s->range / AKE_CALIB_BINS;
    uint64_t total = 0;
    for (int b = 0; b < AKE_CALIB_BINS; b++) total += s->hist[b];
    double clip = s->absmax;
    if (method == AKE_CALIB_PERCENTILE && total) {
        const double want = total * (percentile / 100.0);
        uint64_t seen = 0;
        for (int b = 0; b < AKE_CALIB_BINS; b++) {
            seen += s->hist[b];
            if (seen >= want) {
                clip = fmin((b + 1) * width, s->absmax);
                break;
            }
        }
    } else if (method == AKE_CALIB_MSE && total) {
        double best = INFINITY;
        for (int cb = AKE_CALIB_BINS / 16; cb <= AKE_CALIB_BINS; cb++) {
            const double cl = fmin(cb * width, s->absmax), scale = cl / qmax;
            double err = 0.0;
            for (int b = 0; b < AKE_CALIB_BINS; b++) {
                if (!s->hist[b]) continue;
                const double v = (b + 0.5) * width;
                err += s->hist[b] * (v > cl ? (v - cl) * (v - cl) : round_err(v, scale, qdt));
            }
            if (err < best) best = err, clip = cl;
            if (cb * width >= s->absmax) break;
        }
    }
    return clip > 0.0 ? (float)(clip / qmax) : 1.0f;
}

const char *ake_calib_method_name(ake_calib_method m) {
    return m == AKE_CALIB_PERCENTILE ? "percentile" : m == AKE_CALIB_MSE ? "mse" : "absmax";
}

int ake_calib_method_parse(const char *s, ake_calib_method *out) {
    for (int m = AKE_CALIB_ABSMAX; m <= AKE_CALIB_MSE; m++)
        if (s && !strcmp(s, ake_calib_method_name((ake_calib_method)m))) {
            *out = (ake_calib_method)m;
            return 0;
        }
    return -1;
}
