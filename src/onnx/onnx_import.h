/* ONNX importer: a BERT encoder exported to ONNX (torch.onnx, Hugging Face's or
 * sentence-transformers' exporters) in, an ordinary model folder (model.h) out.
 *
 * The file is a protobuf ModelProto (onnx/onnx_subset.proto declares the fields read).
 * How the weights are found:
 *   - Embedding tables, biases and LayerNorm parameters keep their Hugging Face names as
 *     initializers, under some prefix ("", "bert.", "model.0.auto_model.", ...): the prefix is
 *     what precedes "embeddings.word_embeddings.weight", the table the graph Gathers with its
 *     token-id input. LayerNorms may be LayerNormalization nodes (opset >= 17) or the
 *     decomposed ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add form of older opsets.
 *   - Linear weights have no names of their own (the exporter calls them onnx::MatMul_N and
 *     stores them transposed, [in, out]): each is found by following the Add that consumes
 *     "<prefix>encoder.layer.N.<linear>.bias" back to the MatMul feeding it. A MatMul weight
 *     that is a Transpose of an [out, in] initializer is taken as it is.
 *   - The graph is checked to be a post-LayerNorm BERT encoder: per layer, query, key and
 *     value read the previous LayerNorm's output, the attention output and the FFN output are
 *     added to their residuals before their LayerNorms, and the FFN's activation is the exact
 *     (Erf) GELU. Anything else is refused with a sentence naming what was not found.
 *   - The number of attention heads is read from the Reshape that splits the query into
 *     heads (its shape is a constant or a Concat of constants, [batch, seq, heads, head_dim]);
 *     opts->heads is used when the graph has none readable, and must agree when it has.
 *   - layer_norm_eps is the LayerNorms' epsilon (all must agree).
 * Weights stay in their dtype: F32 (raw_data or float_data), F16 or BF16 (raw_data).
 * Tensors stored as external data (a .onnx over 2 GB) are AKE_EUNSUPPORTED.
 * Pooling, normalization and max_seq_length are not read from the graph: the caller says. */
#ifndef AKE_ONNX_IMPORT_H
#define AKE_ONNX_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "model/model.h"
#include "model/safetensors.h"

/* Largest .onnx read: protobuf's own limit for one message. */
#define AKE_ONNX_MAX_FILE ((size_t)2 << 30)

/* A parsed BERT graph: its configuration and its weights under Hugging Face BertModel names,
 * in the loader's layout (Linear weights [out, in]). Opaque; free with ake_onnx_bert_free. */
typedef struct ake_onnx_bert ake_onnx_bert;

/* Parses an ONNX ModelProto of len bytes (buf is not kept) and maps it onto BERT tensors.
 * heads: the number of attention heads, or 0 to read it from the graph. label names the
 * input in errors. On success *out owns everything it points to; on failure *out is NULL and
 * err holds one sentence: AKE_EFORMAT (not a valid ONNX model, a tensor whose declared shape
 * does not match its data, not a BERT encoder: the sentence names the node, tensor or
 * initializer not found), AKE_EUNSUPPORTED (a valid graph we do not convert: external data,
 * a tanh GELU, a weight dtype other than F32/F16/BF16), AKE_EINVAL (heads disagrees with the
 * graph), AKE_ETOOLONG (len over AKE_ONNX_MAX_FILE), AKE_ENOMEM. */
ake_status ake_onnx_bert_parse(const void *buf, size_t len, const char *label, int32_t heads, ake_onnx_bert **out,
                               char *err, size_t errlen);

/* The configuration found: vocab_size, hidden, layers, heads, intermediate, max_position,
 * type_vocab_size and layer_norm_eps; pooling is mean, normalize false, max_seq_length 0.
 * Owned by b. */
const ake_model_config *ake_onnx_bert_config(const ake_onnx_bert *b);

/* The weights, in BertModel's state-dict order (embeddings, then each layer), each with its
 * Hugging Face name (no prefix), dtype, shape, data and nbytes; owned by b. */
int ake_onnx_bert_count(const ake_onnx_bert *b);
const ake_tensor *ake_onnx_bert_tensor(const ake_onnx_bert *b, int i);

/* NULL is fine. Every tensor and the config die with it. */
void ake_onnx_bert_free(ake_onnx_bert *b);

typedef struct {
    const char *tokenizer_from; /* folder whose tokenizer files are copied (required) */
    ake_pooling pooling;        /* mean (the zero value), cls or max */
    bool normalize;             /* L2-normalize: a Normalize module in modules.json */
    int32_t max_seq_length;     /* 0: the model's max_position; else 1..max_position */
    int32_t heads;              /* 0: from the graph */
} ake_onnx_import_opts;

/* Reads onnx_path (at most AKE_ONNX_MAX_FILE bytes), maps it (ake_onnx_bert_parse), checks
 * the tokenizer of opts->tokenizer_from (it loads, and its vocabulary fits the word table),
 * then writes out_dir (created with its parents; it must be new or empty: AKE_EINVAL otherwise) with
 * ake_model_folder_write and model.safetensors, and loads the result with ake_model_load to
 * check it. Nothing is written when the ONNX file, the options or the tokenizer are refused.
 * *cfg_out (may be NULL) receives the written configuration. Errors: those of
 * ake_onnx_bert_parse, AKE_ENOTFOUND / AKE_EIO for the files, AKE_EINVAL for bad options
 * (max_seq_length over max_position, no tokenizer folder), each with a sentence in err. */
ake_status ake_onnx_import(const char *onnx_path, const char *out_dir, const ake_onnx_import_opts *opts,
                           ake_model_config *cfg_out, char *err, size_t errlen);

#endif
