#include "quant/quantize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/half.h"
#include "model/safetensors.h"

/* t (F32, F16 or BF16) as fp32 into dst [numel]. */
static void tensor_f32(const ake_tensor *t, float *dst) {
    if (t->dtype == AKE_DT_F32) {
        memcpy(dst, t->data, (size_t)t->numel * sizeof(float));
        return;
    }
    const uint16_t *h = t->data;
    for (int64_t i = 0; i < t->numel; i++) dst[i] = t->dtype == AKE_DT_F16 ? ake_f16_to_f32(h[i]) : ake_bf16_to_f32(h[i]);
}

/* The float weights of linear `which` of layer l: 3 parts for QKV, else 1. */
static int parts_of(const ake_model *m, int32_t l, ake_linear_kind which, const ake_linear_weights **out) {
    const ake_layer_weights *lw = &m->layer[l];
    switch (which) {
    case AKE_LINEAR_QKV: out[0] = &lw->q, out[1] = &lw->k, out[2] = &lw->v; return 3;
    case AKE_LINEAR_OUT: out[0] = &lw->o; return 1;
    case AKE_LINEAR_FFN1: out[0] = &lw->ff1; return 1;
    default: out[0] = &lw->ff2; return 1;
    }
}

void ake_quant_weight_colmax(const ake_model *m, int32_t layer, ake_linear_kind which, float *out) {
    const ake_linear_weights *parts[3];
    const int np = parts_of(m, layer, which, parts);
    const int64_t cols = parts[0]->w->shape[1];
    for (int64_t c = 0; c < cols; c++) out[c] = 0.0f;
    for (int p = 0; p < np; p++) {
        const ake_tensor *t = parts[p]->w;
        float *w = malloc((size_t)t->numel * sizeof *w);
        AKE_ASSERT(w && !parts[p]->scale); /* plans start from float models */
        tensor_f32(t, w);
        for (int64_t r = 0; r < t->shape[0]; r++)
            for (int64_t c = 0; c < cols; c++) out[c] = fmaxf(out[c], fabsf(w[r * cols + c]));
        free(w);
    }
}

double ake_quant_8bit_share(const ake_model *m, const ake_quant_plan *p) {
    const double d = m->cfg.hidden, i = m->cfg.intermediate;
    const double flops[AKE_LINEAR_KINDS] = {3 * d * d, d * d, d * i, d * i};
    double all = 0.0, q8 = 0.0;
    for (int32_t l = 0; l < m->cfg.layers; l++)
        for (int k = 0; k < AKE_LINEAR_KINDS; k++) {
            all += flops[k];
            if (p->linear[l * AKE_LINEAR_KINDS + k].q8) q8 += flops[k];
        }
    return all > 0 ? q8 / all : 0.0;
}

/* The tensors to write, with the buffers (data, names) they own. */
typedef struct {
    ake_tensor *t;
    int n, cap;
    void **owned;
    int nowned, owned_cap;
} tensor_list;

/* Takes p (may be NULL: then false) into the list's care. */
static bool own(tensor_list *l, void *p) {
    if (!p) return false;
    if (l->nowned == l->owned_cap) {
        l->owned_cap = l->owned_cap ? 2 * l->owned_cap : 256;
        void **o = realloc(l->owned, (size_t)l->owned_cap * sizeof *o);
        if (!o) {
            free(p);
            return false;
        }
        l->owned = o;
    }
    l->owned[l->nowned++] = p;
    return true;
}

static ake_tensor *add(tensor_list *l, const char *name, ake_dtype dt, int ndim, const int64_t *shape,
                       const void *data) {
    if (!name || !data) return NULL;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        ake_tensor *t = realloc(l->t, (size_t)l->cap * sizeof *t);
        if (!t) return NULL;
        l->t = t;
    }
    ake_tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    t->name = name;
    t->dtype = dt;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i], t->numel *= shape[i];
    t->data = data;
    t->nbytes = (size_t)t->numel * ake_dtype_size(dt);
    return t;
}

/* "<prefix>.weight" -> "<prefix>.<suffix>", owned by the list; NULL when out of memory. */
static const char *sibling(tensor_list *l, const char *weight_name, const char *suffix) {
    const size_t n = strlen(weight_name) - strlen(".weight");
    char *s = malloc(n + strlen(suffix) + 2);
    if (!own(l, s)) return NULL;
    memcpy(s, weight_name, n);
    sprintf(s + n, ".%s", suffix);
    return s;
}

/* Codes and per-row scales of weight t, its columns multiplied by smooth (may be NULL), then
 * its rows rotated by the block Hadamard matrix of `rot` (> 1). */
static bool add_q8(tensor_list *l, const ake_tensor *t, ake_dtype qdt, const float *smooth, int32_t rot) {
    const int64_t rows = t->shape[0], cols = t->ndim == 2 ? t->shape[1] : 1;
    void *codes = malloc((size_t)t->numel);
    float *scales = malloc((size_t)rows * sizeof *scales);
    float *w = malloc((size_t)t->numel * sizeof *w);
    if (!own(l, codes) || !own(l, scales) || !w) {
        free(w);
        return false;
    }
    tensor_f32(t, w);
    if (smooth)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) w[r * cols + c] *= smooth[c];
    if (rot > 1) ake_hadamard_rows(w, rows, cols, rot);
    ake_quantize_rows(w, rows, cols, qdt, qdt == AKE_DT_I8 ? AKE_I8_QMAX : AKE_E4M3_QMAX, codes, scales);
    free(w);
    return add(l, t->name, qdt, t->ndim, t->shape, codes) &&
           add(l, sibling(l, t->name, "weight_scale"), AKE_DT_F32, 1, &rows, scales);
}

ake_status ake_quant_write_weights(const ake_model *m, const ake_quant_plan *p, const char *path, char *err,
                                   size_t errlen) {
    AKE_ASSERT(p->qdtype == AKE_DT_I8 || p->qdtype == AKE_DT_F8_E4M3);
    tensor_list l = {0};
    bool ok = true;
    const int nt = ake_safetensors_count(m->st);
    for (int i = 0; i < nt && ok; i++) {
        const ake_tensor *t = ake_safetensors_at(m->st, i);
        const ake_quant_linear *q = NULL;
        int32_t in = 0;
        for (int32_t ly = 0; ly < m->cfg.layers && !q; ly++)
            for (int k = 0; k < AKE_LINEAR_KINDS && !q; k++) {
                const ake_linear_weights *parts[3];
                const int np = parts_of(m, ly, (ake_linear_kind)k, parts);
                for (int j = 0; j < np; j++)
                    if (parts[j]->w == t && p->linear[ly * AKE_LINEAR_KINDS + k].q8) {
                        q = &p->linear[ly * AKE_LINEAR_KINDS + k];
                        in = (int32_t)t->shape[1];
                    }
            }
        if (q) {
            ok = add_q8(&l, t, p->qdtype, q->smooth, q->rotation);
            const int64_t one = 1, cols = in;
            if (ok && q->in_scale > 0.0f) {
                float *s = malloc(sizeof *s);
                ok = own(&l, s) && add(&l, sibling(&l, t->name, "input_scale"), AKE_DT_F32, 1, &one, s);
                if (ok) *s = q->in_scale;
            }
            if (ok && q->rotation > 1) {
                int32_t *b = malloc(sizeof *b);
                ok = own(&l, b) && add(&l, sibling(&l, t->name, "input_rotation"), AKE_DT_I32, 1, &one, b);
                if (ok) *b = q->rotation;
            }
            if (ok && q->smooth) {
                float *s = malloc((size_t)in * sizeof *s);
                ok = own(&l, s) && add(&l, sibling(&l, t->name, "input_smooth"), AKE_DT_F32, 1, &cols, s);
                if (ok) memcpy(s, q->smooth, (size_t)in * sizeof *s);
            }
        } else if (t == m->word_emb && p->embeddings_8bit) {
            ok = add_q8(&l, t, p->qdtype, NULL, 1);
        } else {
            ok = add(&l, t->name, t->dtype, t->ndim, t->shape, t->data) != NULL;
        }
    }
    ake_status st = ok ? ake_safetensors_write(path, l.t, l.n, err, errlen)
                       : ake_errf(err, errlen, AKE_ENOMEM, "out of memory quantizing %s", m->dir);
    for (int i = 0; i < l.nowned; i++) free(l.owned[i]);
    free(l.owned);
    free(l.t);
    return st;
}
