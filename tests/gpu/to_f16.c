/* Rewrites a safetensors file with every F32 tensor rounded to F16 (others unchanged), so
 * that the real all-MiniLM-L6-v2 (87 MB in F32) travels to a GPU machine under the 64 MiB
 * copy limit. The engines read F16 weights as they are (the CPU widens them to F32).
 *   build/tests/gpu/to_f16 IN.safetensors OUT.safetensors */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/half.h"
#include "model/safetensors.h"

static ake_status fill(void *ctx, int i, void *dst, size_t nbytes, char *err, size_t errlen) {
    (void)err, (void)errlen;
    const ake_tensor *t = ake_safetensors_at((const ake_safetensors *)ctx, i);
    if (t->dtype != AKE_DT_F32) {
        memcpy(dst, t->data, nbytes);
        return AKE_OK;
    }
    const float *src = (const float *)t->data;
    uint16_t *out = (uint16_t *)dst;
    for (int64_t k = 0; k < t->numel; k++) out[k] = ake_f32_to_f16(src[k]);
    return AKE_OK;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: to_f16 IN.safetensors OUT.safetensors\n");
        return 2;
    }
    char err[512];
    ake_safetensors *st = NULL;
    if (ake_safetensors_open(argv[1], &st, err, sizeof err) != AKE_OK) {
        fprintf(stderr, "to_f16: %s\n", err);
        return 1;
    }
    const int n = ake_safetensors_count(st);
    ake_tensor *ts = calloc((size_t)n, sizeof *ts);
    for (int i = 0; i < n; i++) {
        ts[i] = *ake_safetensors_at(st, i);
        if (ts[i].dtype == AKE_DT_F32) {
            ts[i].dtype = AKE_DT_F16;
            ts[i].nbytes = (size_t)ts[i].numel * 2;
        }
    }
    ake_status s = ake_safetensors_write_fill(argv[2], ts, n, fill, st, err, sizeof err);
    if (s != AKE_OK) fprintf(stderr, "to_f16: %s\n", err);
    free(ts);
    ake_safetensors_close(st);
    return s == AKE_OK ? 0 : 1;
}
