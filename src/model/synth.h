/* Synthetic BERT-family model folders: the real configurations with seeded random
 * weights, for tests and for GPU machines that receive only a small copy of the tree.
 *
 * The folder written loads with ake_model_load and has the layout of a
 * sentence-transformers package:
 *   config.json, model.safetensors, modules.json, 1_Pooling/config.json,
 *   2_Normalize/ (empty, when the arch normalizes), sentence_bert_config.json
 *   (max_seq_length 512), and tokenizer.json, vocab.txt, tokenizer_config.json,
 *   special_tokens_map.json copied from a source folder (those that exist there;
 *   at least one of tokenizer.json and vocab.txt must).
 *
 * Architectures (vocab 30522, max_position 512, type_vocab 2, layer_norm_eps 1e-12):
 *   arch        layers hidden heads inter  pooling normalize  shapes of
 *   bert-base     12    768    12   3072   mean    no         bert-base-uncased + mean pooling
 *   bert-large    24   1024    16   4096   cls     yes        UAE-Large-V1
 *   bge-small     12    384    12   1536   cls     yes        BAAI/bge-small-en-v1.5
 *   minilm-l6      6    384    12   1536   mean    yes        all-MiniLM-L6-v2
 *   minilm-l3      3    384    12   1536   mean    yes        a distilled 3-layer MiniLM
 *
 * Weights: Linear weights and embeddings ~ N(0, 0.02), biases ~ N(0, 0.01), LayerNorm
 * gamma ~ 1 + N(0, 0.02), beta ~ N(0, 0.01); embeddings.position_ids (I64, [1, 512]) is
 * included as Hugging Face saves it. Each tensor draws from its own splitmix64 stream
 * keyed by (seed, tensor index), so the output is a pure function of (arch, seed,
 * dtype), and an F16/BF16 file holds exactly the F32 file's values rounded to nearest
 * even. Sizes in F32: minilm-l3 ~69 MB, minilm-l6 ~91 MB, bge-small ~134 MB,
 * bert-base ~438 MB, bert-large ~1.34 GB; F16 halves them. */
#ifndef AKE_MODEL_SYNTH_H
#define AKE_MODEL_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "model/model.h"
#include "model/safetensors.h"

typedef struct {
    ake_dtype dtype; /* weight dtype: AKE_DT_F32 (the zero value), AKE_DT_F16 or AKE_DT_BF16 */
} ake_model_synth_opts;

/* Writes a synthetic model folder for `arch` into out_dir (created with its parents
 * if missing; files already there are overwritten), copying the tokenizer files from
 * src_tokenizer_dir. F32 weights. Unknown arch: AKE_EINVAL naming the valid ones. */
ake_status ake_model_synth(const char *arch, uint64_t seed, const char *src_tokenizer_dir, const char *out_dir,
                           char *err, size_t errlen);

/* As ake_model_synth with options; opts may be NULL (F32). Another dtype: AKE_EINVAL. */
ake_status ake_model_synth_ex(const char *arch, uint64_t seed, const char *src_tokenizer_dir, const char *out_dir,
                              const ake_model_synth_opts *opts, char *err, size_t errlen);

/* The configuration ake_model_load reports for a synthesized `arch` (max_seq_length 512).
 * Unknown arch: AKE_EINVAL. */
ake_status ake_model_synth_config(const char *arch, ake_model_config *cfg, char *err, size_t errlen);

/* "bert-base, bert-large, bge-small, minilm-l6, minilm-l3": static string for help texts. */
const char *ake_model_synth_archs(void);

#endif
