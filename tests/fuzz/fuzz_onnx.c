/* libFuzzer target for the ONNX importer's parser and graph walk (ake_onnx_bert_parse): any
 * bytes must either map onto a self-consistent BERT (every tensor's bytes within what it says,
 * its shape the configuration's) or fail with a message, never crash, hang or leak. Seeds:
 * tests/fuzz/fuzz_onnx.seed, written by tests/fuzz/make_onnx_seeds.py. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx_import.h"

static void check_tensor(const ake_tensor *t) {
    if (!t->name || !t->data || t->ndim < 1 || t->ndim > 2) abort();
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] <= 0) abort();
        n *= t->shape[i];
    }
    if (n != t->numel || t->nbytes != (size_t)n * ake_dtype_size(t->dtype)) abort();
    const volatile uint8_t *p = t->data;
    (void)p[0];
    (void)p[t->nbytes - 1]; /* both ends inside the allocation, or ASan says so */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* the first byte picks the heads option (0: from the graph), the rest is the file */
    int32_t heads = size ? data[0] % 4 : 0;
    const uint8_t *buf = size ? data + 1 : data;
    size_t len = size ? size - 1 : 0;
    for (int pass = 0; pass < 2; pass++) {
        ake_onnx_bert *b = NULL;
        char err[512];
        err[0] = 0;
        /* pass 0 on the bytes as given, pass 1 on the whole input (so seeds parse as is too) */
        ake_status rc = pass == 0 ? ake_onnx_bert_parse(buf, len, "fuzz", heads, &b, err, sizeof err)
                                  : ake_onnx_bert_parse(data, size, "fuzz", 0, &b, err, sizeof err);
        if (rc != AKE_OK) {
            if (b || !err[0]) abort(); /* failures leave nothing and always explain themselves */
            continue;
        }
        const ake_model_config *c = ake_onnx_bert_config(b);
        if (c->layers < 1 || c->hidden < 1 || c->heads < 1 || c->hidden % c->heads || c->intermediate < 1 ||
            c->vocab_size < 1 || c->max_position < 1 || c->type_vocab_size < 1 || !(c->layer_norm_eps > 0))
            abort();
        int n = ake_onnx_bert_count(b);
        if (n != 5 + 16 * c->layers) abort();
        for (int i = 0; i < n; i++) check_tensor(ake_onnx_bert_tensor(b, i));
        const ake_tensor *w = ake_onnx_bert_tensor(b, 0);
        if (strcmp(w->name, "embeddings.word_embeddings.weight") || w->shape[0] != c->vocab_size ||
            w->shape[1] != c->hidden)
            abort();
        ake_onnx_bert_free(b);
    }
    return 0;
}
