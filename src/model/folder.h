/* Writing a model folder's files other than the weights, in the layout ake_model_load reads
 * (model.h): shared by `synth` (model/synth.c) and `import-onnx` (onnx/onnx_import.c), so the
 * two write the same sentence-transformers package from an ake_model_config. */
#ifndef AKE_MODEL_FOLDER_H
#define AKE_MODEL_FOLDER_H

#include <stddef.h>

#include "base/status.h"
#include "model/model.h"

/* The tokenizer files copied from a source folder, those that exist there:
 * tokenizer.json, vocab.txt, tokenizer_config.json, special_tokens_map.json. */

/* mkdir -p: creates path and its missing parents (0777 less the umask). AKE_EIO naming the
 * folder when one cannot be created or path exists and is not a folder. */
ake_status ake_folder_make_dirs(const char *path, char *err, size_t errlen);

/* AKE_OK when src_dir holds tokenizer.json or vocab.txt; else AKE_ENOTFOUND naming src_dir.
 * Lets a command refuse a bad tokenizer source before it writes hundreds of megabytes. */
ake_status ake_folder_check_tokenizer(const char *src_dir, char *err, size_t errlen);

/* Writes everything of a model folder but model.safetensors into out_dir (created with its
 * parents if missing; files already there are overwritten):
 *   config.json                BertModel fields from cfg (hidden_act "gelu", absolute
 *                              positions), "_name_or_path": name_or_path
 *   modules.json               Transformer, Pooling, and Normalize when cfg->normalize
 *   1_Pooling/config.json      cfg->pooling
 *   2_Normalize/               an empty folder, when cfg->normalize
 *   sentence_bert_config.json  max_seq_length cfg->max_seq_length (omitted when it is 0)
 *   the tokenizer files above, copied from tokenizer_src (at least one of tokenizer.json and
 *   vocab.txt must exist there: AKE_ENOTFOUND otherwise).
 * cfg's fields must be those ake_model_load accepts (positive sizes, hidden % heads == 0);
 * they are written as given. Errors: AKE_EIO / AKE_ENOMEM naming the file. */
ake_status ake_model_folder_write(const char *out_dir, const ake_model_config *cfg, const char *name_or_path,
                                  const char *tokenizer_src, char *err, size_t errlen);

#endif
