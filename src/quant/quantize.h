/* Writing a quantized model folder's weights (the format is src/model/model.h's): which
 * linear layers go to 8 bits, with which activation scale and SmoothQuant factors, is the
 * plan; the codes and per-channel / per-row scales are computed here. */
#ifndef AKE_QUANT_QUANTIZE_H
#define AKE_QUANT_QUANTIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/status.h"
#include "engine/engine.h"
#include "model/model.h"

/* One linear layer of the plan (QKV counts as one: q, k and v share their input). */
typedef struct {
    bool q8;              /* stored as 8-bit codes; else as the source's float tensors */
    float in_scale;       /* static per-tensor activation scale (> 0), or 0 for dynamic per-token */
    const float *smooth;  /* borrowed [cols]: SmoothQuant factors, or NULL */
    int32_t rotation;     /* Hadamard block of the input rotation (base/dtype.h), or <= 1 for none */
} ake_quant_linear;

typedef struct {
    ake_dtype qdtype;          /* AKE_DT_I8 or AKE_DT_F8_E4M3 */
    bool embeddings_8bit;      /* the word-embedding table in qdtype, one scale per row */
    ake_quant_linear *linear;  /* borrowed [layers * AKE_LINEAR_KINDS], index layer * KINDS + kind */
} ake_quant_plan;

/* Absmax of each input column of a linear's weight, over all its output rows (QKV: q, k and
 * v stacked) — SmoothQuant's max|W_c|. out: [cols]. */
void ake_quant_weight_colmax(const ake_model *m, int32_t layer, ake_linear_kind which, float *out);

/* Share of the encoder's linear-layer FLOPs (2 * in * out per token for each linear) that
 * the plan runs in 8 bits. Attention's own products (QK^T, PV) stay 16-bit and are not
 * counted: they grow with the sequence length, the linears do not. */
double ake_quant_8bit_share(const ake_model *m, const ake_quant_plan *p);

/* Writes `path` (a model.safetensors): every tensor of m in its order, the planned linears
 * as codes (weight: of W diag(smooth) H), weight_scale, and input_scale / input_smooth /
 * input_rotation where set; the word table
 * as codes + weight_scale when embeddings_8bit. Float tensors are written as they are. */
ake_status ake_quant_write_weights(const ake_model *m, const ake_quant_plan *p, const char *path, char *err,
                                   size_t errlen);

#endif
