/* Calibration: statistics of every linear layer's input over real text, and the choices
 * made from them (SmoothQuant factors, static activation scales).
 *
 * Pass 1 (ake_calib_observe_channels as the engine's observer) records the absmax of each
 * input channel of each linear layer. SmoothQuant (Xiao et al. 2023, "SmoothQuant: Accurate
 * and Efficient Post-Training Quantization for Large Language Models", eq. 4) then picks a
 * factor per input channel, s_c = max|X_c|^alpha / max|W_c|^(1-alpha), that moves the
 * activations' outliers into the weights: X W^T = (X / s)(W diag(s))^T.
 * Pass 2 (ake_calib_observe_hist, after ake_calib_set_smooth and _set_rotation) histograms
 * |(x / s) H| per layer input (H: the Hadamard rotation of base/dtype.h, when used), from which ake_calib_static_scale picks the per-tensor scale by the chosen method:
 *   absmax      the largest value seen
 *   percentile  the given percentile of |x / s| (clips the rarest outliers)
 *   mse         the clip that minimizes the expected squared quantization error over the
 *               histogram (rounding error inside the range, clipping error outside it). */
#ifndef AKE_QUANT_CALIBRATE_H
#define AKE_QUANT_CALIBRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/status.h"
#include "engine/engine.h"
#include "model/model.h"

typedef enum { AKE_CALIB_ABSMAX = 0, AKE_CALIB_PERCENTILE, AKE_CALIB_MSE } ake_calib_method;

#define AKE_CALIB_BINS 2048

typedef struct ake_calib ake_calib;

/* Sized for model's layers; free with ake_calib_free. NULL when out of memory. */
ake_calib *ake_calib_create(const ake_model *m);
void ake_calib_free(ake_calib *c);

/* Observers (ake_linear_observer) for passes 1 and 2; ctx is the ake_calib. */
void ake_calib_observe_channels(void *ctx, int32_t layer, ake_linear_kind which, const float *x, int32_t rows,
                                int32_t cols);
void ake_calib_observe_hist(void *ctx, int32_t layer, ake_linear_kind which, const float *x, int32_t rows,
                            int32_t cols);

/* Per-channel input absmax of one linear after pass 1: [cols], owned by c. */
const float *ake_calib_channel_absmax(const ake_calib *c, int32_t layer, ake_linear_kind which);
/* Tokens seen in pass 1. */
int64_t ake_calib_tokens(const ake_calib *c);

/* SmoothQuant factors of one linear: s [cols] from pass 1's channel absmax and the weight
 * columns' absmax w_colmax [cols] (over every output row of the layer; for QKV over the
 * stacked q, k, v). alpha in [0, 1]. A channel that never fired, or a zero weight column,
 * gets s = 1; w_colmax NULL sets every s to 1 (no smoothing; pass 2 still needs the call). Written into c for pass 2 and into s_out [cols] (may be NULL). */
void ake_calib_set_smooth(ake_calib *c, int32_t layer, ake_linear_kind which, const float *w_colmax, float alpha,
                          float *s_out);
/* The Hadamard block (> 1) the linear's smoothed input is rotated by before it is quantized,
 * so that pass 2 histograms what the codes will hold. Call after ake_calib_set_smooth. */
void ake_calib_set_rotation(ake_calib *c, int32_t layer, ake_linear_kind which, int32_t rot);

/* Static per-tensor scale of one linear's (smoothed) input after pass 2, for codes of qdt
 * (I8: 127 levels a side; F8_E4M3: up to 448). percentile: e.g. 99.99 (PERCENTILE only). */
float ake_calib_static_scale(const ake_calib *c, int32_t layer, ake_linear_kind which, ake_calib_method method,
                             double percentile, ake_dtype qdt);

/* "absmax" | "percentile" | "mse"; parse returns -1 on anything else. */
const char *ake_calib_method_name(ake_calib_method m);
int ake_calib_method_parse(const char *s, ake_calib_method *out);

#endif
