#include "serve/pipeline.h"

#include <string.h>

ake_status ake_pipeline_load(const char *dir, ake_pipeline *p, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    ake_status st = ake_model_load(dir, &p->model, err, errlen);
    if (st != AKE_OK) return st;
    st = ake_tokenizer_load(dir, &p->tok, err, errlen);
    if (st != AKE_OK) {
        ake_pipeline_release(p);
        return st;
    }
    const ake_model_config *cfg = &p->model->cfg;
    if (ake_tokenizer_vocab_size(p->tok) > cfg->vocab_size) {
        ake_errf(err, errlen, AKE_EFORMAT, "the tokenizer in %s has %d tokens but the model's vocab_size is %d", dir,
                 ake_tokenizer_vocab_size(p->tok), cfg->vocab_size);
        ake_pipeline_release(p);
        return AKE_EFORMAT;
    }
    int32_t max = cfg->max_seq_length > 0 ? cfg->max_seq_length : ake_tokenizer_max_length(p->tok);
    p->max_seq_tokens = max > 0 && max < cfg->max_position ? max : cfg->max_position;
    return AKE_OK;
}

void ake_pipeline_release(ake_pipeline *p) {
    ake_tokenizer_free(p->tok);
    ake_model_free(p->model);
    memset(p, 0, sizeof *p);
}
