/* A BERT-family model folder as Hugging Face and sentence-transformers lay it out:
 *   config.json                 BertModel hyper-parameters
 *   model.safetensors           weights (names with or without a "bert." prefix,
 *                               LayerNorm.weight/bias or LayerNorm.gamma/beta)
 *   modules.json                optional: which sentence-transformers modules apply
 *                               (Transformer, Pooling, Normalize; any other module is
 *                               AKE_EUNSUPPORTED). A listed Normalize module means
 *                               L2-normalize; its 2_Normalize folder need not exist.
 *   1_Pooling/config.json       mean / cls / max pooling: the Pooling module's folder
 *                               when modules.json exists (then required), else read
 *                               from 1_Pooling/ if present; default mean
 *   sentence_bert_config.json   optional: max_seq_length (wins over the tokenizer's truncation)
 * Without modules.json: mean pooling (unless 1_Pooling/config.json says otherwise) and
 * no normalization. The tokenizer files are read by src/text/. src/model/model.c says
 * what else is checked. */
#ifndef AKE_MODEL_MODEL_H
#define AKE_MODEL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "model/safetensors.h"

typedef enum { AKE_POOL_MEAN = 0, AKE_POOL_CLS, AKE_POOL_MAX } ake_pooling;

const char *ake_pooling_name(ake_pooling p);

typedef struct {
    int32_t vocab_size;
    int32_t hidden;        /* d */
    int32_t layers;
    int32_t heads;         /* d % heads == 0 */
    int32_t intermediate;  /* FFN width */
    int32_t max_position;  /* max_position_embeddings */
    int32_t type_vocab_size;
    float layer_norm_eps;
    ake_pooling pooling;
    bool normalize;        /* modules.json lists a Normalize module */
    int32_t max_seq_length; /* from sentence_bert_config.json, clamped to max_position; 0 when absent */
} ake_model_config;

/* Views of the weights of one encoder layer, in HF Linear layout: W is [out, in]. */
typedef struct {
    const ake_tensor *q_w, *q_b, *k_w, *k_b, *v_w, *v_b; /* [d, d], [d] */
    const ake_tensor *o_w, *o_b;                         /* [d, d], [d] */
    const ake_tensor *ln1_g, *ln1_b;                     /* [d] attention output LayerNorm */
    const ake_tensor *ff1_w, *ff1_b;                     /* [inter, d], [inter] */
    const ake_tensor *ff2_w, *ff2_b;                     /* [d, inter], [d] */
    const ake_tensor *ln2_g, *ln2_b;                     /* [d] output LayerNorm */
} ake_layer_weights;

typedef struct {
    char *dir;                 /* owned copy of the folder path */
    char *name;                /* owned: last path component, e.g. "all-MiniLM-L6-v2" */
    ake_model_config cfg;
    ake_safetensors *st;       /* owned; every ake_tensor below points into it */
    const ake_tensor *word_emb; /* [vocab, d] */
    const ake_tensor *pos_emb;  /* [max_position, d] */
    const ake_tensor *type_emb; /* [type_vocab, d] */
    const ake_tensor *emb_ln_g, *emb_ln_b; /* [d] */
    ake_layer_weights *layer;  /* owned array [cfg.layers] */
} ake_model;

/* Loads and validates a model folder: every tensor present with the shape the
 * config implies and a float dtype (F32, F16 or BF16; dtypes may differ between
 * tensors), its data aligned to its element size. Tensors not needed (position_ids,
 * pooler.*, MLM heads) are ignored. On failure *out is NULL and err names the file
 * and field or tensor: AKE_ENOTFOUND (folder, config.json, model.safetensors or a
 * tensor missing), AKE_EFORMAT (malformed or inconsistent), AKE_EUNSUPPORTED (valid
 * but not implemented: hidden_act other than gelu, other pooling modes, Dense
 * modules, I8 weights...), AKE_EIO, AKE_ETOOLONG, AKE_ENOMEM.
 * Free with ake_model_free (NULL is fine); every ake_tensor dies with the model. */
ake_status ake_model_load(const char *dir, ake_model **out, char *err, size_t errlen);
void ake_model_free(ake_model *m);

#endif
