/* A loaded model folder with its tokenizer, and the sequence limit they agree on.
 *
 * Lives in serve/ (the lowest room that may see both text/ and model/), so that the
 * server and the CLI share it: cli/ may include serve/, never the other way. */
#ifndef AKE_SERVE_PIPELINE_H
#define AKE_SERVE_PIPELINE_H

#include <stdint.h>

#include "base/status.h"
#include "model/model.h"
#include "text/tokenizer.h"

typedef struct {
    ake_model *model;        /* owned */
    ake_tokenizer *tok;      /* owned */
    int32_t max_seq_tokens;  /* sentence_bert_config max_seq_length, else the tokenizer's truncation
                                length, else max_position_embeddings; never above max_position */
} ake_pipeline;

/* Loads model + tokenizer from dir into *p; on failure prints nothing, fills err and
 * leaves *p empty. Release with ake_pipeline_release (an empty pipeline is fine). */
ake_status ake_pipeline_load(const char *dir, ake_pipeline *p, char *err, size_t errlen);
void ake_pipeline_release(ake_pipeline *p);

#endif
