/* libFuzzer target for the safetensors reader: any bytes must either parse into a
 * self-consistent file or fail with a message, never crash, hang or leak.
 *   clang -fsanitize=fuzzer,address,undefined tests/fuzz/fuzz_safetensors.c src/base/status.c src/model/... */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ake_safetensors *st = NULL;
    char err[256];
    err[0] = 0;
    ake_status rc = ake_safetensors_parse(data, size, "fuzz", &st, err, sizeof err);
    if (rc != AKE_OK) {
        if (st || !err[0]) abort(); /* failures leave no handle and always explain themselves */
        return 0;
    }
    /* On success every promise of the header must hold. */
    const uint8_t *end = data + size;
    int n = ake_safetensors_count(st);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const ake_tensor *t = ake_safetensors_at(st, i);
        if (ake_safetensors_find(st, t->name) != t) abort();
        if (t->ndim < 0 || t->ndim > AKE_MAX_DIMS) abort();
        if (t->nbytes != (size_t)t->numel * ake_dtype_size(t->dtype)) abort();
        const uint8_t *p = t->data;
        if (p < data + 8 || p + t->nbytes > end) abort();
        volatile uint8_t sink = 0;
        if (t->nbytes) sink ^= p[0] ^ p[t->nbytes - 1]; /* touch both ends under ASan */
        (void)sink;
        total += t->nbytes;
    }
    if (total > size) abort();
    (void)ake_safetensors_find(st, "embeddings.word_embeddings.weight");
    (void)ake_safetensors_find(st, "a");
    (void)ake_safetensors_find(st, "");
    (void)ake_safetensors_metadata(st, "format");
    (void)ake_safetensors_label(st);
    ake_safetensors_close(st);
    return 0;
}
