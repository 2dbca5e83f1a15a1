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
    bool synthetic;        /* random weights written by `akidb-embed synth` (config.json's
                              "_name_or_path" is "akidb-embed synth"): reports say so */
} ake_model_config;

/* One linear layer y = x W^T + b as the folder stores it, W in HF Linear layout [out, in].
 * A float folder has W of F32, F16 or BF16 and no scales. A quantized folder (below) may
 * hold W as 8-bit codes: W_real[o, i] = W[o, i] * scale[o]. */
typedef struct {
    const ake_tensor *w;        /* [out, in] F32 / F16 / BF16, or I8 / F8_E4M3 with scale */
    const ake_tensor *scale;    /* [out] F32, > 0: "<name>.weight_scale", only beside 8-bit w */
    const ake_tensor *in_scale; /* [1] F32, > 0: "<name>.input_scale", the calibrated per-tensor
                                   scale of the input activations (static W8A8); NULL: dynamic */
    const ake_tensor *in_smooth; /* [in] F32, > 0: "<name>.input_smooth", SmoothQuant's factors s:
                                   w holds W_real diag(s) and the input is divided by s before it
                                   is quantized (x W^T = (x / s)(W diag(s))^T); NULL: none */
    const ake_tensor *in_rotation; /* [1] I32: "<name>.input_rotation", the block b of a Hadamard
                                   rotation (base/dtype.h): w holds W_real diag(s) H and the input
                                   is (x / s) H before it is quantized; NULL: none */
    const ake_tensor *b;        /* [out] */
} ake_linear_weights;

/* The weights of one encoder layer. q, k and v read the same input and are fused into one
 * GEMM by the engines, so a folder stores them in one dtype with one input_scale. */
typedef struct {
    ake_linear_weights q, k, v;                          /* [d, d], [d] */
    ake_linear_weights o;                                /* [d, d], [d] */
    const ake_tensor *ln1_g, *ln1_b;                     /* [d] attention output LayerNorm */
    ake_linear_weights ff1;                              /* [inter, d], [inter] */
    ake_linear_weights ff2;                              /* [d, inter], [d] */
    const ake_tensor *ln2_g, *ln2_b;                     /* [d] output LayerNorm */
} ake_layer_weights;

/* A quantized folder (written by `akidb-embed quantize`, src/quant/) is an ordinary model
 * folder whose model.safetensors holds, besides float tensors:
 *   <linear>.weight            I8 or F8_E4M3 [out, in]: the codes, symmetric (no zero point)
 *   <linear>.weight_scale      F32 [out]: one scale per output channel, finite and > 0
 *   <linear>.input_scale       F32 [1], optional: static per-tensor activation scale (codes =
 *                              round(x / input_smooth / input_scale), saturated); absent =
 *                              dynamic per-token
 *   <linear>.input_smooth      F32 [in], optional: SmoothQuant's per-input-channel factors s,
 *                              already multiplied into the weight's columns
 *   <linear>.input_rotation    I32 [1], optional: b, a power of two dividing in: the weight's
 *                              rows are stored rotated by the block Walsh-Hadamard matrix H
 *                              (after smoothing), and inputs are rotated alike: x -> (x / s) H
 *   embeddings.word_embeddings.weight        I8 or F8_E4M3 [vocab, d]
 *   embeddings.word_embeddings.weight_scale  F32 [vocab]: one scale per row, dequantized on lookup
 * <linear> is each of encoder.layer.N.{attention.self.query, attention.self.key,
 * attention.self.value, attention.output.dense, intermediate.dense, output.dense}. A linear
 * may stay float (the layers the calibration kept in 16-bit); q, k and v must agree (they
 * share one input: same dtype, input_scale, input_smooth and input_rotation). Biases, LayerNorms, position
 * and token-type embeddings stay float. (SmoothQuant is not folded into the LayerNorms: in
 * a post-LN BERT the LayerNorm's output is also the residual stream.)
 * quantization_config.json records how the folder was made (read for reports only). */

typedef struct {
    char *dir;                 /* owned copy of the folder path */
    char *name;                /* owned: last path component, e.g. "all-MiniLM-L6-v2" */
    ake_model_config cfg;
    ake_safetensors *st;       /* owned; every ake_tensor below points into it */
    const ake_tensor *word_emb; /* [vocab, d], float or 8-bit */
    const ake_tensor *word_emb_scale; /* [vocab] F32 per-row scale of an 8-bit word_emb, else NULL */
    const ake_tensor *pos_emb;  /* [max_position, d] */
    const ake_tensor *type_emb; /* [type_vocab, d] */
    const ake_tensor *emb_ln_g, *emb_ln_b; /* [d] */
    ake_layer_weights *layer;  /* owned array [cfg.layers] */
    ake_dtype qdtype;          /* I8 or F8_E4M3 when some weight is 8-bit, else AKE_DT_F32 */
    bool static_act;           /* the 8-bit linears carry input_scale (static activation scales) */
    char *quant_config;        /* owned: quantization_config.json's text, or NULL */
    /* sentence-transformers prompts (config_sentence_transformers.json "prompts": name → text put
     * before the input, e.g. "query" → "query: "), in file order; default_prompt indexes the
     * one "default_prompt_name" names, applied when a request names none (as
     * SentenceTransformer.encode does), or is -1 */
    int32_t n_prompts;
    char **prompt_name;        /* owned [n_prompts] */
    char **prompt_text;        /* owned [n_prompts] */
    int32_t default_prompt;
} ake_model;


/* Loads and validates a model folder: every tensor present with the shape the
 * config implies and a float dtype (F32, F16 or BF16; dtypes may differ between
 * tensors) or, in a quantized folder, the 8-bit codes and scales described above
 * (scales finite and > 0, one 8-bit dtype per folder), its data aligned to its element
 * size. Tensors not needed (position_ids, pooler.*, MLM heads) are ignored. On failure
 * *out is NULL and err names the file and field or tensor: AKE_ENOTFOUND (folder,
 * config.json, model.safetensors or a tensor missing), AKE_EFORMAT (malformed or
 * inconsistent, a bad scale), AKE_EUNSUPPORTED (valid but not implemented: hidden_act
 * other than gelu, other pooling modes, a Pooling module with include_prompt false, Dense
 * modules, 8-bit biases...), AKE_EIO,
 * AKE_ETOOLONG, AKE_ENOMEM.
 * Free with ake_model_free (NULL is fine); every ake_tensor dies with the model. */
ake_status ake_model_load(const char *dir, ake_model **out, char *err, size_t errlen);
void ake_model_free(ake_model *m);

/* A float tensor of the model (F32, F16 or BF16) as F32 in dst [numel]; an 8-bit tensor with
 * a per-row scale (word_emb beside word_emb_scale, a linear's weight beside weight_scale)
 * through ake_tensor_f32_rows instead. */
void ake_tensor_f32(const ake_tensor *t, float *dst);

/* A linear's weight [out, in] as F32 in dst, for engines that compute in float (and for
 * requantizing): dequantized from 8-bit codes with weight_scale, or converted. stored: keep a
 * quantized folder's transforms of the columns (W' = W diag(s) H as the file holds it, for a
 * consumer that transforms its inputs alike); else undo them (the real W: H H = I). */
void ake_linear_weight_f32(const ake_linear_weights *lw, float *dst, bool stored);

/* The word-embedding table [vocab, hidden] as F32 in dst: dequantized by row when 8-bit. */
void ake_word_emb_f32(const ake_model *m, float *dst);

#endif
