/* A distillation student: a BERT encoder whose layers start as a subset of a teacher's
 * (sentence-transformers' distillation recipe: keep some of the teacher's layers, train the
 * student's sentence embedding to match the teacher's), and the layout of its trainable
 * parameters in one flat array.
 *
 * The trainable tensors, in this order in the flat array (the order of the checkpoint and of
 * the optimizer's moments):
 *   position [max_position, C], token type [type_vocab, C], embedding LayerNorm g, b [C];
 *   then per student layer: Wqkv [3C, C] (the teacher's query, key and value weights stacked),
 *   bqkv [3C], Wo [C, C], bo [C], LN1 g, b [C], W1 [inter, C], b1 [inter], W2 [C, inter],
 *   b2 [C], LN2 g, b [C].
 * The word-embedding table [vocab, C] is frozen: it stays the teacher's (half of MiniLM's
 * parameters, and it ships with the teacher), so it lives apart from the flat array.
 * Weight decay applies to the matrices (W*, position and token type), not to biases and
 * LayerNorms (Hugging Face's and sentence-transformers' no_decay groups). */
#ifndef AKE_TRAIN_STUDENT_H
#define AKE_TRAIN_STUDENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "model/model.h"

#define AKE_STUDENT_MAX_LAYERS 64

/* The weights of the distillation loss's optional terms (student_cpu.h has the formula); the
 * zero value is sentence-transformers' plain MSE on the embedding. */
typedef struct {
    double hidden;      /* the matched layers' hidden-state MSE (--hidden-loss) */
    double contrastive; /* in-batch contrastive distillation, InfoNCE against the teacher (--contrastive) */
    double temperature; /* its softmax temperature (--temperature; > 0 when contrastive is) */
} ake_loss_weights;

/* The tensors of one student layer, in flat-array order. */
typedef enum {
    AKE_SP_WQKV = 0, AKE_SP_BQKV, AKE_SP_WO, AKE_SP_BO, AKE_SP_LN1_G, AKE_SP_LN1_B,
    AKE_SP_W1, AKE_SP_B1, AKE_SP_W2, AKE_SP_B2, AKE_SP_LN2_G, AKE_SP_LN2_B, AKE_SP_PER_LAYER
} ake_student_layer_param;

/* The tensors before the layers. */
typedef enum { AKE_SP_POS = 0, AKE_SP_TYPE, AKE_SP_EMB_LN_G, AKE_SP_EMB_LN_B, AKE_SP_EMBEDDINGS } ake_student_emb_param;

typedef struct {
    char name[96];   /* for messages and checkpoints: the HF name ("encoder.layer.1.output.dense.weight"),
                        "encoder.layer.N.attention.self.qkv.weight|bias" for the fused QKV */
    int64_t offset;  /* into the flat array, in elements */
    int64_t rows, cols; /* shape [rows, cols]; a vector is [1, cols] */
    bool decay;      /* weight decay applies */
} ake_student_param;

typedef struct {
    ake_model_config cfg;     /* the student's: the teacher's with layers = number of kept layers */
    int32_t teacher_layer[AKE_STUDENT_MAX_LAYERS]; /* student layer j starts as teacher layer teacher_layer[j] */
    int32_t n_params;         /* AKE_SP_EMBEDDINGS + AKE_SP_PER_LAYER * cfg.layers */
    ake_student_param param[AKE_SP_EMBEDDINGS + AKE_SP_PER_LAYER * AKE_STUDENT_MAX_LAYERS];
    int64_t numel;            /* length of the flat array */
} ake_student_layout;

/* The layout of a student of `teacher_cfg` keeping teacher layers layers[0..n) (strictly
 * increasing, each < teacher_cfg->layers, 1 <= n <= AKE_STUDENT_MAX_LAYERS). AKE_EINVAL naming
 * the bad index; AKE_EUNSUPPORTED for max pooling (mean and [CLS] are trained). */
ake_status ake_student_layout_init(ake_student_layout *L, const ake_model_config *teacher_cfg, const int32_t *layers,
                                   int32_t n, char *err, size_t errlen);

/* Index of a layer tensor in L->param. */
static inline int32_t ake_student_pidx(int32_t layer, ake_student_layer_param k) {
    return AKE_SP_EMBEDDINGS + layer * AKE_SP_PER_LAYER + (int32_t)k;
}

/* The teacher's weights for the student, as F32: params [L->numel] (the flat array) and
 * word [vocab, C] (the frozen table). Float teachers only (an 8-bit folder: AKE_EUNSUPPORTED). */
ake_status ake_student_init_params(const ake_student_layout *L, const ake_model *teacher, float *params, float *word,
                                   char *err, size_t errlen);

/* Writes the student as an ordinary model folder into out_dir (config.json, modules.json,
 * pooling, sentence_bert_config.json and the tokenizer copied from tokenizer_src, and
 * model.safetensors with HF names, Q, K and V split again), weights in dtype (F32, F16 or
 * BF16; the word table too). The folder loads with ake_model_load. */
ake_status ake_student_write_folder(const ake_student_layout *L, const float *params, const float *word,
                                    const char *tokenizer_src, const char *out_dir, ake_dtype dtype, char *err,
                                    size_t errlen);

/* Writes only what training changed, the flat array's tensors (no word table), with HF names,
 * in dtype: the file that travels (scripts/models puts it back beside a teacher's word table
 * with ake_student_assemble). */
ake_status ake_student_write_trained(const ake_student_layout *L, const float *params, const char *path,
                                     ake_dtype dtype, char *err, size_t errlen);

/* The inverse of ake_student_write_trained: reads the trained tensors at trained_path (F32, F16
 * or BF16, HF names), takes the word-embedding table and the configuration from `teacher`
 * (the student's layer count from the file), and writes the model folder into out_dir as
 * ake_student_write_folder does, in F32. This is how a fresh machine gets the distilled student
 * without training it: the teacher comes from its PyPI package, the trained tensors from the
 * repository. AKE_ENOTFOUND / AKE_EFORMAT naming the tensor that is missing or of the wrong
 * shape. */
ake_status ake_student_assemble(const ake_model *teacher, const char *trained_path, const char *out_dir, char *err,
                                size_t errlen);

#endif
