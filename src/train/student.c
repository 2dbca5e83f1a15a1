#include "train/student.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/half.h"
#include "model/folder.h"
#include "model/safetensors.h"

static void set_param(ake_student_param *p, int64_t *offset, const char *name, int64_t rows, int64_t cols,
                      bool decay) {
    snprintf(p->name, sizeof p->name, "%s", name);
    p->offset = *offset;
    p->rows = rows;
    p->cols = cols;
    p->decay = decay;
    *offset += rows * cols;
}

ake_status ake_student_layout_init(ake_student_layout *L, const ake_model_config *teacher_cfg, const int32_t *layers,
                                   int32_t n, char *err, size_t errlen) {
    memset(L, 0, sizeof *L);
    if (n < 1 || n > AKE_STUDENT_MAX_LAYERS || n > teacher_cfg->layers)
        return ake_errf(err, errlen, AKE_EINVAL, "a student keeps 1 to %d of the teacher's %d layers, not %d",
                        teacher_cfg->layers < AKE_STUDENT_MAX_LAYERS ? teacher_cfg->layers : AKE_STUDENT_MAX_LAYERS,
                        teacher_cfg->layers, n);
    for (int32_t j = 0; j < n; j++) {
        if (layers[j] < 0 || layers[j] >= teacher_cfg->layers)
            return ake_errf(err, errlen, AKE_EINVAL, "layer %d: the teacher has layers 0 to %d", layers[j],
                            teacher_cfg->layers - 1);
        if (j > 0 && layers[j] <= layers[j - 1])
            return ake_errf(err, errlen, AKE_EINVAL, "layers must be strictly increasing (%d after %d)", layers[j],
                            layers[j - 1]);
        L->teacher_layer[j] = layers[j];
    }
    if (teacher_cfg->pooling != AKE_POOL_MEAN && teacher_cfg->pooling != AKE_POOL_CLS)
        return ake_errf(err, errlen, AKE_EUNSUPPORTED, "the teacher pools by %s: students are trained for mean or cls",
                        ake_pooling_name(teacher_cfg->pooling));
    L->cfg = *teacher_cfg;
    L->cfg.layers = n;
    L->cfg.synthetic = false;
    const int64_t C = L->cfg.hidden, I = L->cfg.intermediate;
    int64_t off = 0;
    set_param(&L->param[AKE_SP_POS], &off, "embeddings.position_embeddings.weight", L->cfg.max_position, C, true);
    set_param(&L->param[AKE_SP_TYPE], &off, "embeddings.token_type_embeddings.weight", L->cfg.type_vocab_size, C,
              true);
    set_param(&L->param[AKE_SP_EMB_LN_G], &off, "embeddings.LayerNorm.weight", 1, C, false);
    set_param(&L->param[AKE_SP_EMB_LN_B], &off, "embeddings.LayerNorm.bias", 1, C, false);
    static const struct {
        const char *suffix;
        int rows, cols; /* 0: C, 1: 3C, 2: I, -1: a vector */
        bool decay;
    } per[AKE_SP_PER_LAYER] = {
        {"attention.self.qkv.weight", 1, 0, true},          {"attention.self.qkv.bias", -1, 1, false},
        {"attention.output.dense.weight", 0, 0, true},      {"attention.output.dense.bias", -1, 0, false},
        {"attention.output.LayerNorm.weight", -1, 0, false}, {"attention.output.LayerNorm.bias", -1, 0, false},
        {"intermediate.dense.weight", 2, 0, true},          {"intermediate.dense.bias", -1, 2, false},
        {"output.dense.weight", 0, 2, true},                {"output.dense.bias", -1, 0, false},
        {"output.LayerNorm.weight", -1, 0, false},          {"output.LayerNorm.bias", -1, 0, false},
    };
    const int64_t size[3] = {C, 3 * C, I};
    for (int32_t j = 0; j < n; j++)
        for (int k = 0; k < AKE_SP_PER_LAYER; k++) {
            char name[96];
            snprintf(name, sizeof name, "encoder.layer.%d.%s", j, per[k].suffix);
            set_param(&L->param[ake_student_pidx(j, k)], &off, name, per[k].rows < 0 ? 1 : size[per[k].rows],
                      size[per[k].cols], per[k].decay);
        }
    L->n_params = AKE_SP_EMBEDDINGS + AKE_SP_PER_LAYER * n;
    L->numel = off;
    return AKE_OK;
}

static bool is_float(const ake_tensor *t) {
    return t->dtype == AKE_DT_F32 || t->dtype == AKE_DT_F16 || t->dtype == AKE_DT_BF16;
}

ake_status ake_student_init_params(const ake_student_layout *L, const ake_model *teacher, float *params, float *word,
                                   char *err, size_t errlen) {
    if (teacher->qdtype != AKE_DT_F32 || !is_float(teacher->word_emb))
        return ake_errf(err, errlen, AKE_EUNSUPPORTED, "%s is a quantized folder: distill from its float original",
                        teacher->dir);
    const int64_t C = L->cfg.hidden;
    ake_tensor_f32(teacher->word_emb, word);
    ake_tensor_f32(teacher->pos_emb, params + L->param[AKE_SP_POS].offset);
    ake_tensor_f32(teacher->type_emb, params + L->param[AKE_SP_TYPE].offset);
    ake_tensor_f32(teacher->emb_ln_g, params + L->param[AKE_SP_EMB_LN_G].offset);
    ake_tensor_f32(teacher->emb_ln_b, params + L->param[AKE_SP_EMB_LN_B].offset);
    for (int32_t j = 0; j < L->cfg.layers; j++) {
        const ake_layer_weights *w = &teacher->layer[L->teacher_layer[j]];
        float *p = params;
#define AT(k) (p + L->param[ake_student_pidx(j, k)].offset)
        ake_tensor_f32(w->q.w, AT(AKE_SP_WQKV));
        ake_tensor_f32(w->k.w, AT(AKE_SP_WQKV) + C * C);
        ake_tensor_f32(w->v.w, AT(AKE_SP_WQKV) + 2 * C * C);
        ake_tensor_f32(w->q.b, AT(AKE_SP_BQKV));
        ake_tensor_f32(w->k.b, AT(AKE_SP_BQKV) + C);
        ake_tensor_f32(w->v.b, AT(AKE_SP_BQKV) + 2 * C);
        ake_tensor_f32(w->o.w, AT(AKE_SP_WO));
        ake_tensor_f32(w->o.b, AT(AKE_SP_BO));
        ake_tensor_f32(w->ln1_g, AT(AKE_SP_LN1_G));
        ake_tensor_f32(w->ln1_b, AT(AKE_SP_LN1_B));
        ake_tensor_f32(w->ff1.w, AT(AKE_SP_W1));
        ake_tensor_f32(w->ff1.b, AT(AKE_SP_B1));
        ake_tensor_f32(w->ff2.w, AT(AKE_SP_W2));
        ake_tensor_f32(w->ff2.b, AT(AKE_SP_B2));
        ake_tensor_f32(w->ln2_g, AT(AKE_SP_LN2_G));
        ake_tensor_f32(w->ln2_b, AT(AKE_SP_LN2_B));
#undef AT
    }
    return AKE_OK;
}

/* One tensor of the written file: a slice of the flat array (or of the word table). */
typedef struct {
    const float *src;
    int64_t numel;
} slice;

typedef struct {
    ake_tensor *t;
    slice *s;
    int n;
} write_list;

static ake_status fill_slice(void *ctx, int i, void *dst, size_t nbytes, char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    const write_list *w = ctx;
    const slice *s = &w->s[i];
    AKE_ASSERT(nbytes == (size_t)s->numel * ake_dtype_size(w->t[i].dtype));
    if (w->t[i].dtype == AKE_DT_F32)
        memcpy(dst, s->src, nbytes);
    else
        for (int64_t k = 0; k < s->numel; k++)
            ((uint16_t *)dst)[k] =
                w->t[i].dtype == AKE_DT_F16 ? ake_f32_to_f16(s->src[k]) : ake_f32_to_bf16(s->src[k]);
    return AKE_OK;
}

static void add(write_list *w, const char *name, ake_dtype dt, const float *src, int64_t rows, int64_t cols,
                char (*names)[96]) {
    ake_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    snprintf(names[w->n], 96, "%s", name);
    t->name = names[w->n];
    t->dtype = dt;
    t->ndim = rows == 1 ? 1 : 2;
    t->shape[0] = rows == 1 ? cols : rows;
    t->shape[1] = cols;
    t->nbytes = (size_t)(rows * cols) * ake_dtype_size(dt);
    w->s[w->n] = (slice){src, rows * cols};
    w->n++;
}

/* The flat array's tensors under HF names, QKV split into query, key, value. */
static void add_trained(write_list *w, const ake_student_layout *L, const float *params, ake_dtype dt,
                        char (*names)[96]) {
    const int64_t C = L->cfg.hidden;
    for (int k = 0; k < AKE_SP_EMBEDDINGS; k++)
        add(w, L->param[k].name, dt, params + L->param[k].offset, L->param[k].rows, L->param[k].cols, names);
    for (int32_t j = 0; j < L->cfg.layers; j++)
        for (int k = 0; k < AKE_SP_PER_LAYER; k++) {
            const ake_student_param *p = &L->param[ake_student_pidx(j, k)];
            const float *src = params + p->offset;
            if (k == AKE_SP_WQKV || k == AKE_SP_BQKV) {
                static const char *qkv[3] = {"query", "key", "value"};
                const bool wt = k == AKE_SP_WQKV;
                for (int s = 0; s < 3; s++) {
                    char name[96];
                    snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.%s", j, qkv[s],
                             wt ? "weight" : "bias");
                    add(w, name, dt, src + s * C * (wt ? C : 1), wt ? C : 1, C, names);
                }
            } else {
                add(w, p->name, dt, src, p->rows, p->cols, names);
            }
        }
}

static ake_status write_tensors(const ake_student_layout *L, const float *params, const float *word,
                                const char *path, ake_dtype dtype, char *err, size_t errlen) {
    if (dtype != AKE_DT_F32 && dtype != AKE_DT_F16 && dtype != AKE_DT_BF16)
        return ake_errf(err, errlen, AKE_EINVAL, "a student is written in f32, f16 or bf16, not %s",
                        ake_dtype_name(dtype));
    const int cap = AKE_SP_EMBEDDINGS + 1 + (AKE_SP_PER_LAYER + 4) * L->cfg.layers; /* Q, K, V split: 4 more */
    write_list w = {calloc((size_t)cap, sizeof *w.t), calloc((size_t)cap, sizeof *w.s), 0};
    char(*names)[96] = calloc((size_t)cap, 96);
    ake_status rc = AKE_ENOMEM;
    if (!w.t || !w.s || !names) {
        ake_errf(err, errlen, rc, "out of memory writing %s", path);
        goto done;
    }
    if (word)
        add(&w, "embeddings.word_embeddings.weight", dtype, word, L->cfg.vocab_size, L->cfg.hidden, names);
    add_trained(&w, L, params, dtype, names);
    AKE_ASSERT(w.n <= cap);
    rc = ake_safetensors_write_fill(path, w.t, w.n, fill_slice, &w, err, errlen);
done:
    free(w.t);
    free(w.s);
    free(names);
    return rc;
}

ake_status ake_student_write_folder(const ake_student_layout *L, const float *params, const float *word,
                                    const char *tokenizer_src, const char *out_dir, ake_dtype dtype, char *err,
                                    size_t errlen) {
    ake_status rc = ake_model_folder_write(out_dir, &L->cfg, "akidb-embed distill", tokenizer_src, err, errlen);
    if (rc != AKE_OK) return rc;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/model.safetensors", out_dir) >= (int)sizeof path)
        return ake_errf(err, errlen, AKE_ETOOLONG, "output path too long: %s", out_dir);
    return write_tensors(L, params, word, path, dtype, err, errlen);
}

ake_status ake_student_write_trained(const ake_student_layout *L, const float *params, const char *path,
                                     ake_dtype dtype, char *err, size_t errlen) {
    return write_tensors(L, params, NULL, path, dtype, err, errlen);
}

/* Copies the tensor `name` of st, of `numel` elements, into dst as F32. */
static ake_status read_tensor(const ake_safetensors *st, const char *path, const char *name, int64_t numel,
                              float *dst, char *err, size_t errlen) {
    const ake_tensor *t = ake_safetensors_find(st, name);
    if (!t) return ake_errf(err, errlen, AKE_ENOTFOUND, "%s has no tensor %s", path, name);
    if (!is_float(t) || t->numel != numel)
        return ake_errf(err, errlen, AKE_EFORMAT, "%s: %s is %s with %lld elements, not float with %lld", path, name,
                        ake_dtype_name(t->dtype), (long long)t->numel, (long long)numel);
    ake_tensor_f32(t, dst);
    return AKE_OK;
}

ake_status ake_student_assemble(const ake_model *teacher, const char *trained_path, const char *out_dir, char *err,
                                size_t errlen) {
    ake_safetensors *st = NULL;
    ake_status rc = ake_safetensors_open(trained_path, &st, err, errlen);
    if (rc != AKE_OK) return rc;
    int32_t J = 0; /* layers: the highest encoder.layer.N in the file, plus one */
    for (int i = 0; i < ake_safetensors_count(st); i++) {
        int n = -1;
        if (sscanf(ake_safetensors_at(st, i)->name, "encoder.layer.%d.", &n) == 1 && n >= J) J = n + 1;
    }
    int32_t layers[AKE_STUDENT_MAX_LAYERS];
    for (int32_t j = 0; j < J && j < AKE_STUDENT_MAX_LAYERS; j++) layers[j] = j; /* the origin no longer matters */
    ake_student_layout L;
    float *params = NULL, *word = NULL;
    if (J == 0) {
        rc = ake_errf(err, errlen, AKE_EFORMAT, "%s holds no encoder.layer.N tensors", trained_path);
        goto done;
    }
    if ((rc = ake_student_layout_init(&L, &teacher->cfg, layers, J, err, errlen)) != AKE_OK) goto done;
    params = malloc((size_t)L.numel * sizeof(float));
    word = malloc((size_t)L.cfg.vocab_size * L.cfg.hidden * sizeof(float));
    if (!params || !word) {
        rc = ake_errf(err, errlen, AKE_ENOMEM, "out of memory assembling %s", out_dir);
        goto done;
    }
    if (teacher->qdtype != AKE_DT_F32 || !is_float(teacher->word_emb)) {
        rc = ake_errf(err, errlen, AKE_EUNSUPPORTED, "%s is a quantized folder: assemble with its float original",
                      teacher->dir);
        goto done;
    }
    ake_tensor_f32(teacher->word_emb, word);
    const int64_t C = L.cfg.hidden;
    for (int32_t k = 0; k < L.n_params && rc == AKE_OK; k++) {
        const ake_student_param *p = &L.param[k];
        const int kind = k < AKE_SP_EMBEDDINGS ? -1 : (k - AKE_SP_EMBEDDINGS) % AKE_SP_PER_LAYER;
        if (kind == AKE_SP_WQKV || kind == AKE_SP_BQKV) {
            static const char *qkv[3] = {"query", "key", "value"};
            const int32_t j = (k - AKE_SP_EMBEDDINGS) / AKE_SP_PER_LAYER;
            const bool wt = kind == AKE_SP_WQKV;
            for (int s = 0; s < 3 && rc == AKE_OK; s++) {
                char name[96];
                snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.%s", j, qkv[s], wt ? "weight" : "bias");
                rc = read_tensor(st, trained_path, name, wt ? C * C : C, params + p->offset + s * C * (wt ? C : 1),
                                 err, errlen);
            }
        } else {
            rc = read_tensor(st, trained_path, p->name, p->rows * p->cols, params + p->offset, err, errlen);
        }
    }
    if (rc == AKE_OK) rc = ake_student_write_folder(&L, params, word, teacher->dir, out_dir, AKE_DT_F32, err, errlen);
done:
    free(params);
    free(word);
    ake_safetensors_close(st);
    return rc;
}
